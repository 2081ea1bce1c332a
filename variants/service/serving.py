"""The worker's models: finished runs registered in SQLite, one of them active and answering /predict, /design.

Replicas sharing a state folder share the records; each follows the active model on its sweep.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from services.common.envelope import ApiError, ErrorCode
from services.worker.store import Store, now_iso
from variants.db import VariantStore
from variants.models.base import VariantModel
from variants.notation import NotationError, expand, mutations_between
from variants.plugins import Registry
from variants.run import load_run_model
from variants.service import design
from variants.settings import VariantSettings

log = logging.getLogger(__name__)

MODELS_TABLE = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT, model TEXT, run_dir TEXT NOT NULL,
    source TEXT, metrics_json TEXT, active INTEGER NOT NULL DEFAULT 0, activated_at TEXT
);
"""


class Serving:
    """Registered runs, the active model, and the scoring behind /predict and /design."""

    def __init__(
        self, store: Store, registry: Registry, settings: VariantSettings, db_path: Path, workdir: Path
    ) -> None:
        self.store, self.registry, self.settings = store, registry, settings
        self.db_path, self.workdir = db_path, workdir
        self.model: VariantModel | None = None
        self.info: dict[str, Any] = {}
        self.active_id: str | None = None
        self._lock = threading.Lock()

    # -- records -----------------------------------------------------------------------------

    def register(self, run: Path, source: str) -> dict[str, Any]:
        """Record a finished run folder as a model (idempotent by run id)."""
        metrics = json.loads((run / "metrics.json").read_text())
        row = self.store.get("models", run.name)
        if row is None:
            summary = {k: metrics.get("test", {}).get(k) for k in ("roc_auc", "average_precision", "mcc", "n")}
            self.store.insert(
                "models",
                {
                    "id": run.name,
                    "created_at": now_iso(),
                    "model": metrics["model"],
                    "run_dir": str(run),
                    "source": source,
                    "metrics_json": summary,
                },
            )
            row = self.store.get("models", run.name)
        return row  # type: ignore[return-value]

    def list(self) -> list[dict[str, Any]]:
        rows, _ = self.store.list("models", limit=500)
        return rows

    def activate(self, model_id: str) -> dict[str, Any]:
        row = self.store.require("models", model_id, "model")
        self._load(row)
        for other in self.list():
            if other["active"] and other["id"] != model_id:
                self.store.update("models", other["id"], active=0)
        self.store.update("models", model_id, active=1, activated_at=now_iso())
        return self.describe()

    def _load(self, row: dict[str, Any]) -> None:
        try:
            model, info = load_run_model(Path(row["run_dir"]), self.registry, self.workdir)
        except Exception as exc:
            raise ApiError(ErrorCode.PREDICTION_FAILED, f"model {row['id']} cannot be loaded: {exc}"[:500]) from exc
        with self._lock:
            self.model, self.info, self.active_id = model, info, row["id"]
        log.info("serving variant model %s (%s)", row["id"], info["model"])

    def follow(self) -> None:
        """Serve what the records say is active (another replica may have switched it)."""
        active = [r for r in self.list() if r["active"]]
        target = active[0] if active else None
        if target is None and self.active_id is None:
            done = [r for r in self.list()]
            target = done[0] if done else None
        if target is not None and target["id"] != self.active_id:
            try:
                self._load(target)
            except ApiError:
                log.exception("cannot follow the active model %s", target["id"])

    def describe(self) -> dict[str, Any] | None:
        if self.model is None:
            return None
        return {
            "id": self.active_id,
            "model": self.info["model"],
            "template_id": self.info.get("template_id"),
            "region": self.info["region"],
        }

    # -- inference ---------------------------------------------------------------------------

    def _require(self) -> tuple[VariantModel, dict[str, Any]]:
        with self._lock:
            if self.model is None:
                raise ApiError(
                    ErrorCode.MODEL_NOT_LOADED, "no variant model is active: train or activate one", retry_after=5
                )
            return self.model, self.info

    def _template(self, body: dict[str, Any], info: dict[str, Any]) -> str:
        given = body.get("template")
        if given is None:
            return info["template"]
        if not isinstance(given, str) or not given.strip():
            raise ApiError(ErrorCode.INVALID_REQUEST, "'template' must be a template id or sequence")
        text = "".join(given.split()).upper()
        if text == info.get("template_id", "").upper() or given == info.get("template_id"):
            return info["template"]
        if len(text) != len(info["template"]):
            raise ApiError(
                ErrorCode.INVALID_SEQUENCE,
                f"the active model reads {len(info['template'])}-residue variants; template has {len(text)}",
            )
        return text

    def expand_all(self, variants: Any, template: str, region: list[int]) -> list[str]:
        if not isinstance(variants, list) or not variants:
            raise ApiError(ErrorCode.INVALID_REQUEST, "'variants' must be a non-empty list of strings")
        if len(variants) > self.settings.max_variants:
            raise ApiError(
                ErrorCode.PAYLOAD_TOO_LARGE, f"{len(variants)} variants; at most {self.settings.max_variants}"
            )
        width = region[1] - region[0] + 1
        letters = self.model.context.vocab if self.model is not None else None
        out = []
        for i, v in enumerate(variants):
            if not isinstance(v, str):
                raise ApiError(ErrorCode.INVALID_SEQUENCE, f"variants[{i}] must be a string")
            text = "".join(v.split()).upper()
            start = region[0] if len(text) == width and text.isalpha() and len(template) != width else None
            try:
                seq = expand(template, text, start)
            except NotationError as exc:
                raise ApiError(ErrorCode.INVALID_SEQUENCE, f"variants[{i}]: {exc}") from None
            bad = letters.bad_letters(seq) if letters else ""
            if bad:
                raise ApiError(ErrorCode.INVALID_SEQUENCE, f"variants[{i}]: letters outside {letters.name}: {bad!r}")
            out.append(seq)
        return out

    def predict(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{variants: [...], template?}`` → ``{scores, model}`` (higher = more likely a binder)."""
        model, info = self._require()
        template = self._template(body, info)
        seqs = self.expand_all(body.get("variants"), template, info["region"])
        scores = model.score(seqs)
        a, b = info["region"]
        return {
            "scores": [float(s) for s in scores],
            "regions": [s[a - 1 : b] for s in seqs],
            "mutations": [":".join(mutations_between(template, s)) for s in seqs],
            "model": self.describe(),
        }

    def design(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{template?, region?, n, strategy, library_size?, seed?}`` → the top-``n`` ranked variants."""
        model, info = self._require()
        template = self._template(body, info)
        region = body.get("region", info["region"])
        if not (
            isinstance(region, list)
            and len(region) == 2
            and all(isinstance(x, int) for x in region)
            and 1 <= region[0] <= region[1] <= len(template)
        ):
            raise ApiError(ErrorCode.INVALID_REQUEST, f"'region' must be [start, end] within 1..{len(template)}")
        if region[0] < info["region"][0] or region[1] > info["region"][1]:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"the active model reads region {info['region']} only")
        n = body.get("n", 100)
        if not isinstance(n, int) or not 1 <= n <= self.settings.max_design:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"'n' must be an integer in 1..{self.settings.max_design}")
        strategy = body.get("strategy", "binder-frequency")
        if strategy not in design.STRATEGIES:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"'strategy' must be one of {', '.join(design.STRATEGIES)}")
        size = body.get("library_size", 20_000)
        if not isinstance(size, int) or not 1 <= size <= self.settings.max_library:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"'library_size' must be in 1..{self.settings.max_library}")
        seed = body.get("seed", 0)
        letters = model.context.vocab.letters
        try:
            if strategy == "singles-doubles":
                library = design.singles_doubles(template, tuple(region), letters, self.settings.max_library)
            else:
                with VariantStore(self.db_path) as store:
                    rows = store.select([["template_id", "=", info.get("template_id", "")], ["label", "=", 1]])
                binders = [r["sequence"] for r in rows]
                library = design.binder_frequency(template, tuple(region), binders, size, int(seed), letters)
        except ValueError as exc:
            raise ApiError(ErrorCode.INVALID_REQUEST, str(exc)) from None
        scores = model.score(library)
        order = np.argsort(-scores)[:n]
        a, b = info["region"]
        ranked = [
            {
                "rank": k + 1,
                "sequence": library[i],
                "region": library[i][a - 1 : b],
                "mutations": ":".join(mutations_between(template, library[i])),
                "score": float(scores[i]),
            }
            for k, i in enumerate(order)
        ]
        return {"variants": ranked, "library_size": len(library), "strategy": strategy, "model": self.describe()}
