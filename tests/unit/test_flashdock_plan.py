"""The Training form's plans are valid experiment plans, each model kind with its own settings."""

from __future__ import annotations

import pytest

from compass.train import ExperimentPlan
from flashdock.compass_api import SIZES, build_plan


@pytest.mark.parametrize("size", sorted(SIZES))
def test_form_plan_for_visnet_is_valid_and_weights_proteins(size: str) -> None:
    plan = ExperimentPlan.from_dict({**build_plan("compass", size, 3, 1e-3, 5), "data": {"roots": ["ds"]}})
    assert plan.model.config == SIZES[size] and plan.seed == 5 and plan.optim.epochs == 3
    assert plan.optim.group_weighting == "inverse_sqrt"  # as the shipped plan


def test_form_plan_for_compass_lite_is_valid() -> None:
    plan = ExperimentPlan.from_dict({**build_plan("compass-lite", "tiny", 2, 1e-3, 1), "data": {"roots": ["ds"]}})
    assert plan.model.kind == "compass-lite"  # weights proteins through its own config (LiteConfig)
