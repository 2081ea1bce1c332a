"""Batch runner: a folder of JSON tasks through the mesh, one result file per task, resumable.

    python -m services.client.batch --registry http://127.0.0.1:8500 --service compass \\
        --input-dir tasks/ --output-dir results/ --concurrency 8 [--fallback compass-lite]

A task ``{"task": "affinity", "input": {...}, "metadata": {"request_id": ...}}`` is sent as
``POST /predict`` with body ``input`` plus ``task_type``. Its result ``<stem>.json`` is written
atomically (temporary file + rename), so an interrupted run never leaves half a result, and a
re-run skips every task whose result says ``success``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
from tqdm import tqdm

from services.client.balancers import BALANCERS
from services.client.call import CallResult
from services.client.errors import ClientError, RequestFailed
from services.client.policy import RetryPolicy
from services.client.registry_client import RegistryClient
from services.client.router import Router
from services.common.cli import LOG_LEVELS, comma_list, command, env_settings, parse
from services.common.files import atomic_path
from services.common.settings import ClientSettings

log = logging.getLogger("services.client.batch")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass
class Summary:
    """What a run did; ``throughput`` is succeeded tasks per second (a fast failure is no work done)."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0

    @property
    def throughput(self) -> float:
        return self.succeeded / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        return (
            f"total={self.total} succeeded={self.succeeded} failed={self.failed} skipped={self.skipped} "
            f"elapsed={self.elapsed_s:.2f}s throughput={self.throughput:.1f} tasks/s"
        )


class TaskError(ValueError):
    """A task file that cannot be sent (unreadable, not JSON, wrong shape)."""


def load_task(path: Path) -> dict[str, Any]:
    try:
        task = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TaskError(f"cannot read {path.name}: {exc}") from None
    if not isinstance(task, dict) or not isinstance(task.get("task"), str) or not isinstance(task.get("input"), dict):
        raise TaskError(f"{path.name} must be an object with 'task' (string) and 'input' (object)")
    if not isinstance(task.get("metadata", {}), dict):
        raise TaskError(f"{path.name}: 'metadata' must be an object")
    return task


def is_done(result_path: Path) -> bool:
    """Whether a previous run left a successful result (anything else is run again)."""
    try:
        return json.loads(result_path.read_text(encoding="utf-8")).get("status") == "success"
    except (OSError, ValueError, AttributeError):
        return False


def write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` as JSON so readers see the old file or the new one, never a partial one."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=2, sort_keys=False)
        handle.write("\n")


def task_request_id(task: dict[str, Any]) -> str:
    """The task's own request id when it is a valid one, else a fresh one."""
    rid = task.get("metadata", {}).get("request_id")
    return rid if isinstance(rid, str) and REQUEST_ID_RE.match(rid) else uuid.uuid4().hex


def call_metadata(service: str) -> dict[str, Any]:
    """The ``metadata`` of a result before anything was tried."""
    return {
        "request_id": None,
        "service": service,
        "instance": None,
        "model": None,
        "attempts": 0,
        "fallback_used": False,
    }


def record_success(meta: dict[str, Any], result: CallResult) -> None:
    """Note in ``meta`` who served the call."""
    meta.update(
        service=result.service,
        instance=result.instance,
        model=result.model,
        attempts=result.attempts,
        fallback_used=result.fallback_used,
    )


def record_failure(meta: dict[str, Any], exc: Exception, what: str) -> dict[str, Any]:
    """The ``error`` of a failed task (its code when a worker gave one); ``meta`` learns the last try."""
    if not isinstance(exc, (TaskError, ClientError)):
        log.exception("task %s failed unexpectedly", what)
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, TaskError):
        error["code"] = "INVALID_TASK"
    elif isinstance(exc, RequestFailed):
        error.update(code=exc.code, status=exc.status, details=exc.details)
    if isinstance(exc, ClientError):
        tries = [a for a in exc.attempts if a.instance_id]
        if tries:
            meta.update(service=tries[-1].service, instance=tries[-1].instance_id, attempts=len(tries))
            meta["fallback_used"] = tries[-1].fallback
    return error


def run_task(
    router: Router,
    task_path: Path,
    result_path: Path,
    service: str,
    fallbacks: Sequence[str] | None,
    deadline: float | None,
    *,
    path: str = "/predict",
    common: dict[str, Any] | None = None,
    keep: Sequence[str] = (),
) -> bool:
    """Run one task and write its result; True on success. Never raises for a task's own failure.

    A runner with its own route (``path``, e.g. the docking screen's ``/dock``) sends ``common``
    fields with every task, and copies the task's ``keep`` metadata keys into the result's.
    """
    started = time.monotonic()
    meta = call_metadata(service)
    try:
        task = load_task(task_path)
        meta["request_id"] = task_request_id(task)
        meta.update({k: task.get("metadata", {}).get(k) for k in keep})
        body = {**(common or {}), **task["input"], "task_type": task["task"]}
        result = router.call(
            service,
            "POST",
            path,
            json=body,
            fallbacks=fallbacks,
            deadline=deadline,
            idempotent=True,
            request_id=meta["request_id"],
        )
    except Exception as exc:  # a task's failure, ours included, is its result: the batch goes on
        error = record_failure(meta, exc, task_path.name)
        meta["processing_time_ms"] = round((time.monotonic() - started) * 1000, 3)
        write_atomic(result_path, {"status": "error", "output": None, "error": error, "metadata": meta})
        return False
    record_success(meta, result)
    meta["processing_time_ms"] = round((time.monotonic() - started) * 1000, 3)
    write_atomic(result_path, {"status": "success", "output": result.data, "error": None, "metadata": meta})
    return True


def run_batch(
    router: Router,
    input_dir: Path,
    output_dir: Path,
    service: str,
    *,
    concurrency: int = 8,
    fallbacks: Sequence[str] | None = None,
    deadline: float | None = None,
    progress: bool | None = None,
) -> Summary:
    """Run every ``*.json`` task in ``input_dir`` not already done; ``progress=None`` shows a bar on a TTY."""

    def one(task_path: Path, result_path: Path) -> bool:
        return run_task(router, task_path, result_path, service, fallbacks, deadline)

    return run_folder(input_dir, output_dir, one, concurrency=concurrency, progress=progress)


def run_folder(
    input_dir: Path,
    output_dir: Path,
    run_one: Callable[[Path, Path], bool],
    *,
    concurrency: int = 8,
    progress: bool | None = None,
) -> Summary:
    """``run_one(task, result)`` for every ``*.json`` task whose result is not already a success.

    The loop every folder runner shares (this one, :mod:`services.client.pipeline`): skip what is
    done, run the rest ``concurrency`` at a time with a progress bar, count the outcomes.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    output_dir.mkdir(parents=True, exist_ok=True)
    tasks = sorted(p for p in input_dir.glob("*.json") if p.is_file())
    summary = Summary(total=len(tasks))
    todo = []
    for path in tasks:
        if is_done(output_dir / path.name):
            summary.skipped += 1
        else:
            todo.append(path)
    lock = threading.Lock()
    started = time.monotonic()
    with (
        tqdm(total=len(todo), unit="task", disable=None if progress is None else not progress, file=sys.stderr) as bar,
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="batch") as pool,
    ):
        futures = [pool.submit(run_one, path, output_dir / path.name) for path in todo]
        for future in as_completed(futures):
            ok = future.result()
            with lock:
                if ok:
                    summary.succeeded += 1
                else:
                    summary.failed += 1
            bar.update(1)
    summary.elapsed_s = time.monotonic() - started
    return summary


def batch_params(defaults: ClientSettings) -> list[click.Parameter]:
    """The batch runner's flags: :func:`folder_params` plus the service and its fallbacks."""
    return [
        *folder_params(defaults, concurrency=8, unit="task", in_flight="requests"),
        click.Option(["--service"], required=True, help="service name or capability to send the tasks to"),
        click.Option(
            ["--fallback"],
            multiple=True,
            metavar="SERVICE",
            help="fallback service, repeatable (default: $CLIENT_FALLBACKS)",
        ),
    ]


def registry_option() -> click.Option:
    """``--registry URL[,URL]`` (repeatable; default ``$REGISTRY_URL``), as every runner of many calls takes it."""
    return click.Option(
        ["--registry"],
        multiple=True,
        metavar="URL[,URL]",
        callback=comma_list,
        help="registry URL(s) (default: $REGISTRY_URL)",
    )


def folder_params(defaults: ClientSettings, *, concurrency: int, unit: str, in_flight: str) -> list[click.Parameter]:
    """The flags every folder runner has: registries, folders, concurrency and :func:`routing_params`."""
    return [
        registry_option(),
        click.Option(
            ["--input-dir"], type=click.Path(path_type=Path), required=True, help="folder of task files (*.json)"
        ),
        click.Option(
            ["--output-dir"], type=click.Path(path_type=Path), required=True, help="folder for the result files"
        ),
        click.Option(
            ["--concurrency"],
            type=click.IntRange(min=1),
            default=concurrency,
            show_default=True,
            help=f"{in_flight} in flight",
        ),
        *routing_params(defaults, unit),
    ]


def routing_params(d: ClientSettings, unit: str) -> list[click.Parameter]:
    """Flags every runner of many calls shares: deadline, balancer, attempts, progress, log level."""
    return [
        click.Option(
            ["--deadline"],
            type=click.FloatRange(min=0, min_open=True),
            default=d.deadline_s,
            show_default=True,
            help=f"seconds per {unit}",
        ),
        click.Option(["--balancer"], type=click.Choice(sorted(BALANCERS)), default=d.balancer, show_default=True),
        click.Option(
            ["--max-attempts"],
            type=click.IntRange(min=1),
            default=d.max_attempts,
            show_default=True,
            help="tries per service",
        ),
        click.Option(["--progress/--no-progress"], default=None, help="progress bar (default: on a TTY)"),
        click.Option(["--log-level"], type=LOG_LEVELS, default="WARNING", show_default=True),
    ]


def parse_folder_args(
    prog: str, help: str, params: list[click.Parameter], argv: Sequence[str] | None, settings: ClientSettings
) -> tuple[SimpleNamespace, list[str]]:
    """Parse a folder runner's command line (exit 2 on bad flags), set up logging; the flags and registry URLs."""
    registries: list[str] = []

    def check(values: dict[str, Any]) -> None:
        registries.extend(values["registry"] or settings.registry_urls)
        if not registries:
            raise click.UsageError("no registry: pass --registry or set REGISTRY_URL")
        if not values["input_dir"].is_dir():
            raise click.UsageError(f"--input-dir {values['input_dir']} is not a folder")

    args = SimpleNamespace(**parse(command(prog, params, help), argv, validate=check).params)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return args, registries


@contextmanager
def folder_router(
    args: SimpleNamespace, registries: list[str], settings: ClientSettings, **overrides: Any
) -> Iterator[Router]:
    """The Router a folder runner's flags describe, closed with its registry client on the way out."""
    discovery = RegistryClient(registries, wait_s=settings.watch_wait_s)
    router = Router.from_settings(
        settings,
        balancer=args.balancer,
        retry=RetryPolicy(max_attempts=args.max_attempts),
        deadline_s=args.deadline,
        pool_maxsize=max(16, args.concurrency),
        discovery=discovery,
        **overrides,
    )
    try:
        yield router
    finally:
        router.close()
        discovery.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when every task succeeded, 1 when any failed, 2 on bad arguments."""
    settings = env_settings(ClientSettings)
    help = "Run a folder of JSON tasks through the mesh (resumable; one result file per task)."
    args, registries = parse_folder_args(
        "python -m services.client.batch", help, batch_params(settings), argv, settings
    )
    with folder_router(args, registries, settings) as router:
        summary = run_batch(
            router,
            args.input_dir,
            args.output_dir,
            args.service,
            concurrency=args.concurrency,
            fallbacks=list(args.fallback) or None,
            deadline=args.deadline,
            progress=args.progress,
        )
    print(f"batch: {summary.line()}", flush=True)
    print(json.dumps({"event": "summary", **asdict(summary), "throughput": round(summary.throughput, 3)}), flush=True)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
