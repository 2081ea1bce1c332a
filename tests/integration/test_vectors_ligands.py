"""COMPASS's training ligands indexed by the CLI: the service's nearest neighbour is COMPASS's own read-out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.client.grpc_router import GrpcRouter
from tests.integration.test_vectors import API_TOKEN, start_vector_worker, wait_passing
from tests.support import REGISTRY_FLAGS, REPO, python_env, start_registry, stop_all
from vectors.client import VectorClient

pytest.importorskip("milvus_lite")
MODEL = REPO / "compass" / "weights" / "compass-lite.skops"


def test_cli_indexes_the_models_own_fingerprints(tmp_path: Path) -> None:
    from compass.data.ligand_props import tanimoto_max
    from compass.model.lite_format import load_lite

    registry = start_registry(tmp_path, *REGISTRY_FLAGS)
    worker = start_vector_worker(tmp_path, registry, tmp_path / "ligands.db", "ligands")
    try:
        wait_passing(registry, 1)
        args = [
            "-m",
            "vectors.compass_ligands",
            "--registry",
            registry.base_url,
            "--model",
            str(MODEL),
            "--data-root",
            str(tmp_path / "no-data"),
            "--limit",
            "300",
            "--collection",
            "seen",
        ]
        run = subprocess.run(
            [sys.executable, *args],
            env=python_env(VECTORS_API_TOKEN=API_TOKEN),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert "seen: 300 rows" in run.stdout
        domain = load_lite(MODEL).domain
        fps = domain.fps[:300]
        query = np.packbits(np.unpackbits(fps[7]) | np.unpackbits(fps[11]))  # a ligand the model never saw
        with GrpcRouter(registry.base_url) as router:
            client = VectorClient(router, transport="grpc", token=API_TOKEN)
            on_bits = np.flatnonzero(np.unpackbits(query)).tolist()
            hit = client.search("seen", {"vectors": [{"on_bits": on_bits}], "top_k": 1})["results"][0][0]
        similarity, _ = tanimoto_max(query, fps)
        assert hit["score"] == pytest.approx(similarity)
        assert tanimoto_max(fps[[domain.ligand_keys.index(hit["id"])]][0], query[None, :])[0] == pytest.approx(
            similarity
        )
        assert hit["metadata"]["source"] in ("pdbbind", "fep")
    finally:
        stop_all([worker, registry])
