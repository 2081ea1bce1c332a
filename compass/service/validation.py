"""How well a model did on data it was not trained on, in one figure: ``{metric, split, value}``.

Workers advertise the active model's figure in their registry metadata and in every answer, and
activation compares the candidate's figure with the active model's. A model without one (trained
with ``split: none``, or a file with no recorded evaluation) is served only when the operator says
``override: true``, and then every answer says so.
"""

from __future__ import annotations

import math
from typing import Any

from services.common.envelope import ApiError, ErrorCode

NO_FIGURE_WARNING = (
    "this model has no validation figure (activated with override, or named at start-up): nobody has measured "
    "how good its answers are on proteins it was not trained on"
)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def validation_of(row: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The model's held-out figure: its job's protein-grouped validation split, else the grouped CV of its file.

    ``row`` is the model record (``metrics`` from eval.json); ``meta`` the loaded checkpoint's metadata,
    which holds the cross-validation of shipped descriptor models.
    """
    metrics = row.get("metrics") or {}
    pearson, n_val = _number(metrics.get("val_pearson")), metrics.get("n_val")
    if pearson is not None and isinstance(n_val, int) and n_val > 0:
        split = ((row.get("meta") or {}).get("plan") or {}).get("split") or {}
        fraction = split.get("val_fraction")
        where = f"{fraction:.0%} of proteins held out" if isinstance(fraction, int | float) else "proteins held out"
        return {
            "metric": "pearson",
            "split": f"validation split by protein ({where})",
            "value": round(pearson, 3),
            "n": n_val,
            "rmse": _number(metrics.get("val_rmse")),
        }
    cv = (meta or {}).get("grouped_cv") or (row.get("meta") or {}).get("grouped_cv") or {}
    pearson = _number(cv.get("pearson_r", cv.get("pearson")))
    if pearson is not None:
        folds = cv.get("folds")
        return {
            "metric": "pearson",
            "split": f"{folds}-fold cross-validation grouped by protein" if folds else "cross-validation by protein",
            "value": round(pearson, 3),
            "rmse": _number(cv.get("rmse")),
        }
    return None


def activation_check(
    candidate: dict[str, Any] | None, active: dict[str, Any] | None, *, confirm: bool, override: bool
) -> None:
    """Refuse an activation that was not confirmed, or of a model without a figure unless overridden (409)."""

    def said(v: dict[str, Any] | None) -> str:
        return f"{v['metric']} {v['value']} on {v['split']}" if v else "no validation figure"

    if candidate is None and not override:
        raise ApiError(
            ErrorCode.CONFLICT,
            f"the model has no validation figure (active model: {said(active)}); train it with a validation "
            "split by protein, or send override: true to serve it anyway (every answer will say so)",
        )
    if not confirm:
        raise ApiError(
            ErrorCode.CONFLICT,
            f"activation needs confirmation: candidate {said(candidate)}, active {said(active)}; send confirm: true",
        )
