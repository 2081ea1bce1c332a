"""Training COMPASS: experiment plans, the training loop, DDP launch (and evaluation, beside it).

``python -m compass.train PLAN.json`` or, from Python, ``train(ExperimentPlan.from_json(p))``.
Names are imported on first use, so the worker (which reads plans and run folders) never pays
for the training loop's torch_geometric.
"""

from __future__ import annotations

from compass.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "compass.train.artifacts": ("CANCELLED_EXIT_CODE",),
        "compass.train.loop": ("train",),
        "compass.train.plan": ("ExperimentPlan", "PlanError"),
        "compass.train.trainer": ("RunResult",),
    },
)
