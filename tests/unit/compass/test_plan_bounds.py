"""Issue 18 item 10: plan numbers that are not finite, or unbounded, fail validation."""

from __future__ import annotations

import pytest

from compass.train.plan import ExperimentPlan, OptimSpec, PlanError


@pytest.mark.parametrize(
    "optim",
    [
        {"lr": float("nan")},
        {"lr": float("inf")},
        {"weight_decay": float("nan")},
        {"weight_decay": float("inf")},
        {"grad_clip": float("nan")},
        {"position_noise": float("nan")},
        {"warmup_fraction": float("nan")},
        {"epochs": 10**12},
        {"batch_size": 10**9},
        {"patience": 10**9},
        {"warmup_steps": 10**12},
    ],
)
def test_non_finite_or_unbounded_optimiser_values_fail(optim: dict) -> None:
    with pytest.raises(PlanError) as err:
        OptimSpec.from_dict(optim)
    assert f"optim.{next(iter(optim))}" in str(err.value)


def test_a_nan_split_fraction_or_huge_seed_fails() -> None:
    with pytest.raises(PlanError, match="val_fraction"):
        ExperimentPlan.from_dict({"data": {"roots": ["x"]}, "split": {"val_fraction": float("nan")}})
    with pytest.raises(PlanError, match="seed"):
        ExperimentPlan.from_dict({"data": {"roots": ["x"]}, "seed": 2**80})


def test_the_defaults_and_the_bounds_themselves_pass() -> None:
    OptimSpec.from_dict({})
    OptimSpec.from_dict({"lr": 10.0, "epochs": 10_000, "batch_size": 4096})
