"""The SpliceAI port against an independent reference: Keras 3 loading the same .h5 files.

Keras is not a dependency of the project (it would pull in a deep-learning backend), so this
test runs only when ``KERAS_REFERENCE_PYTHON`` names an interpreter that has it, for example::

    python -m venv /tmp/kerasref && /tmp/kerasref/bin/pip install keras "jax[cpu]" h5py scipy
    KERAS_REFERENCE_PYTHON=/tmp/kerasref/bin/python pytest tests/unit/seqmodels/test_splice_reference.py

Recorded on 2026-11-23 (Keras 3.15.1, JAX backend): max |ours − Keras| = 3.0e-7 over the HBB region
and a random sequence of the same length, all three classes.
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from seqmodels.splice import FLANK, spliceai_model_files
from seqmodels.splice_net import load_keras_h5, one_hot
from tests.unit.seqmodels.fixtures import HBB_REGION

REFERENCE_PYTHON = os.environ.get("KERAS_REFERENCE_PYTHON", "")
SCRIPT = Path(__file__).with_name("keras_reference.py")


@pytest.mark.skipif(not REFERENCE_PYTHON, reason="set KERAS_REFERENCE_PYTHON to a python with Keras 3 installed")
def test_the_port_matches_keras_on_the_same_weights(tmp_path: Path) -> None:
    rng = random.Random(1)
    sequences = [HBB_REGION, "".join(rng.choice("ACGT") for _ in HBB_REGION)]
    x = torch.stack([one_hot("N" * FLANK + s + "N" * FLANK) for s in sequences])
    np.save(tmp_path / "x.npy", x.permute(0, 2, 1).numpy())  # Keras is channels-last
    files = spliceai_model_files()
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
    subprocess.run(
        [REFERENCE_PYTHON, str(SCRIPT), str(files[0].parent), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        check=True,
        env=env,
        timeout=600,
    )
    reference = np.load(tmp_path / "y.npy")
    with torch.inference_mode():
        ours = load_keras_h5(files)(x).permute(0, 2, 1).numpy()
    assert ours.shape == reference.shape == (2, len(HBB_REGION), 3)
    assert float(np.abs(ours - reference).max()) < 1e-5
