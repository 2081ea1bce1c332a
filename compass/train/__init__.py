"""Training COMPASS: experiment plans, the training loop, DDP launch (and evaluation, beside it).

``python -m compass.train PLAN.json`` or, from Python, ``train(ExperimentPlan.from_json(p))``.
"""

from compass.train.loop import CANCELLED_EXIT_CODE, train
from compass.train.plan import ExperimentPlan, PlanError
from compass.train.trainer import RunResult

__all__ = ["CANCELLED_EXIT_CODE", "ExperimentPlan", "PlanError", "RunResult", "train"]
