"""Datasets: an uploaded archive becomes a validated data root that training plans refer to by id.

Life of a dataset: the upload is streamed to disk and unpacked safely (:mod:`.archives`) inside
the request, so a bad archive is refused at once; the record is then ``validating`` while a
child process featurises every complex, and ends ``ready`` (with the usable count and the
reasons for the rest) or ``failed``. A validation whose worker died is picked up again by the
next worker that starts or sweeps.
"""

from __future__ import annotations

import csv
import json
import logging
import queue
import re
import secrets
import shutil
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from compass.service.archives import ArchiveError, ArchiveLimits, extract_archive, save_stream
from compass.service.store import Store, now_iso
from services.common.envelope import ApiError, ErrorCode
from services.worker.procs import child_command, child_env, owner_alive

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[\w .,:()+\-]{1,128}$")
STATUSES = ("validating", "ready", "failed")
_ROOT_SEARCH_DEPTH = 3
_VALIDATE_TIMEOUT_S = 6 * 3600.0


def find_root(folder: Path) -> Path:
    """The data root inside an unpacked archive: the folder itself or the shallowest folder with an index."""
    from compass.data import LayoutError, list_records

    level = [folder]
    problem = ""
    for _ in range(_ROOT_SEARCH_DEPTH + 1):
        for candidate in level:
            try:
                list_records(candidate)
                return candidate
            except LayoutError:
                continue
            except (ValueError, KeyError, OSError, csv.Error) as exc:  # an index, but unreadable
                problem = f" ({candidate.name}: {type(exc).__name__}: {exc})"
        level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    raise ArchiveError(
        "no data root found: the archive needs an index.csv (FEP or per-complex layout) or PDBbind INDEX files"
        + problem
    )


class DatasetManager:
    """Uploads, validation, listing and deletion of datasets under ``<state>/datasets/<id>/``."""

    def __init__(self, store: Store, state_dir: Path, limits: ArchiveLimits, owner: str) -> None:
        self.store = store
        self.dir = state_dir / "datasets"
        self.uploads = state_dir / "uploads"
        self.limits = limits
        self.owner = owner
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    # -- paths -------------------------------------------------------------------------------

    def folder(self, dataset_id: str) -> Path:
        return self.dir / dataset_id

    def root(self, dataset: dict[str, Any]) -> Path:
        return self.folder(dataset["id"]) / "files" / (dataset.get("root") or "")

    def cache_dir(self, dataset_id: str) -> Path:
        return self.folder(dataset_id) / "cache"

    # -- create ------------------------------------------------------------------------------

    def create(self, stream: IO[bytes], filename: str, name: str) -> dict[str, Any]:
        """Store, unpack and register an upload; validation continues in the background."""
        name = (name or Path(filename or "dataset").stem).strip()
        if not NAME_RE.match(name):
            raise ApiError(ErrorCode.INVALID_REQUEST, "name: 1-128 letters, digits, spaces or . , : ( ) + - _")
        dataset_id = f"ds-{secrets.token_hex(6)}"
        upload = self.uploads / f"{dataset_id}.upload"
        folder = self.folder(dataset_id)
        try:
            size, sha256 = save_stream(stream, upload, self.limits.max_upload_bytes)
            extracted = extract_archive(upload, folder / "files", self.limits)
            root = find_root(folder / "files")
        except ArchiveError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            code = ErrorCode.PAYLOAD_TOO_LARGE if exc.too_large else ErrorCode.INVALID_REQUEST
            raise ApiError(code, f"archive refused: {exc.reason}") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            upload.unlink(missing_ok=True)
        now = now_iso()
        record = self.store.insert(
            "datasets",
            {
                "id": dataset_id,
                "name": name,
                "status": "validating",
                "created_at": now,
                "updated_at": now,
                "archive_name": Path(filename or "").name[:200] or None,
                "archive_bytes": size,
                "n_files": extracted.n_files,
                "extracted_bytes": extracted.extracted_bytes,
                "root": "" if root == folder / "files" else root.relative_to(folder / "files").as_posix(),
                "owner": self.owner,
                "report_json": {"archive_sha256": sha256, "archive_format": extracted.format},
            },
        )
        log.info("dataset %s (%s): %d files unpacked, validating", dataset_id, name, extracted.n_files)
        self._queue.put(dataset_id)
        return self.public(record)

    # -- validation --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the validation thread and adopt validations whose worker is gone."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dataset-validation", daemon=True)
            self._thread.start()
        self.reconcile()

    def reconcile(self) -> None:
        rows, _ = self.store.list("datasets", where={"status": "validating"})
        for row in rows:
            if row["owner"] == self.owner or owner_alive(row["owner"]):
                continue
            if self.store.update_where("datasets", row["id"], {"owner": row["owner"]}, owner=self.owner):
                log.info("dataset %s: its validating worker is gone; validating again", row["id"])
                self._queue.put(row["id"])

    def _run(self) -> None:
        while True:
            dataset_id = self._queue.get()
            try:
                self._validate(dataset_id)
            except Exception as exc:  # a bug here must fail the dataset, not the thread
                log.exception("validation of %s failed", dataset_id)
                self.store.update("datasets", dataset_id, status="failed", error=f"validation error: {exc}"[:500])

    def _validate(self, dataset_id: str) -> None:
        row = self.store.get("datasets", dataset_id)
        if row is None or row["status"] != "validating":
            return
        out = self.folder(dataset_id) / "validation.json"
        out.unlink(missing_ok=True)
        args = [str(self.root(row)), "--cache-dir", str(self.cache_dir(dataset_id)), "--out", str(out)]
        log_path = self.folder(dataset_id) / "validation.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(
                child_command("compass.service.validate", args),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=child_env(),
            )
            try:
                code = proc.wait(timeout=_VALIDATE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        result: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
        if self.store.get("datasets", dataset_id) is None:  # deleted meanwhile
            return
        if code != 0 or "error" in result or not result:
            tail = log_path.read_text(errors="replace")[-400:].strip()
            error = result.get("error") or f"validation process exited with {code}: {tail}"
            self.store.update("datasets", dataset_id, status="failed", error=error[:1000])
            return
        report = {**(row.get("report") or {}), **result["report"]}
        usable = int(result["n_complexes"])
        fields: dict[str, Any] = {
            "status": "ready" if usable > 0 else "failed",
            "layout": result["layout"],
            "n_complexes": usable,
            "n_index": report.get("n_index"),
            "n_failed": report.get("n_failed"),
            "n_skipped": report.get("n_skipped"),
            "data_hash": result.get("data_hash"),
            "report_json": report,
        }
        if usable == 0:
            reasons = {**report.get("failed_by_reason", {}), **report.get("skipped_by_reason", {})}
            fields["error"] = f"no usable complex in {report.get('n_index', 0)} index rows: {reasons}"[:1000]
        self.store.update("datasets", dataset_id, **fields)
        log.info("dataset %s: %s, %d usable complexes", dataset_id, fields["status"], usable)

    # -- read and delete ---------------------------------------------------------------------

    @staticmethod
    def public(row: dict[str, Any], detail: bool = False) -> dict[str, Any]:
        """The API view of a record (the survival lists only in ``get``)."""
        out = {k: v for k, v in row.items() if k not in ("owner", "report")}
        report = row.get("report") or {}
        out["archive_sha256"] = report.get("archive_sha256")
        if detail:
            out["report"] = report
        else:
            out["reasons"] = {
                "failed": report.get("failed_by_reason", {}),
                "skipped": report.get("skipped_by_reason", {}),
            }
        return out

    def get(self, dataset_id: str) -> dict[str, Any]:
        return self.store.require("datasets", dataset_id, "dataset")

    def list(self, status: list[str] | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        rows, total = self.store.list(
            "datasets", where={"status": status} if status else None, limit=limit, offset=offset
        )
        return [self.public(r) for r in rows], total

    def delete(self, dataset_id: str, in_use_by: list[str]) -> None:
        row = self.get(dataset_id)
        if row["status"] == "validating":
            raise ApiError(ErrorCode.CONFLICT, f"dataset {dataset_id} is being validated; delete it when it is done")
        if in_use_by:
            raise ApiError(ErrorCode.CONFLICT, f"dataset {dataset_id} is used by running job(s) {', '.join(in_use_by)}")
        self.store.delete("datasets", dataset_id)
        shutil.rmtree(self.folder(dataset_id), ignore_errors=True)
        log.info("dataset %s deleted", dataset_id)
