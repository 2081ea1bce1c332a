"""The vector worker in the mesh: persistence across kill -9, ModelService failover, streaming variants.

Real processes on loopback: a registry, vectors workers on their own Milvus Lite files, and (for
the model calls) a real AntiBERTy worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.client.grpc_router import GrpcRouter
from tests.integration.test_vectors import API_TOKEN, start_vector_worker, unit, wait_passing
from tests.support import REGISTRY_FLAGS, TOKEN, Proc, read_json_line, spawn, start_registry, stop_all, wait_until
from vectors.client import MODELS, VectorClient, to_dict
from vectors.proto import vectors_pb2 as pb

pytest.importorskip("milvus_lite")

VH = (  # trastuzumab heavy-chain variable domain
    "EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKNTAYLQMNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS"
)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Proc]:
    proc = start_registry(tmp_path, *REGISTRY_FLAGS)
    yield proc
    proc.stop()


def test_rows_survive_kill_9_and_restart(tmp_path: Path, registry: Proc) -> None:
    db = tmp_path / "persist.db"
    worker = start_vector_worker(tmp_path, registry, db, "first")
    try:
        wait_passing(registry, 1)
        with GrpcRouter(registry.base_url, deadline_s=30) as router:
            client = VectorClient(router, transport="grpc", token=API_TOKEN)
            client.create_collection({"name": "kept", "dim": 8, "index": "approximate"})
            client.insert("kept", [{"id": f"k{i}", "vector": unit(i), "metadata": {"i": i}} for i in range(6)])
            client.delete("kept", ["k5"])
        worker.kill9()
        restarted = start_vector_worker(tmp_path, registry, db, "second")
        try:
            with GrpcRouter(registry.base_url, deadline_s=30) as router:
                wait_until(
                    lambda: any(
                        i.base_url == restarted.base_url and i.status == "passing"
                        for i in router.discovery.lookup("vectors").instances
                    ),
                    timeout=30,
                    what="the restarted worker registered",
                )
                for transport in ("rest", "grpc"):
                    client = VectorClient(router, transport=transport, token=API_TOKEN)
                    info = client.info("kept")
                    assert (info["row_count"], info["index"]) == (5, "approximate")
                    assert client.get("kept", "k3")["metadata"]["i"] == 3
                    assert client.search("kept", {"vectors": [unit(2)], "top_k": 1})["results"][0][0]["id"] == "k2"
        finally:
            restarted.stop()
    finally:
        worker.stop()


def _restarted(registry: Proc, tmp_path: Path, db: Path, name: str) -> tuple[Proc, GrpcRouter]:
    proc = start_vector_worker(tmp_path, registry, db, name)
    router = GrpcRouter(registry.base_url, deadline_s=30)
    wait_until(
        lambda: any(
            i.base_url == proc.base_url and i.status == "passing" for i in router.discovery.lookup("vectors").instances
        ),
        timeout=60,
        what=f"worker {name} registered",
    )
    return proc, router


def test_a_clean_restart_loads_the_saved_index_and_kill_9_after_a_write_rebuilds(
    tmp_path: Path, registry: Proc
) -> None:
    """SIGTERM saves the in-process index; a start loads it. A write then kill -9: the start must read Lite."""
    db = tmp_path / "saved.db"
    worker = start_vector_worker(tmp_path, registry, db, "one")
    procs = [worker]
    try:
        wait_passing(registry, 1)
        with GrpcRouter(registry.base_url, deadline_s=30) as router:
            client = VectorClient(router, transport="grpc", token=API_TOKEN)
            client.create_collection({"name": "kept", "dim": 8, "index": "approximate"})
            client.insert("kept", [{"id": f"k{i}", "vector": unit(i), "metadata": {"i": i}} for i in range(8)])
            before = client.search("kept", {"vectors": [unit(3)], "top_k": 4})
        worker.stop()  # SIGTERM: drain, then save
        assert "saved kept: 8 rows" in worker.log()
        second, router = _restarted(registry, tmp_path, db, "two")
        procs.append(second)
        with router:
            assert "loaded kept from its saved index: 8 rows" in second.log()
            assert "rebuilt kept from Milvus Lite" not in second.log()
            client = VectorClient(router, transport="grpc", token=API_TOKEN)
            assert client.search("kept", {"vectors": [unit(3)], "top_k": 4})["results"] == before["results"]
            client.upsert("kept", [{"id": "k3", "vector": unit(6), "metadata": {"i": 33}}])  # same ids, same count
        second.kill9()
        third, router = _restarted(registry, tmp_path, db, "three")
        procs.append(third)
        with router:
            assert "rebuilt kept from Milvus Lite: 8 rows" in third.log()
            for transport in ("rest", "grpc"):
                client = VectorClient(router, transport=transport, token=API_TOKEN)
                hits = client.search("kept", {"vectors": [unit(6)], "top_k": 2})["results"][0]
                assert {h["id"] for h in hits} == {"k3", "k6"}
                assert client.get("kept", "k3")["metadata"] == {"i": 33}
    finally:
        stop_all(procs)


def _embed(router: GrpcRouter, smiles: str) -> tuple[str, dict]:
    result = router.unary(
        "vector-search",
        MODELS + "GenerateEmbedding",
        pb.EmbeddingRequest(kind="molecule", smiles=smiles),
        response_type=pb.Embedding,
        idempotent=True,
        deadline=20,
    )
    return result.instance, to_dict(result.data)


def test_model_service_fails_over_when_one_of_two_instances_dies(tmp_path: Path, registry: Proc) -> None:
    workers = [start_vector_worker(tmp_path, registry, tmp_path / f"w{i}.db", f"w{i}") for i in range(2)]
    try:
        wait_passing(registry, 2)
        with GrpcRouter(registry.base_url, deadline_s=30, balancer="round_robin") as router:
            served = {_embed(router, "CCO")[0] for _ in range(6)}
            assert len(served) == 2  # both instances answer
            listed = router.unary(
                "vector-search",
                MODELS + "ListModels",
                pb.ListModelsRequest(),
                response_type=pb.ModelList,
                idempotent=True,
            ).data
            assert [m.passing for m in listed.models if m.name == "vectors"] == [2]
            workers[0].kill9()
            survivors = set()
            for _ in range(8):
                instance, embedding = _embed(router, "c1ccccc1O")
                survivors.add(instance)
                assert embedding["dim"] == 2048 and sum(embedding["vector"]) > 0
            assert len(survivors) == 1 and survivors <= served
            assert embedding["served_by"] == survivors.pop()
    finally:
        stop_all(workers)


@pytest.fixture
def antiberty_mesh(tmp_path: Path, registry: Proc) -> Iterator[Proc]:
    pytest.importorskip("antiberty")
    args = [
        "-m",
        "seqmodels.antiberty",
        "--port",
        "0",
        "--registry",
        registry.base_url,
        "--token",
        TOKEN,
        "--torch-threads",
        "1",
    ]
    antiberty = spawn(args, tmp_path / "antiberty.log", base_url="")
    worker = start_vector_worker(tmp_path, registry, tmp_path / "m.db", "models")
    try:
        antiberty.base_url = read_json_line(antiberty, "event", timeout=120)["base_url"]
        wait_passing(registry, 1)
        with GrpcRouter(registry.base_url) as router:
            wait_until(
                lambda: any(i.status == "passing" for i in router.discovery.lookup("antiberty").instances),
                timeout=120,
                what="antiberty passing",
            )
        yield antiberty
    finally:
        stop_all([worker, antiberty])


def test_generate_embedding_and_streamed_variants_through_antiberty(antiberty_mesh: Proc, registry: Proc) -> None:
    with GrpcRouter(registry.base_url, deadline_s=120) as router:
        embedded = router.unary(
            "vector-search",
            MODELS + "GenerateEmbedding",
            pb.EmbeddingRequest(kind="antibody", sequence=VH),
            response_type=pb.Embedding,
            idempotent=True,
        )
        assert embedded.data.dim == 512 and len(embedded.data.vector) == 512
        assert embedded.data.served_by != embedded.instance  # computed by the antiberty worker, not this one
        request = pb.VariantsRequest(sequence=VH, start=100, end=103, n=6, temperature=1.0, seed=7)
        stream = router.stream("vector-search", MODELS + "StreamGenerateVariants", request, response_type=pb.Variant)
        t0, arrivals, variants = time.monotonic(), [], []
        for variant in stream.data:
            arrivals.append(time.monotonic() - t0)
            variants.append(variant)
        assert variants, "no candidate streamed"
        letters = set("ACDEFGHIKLMNPQRSTVWY")
        for v in variants:
            assert len(v.sequence) == len(VH) and set(v.sequence) <= letters
            assert v.sequence[:99] == VH[:99] and v.sequence[103:] == VH[103:]  # only the masked region changes
            assert v.region == v.sequence[99:103] and v.pseudo_log_likelihood < 0
        assert len({v.sequence for v in variants}) == len(variants)
        assert [v.index for v in variants] == list(range(len(variants)))
        by_capability = pb.ListModelsRequest(capability="protein-embedding")
        models = router.unary(
            "vector-search", MODELS + "ListModels", by_capability, response_type=pb.ModelList, idempotent=True
        ).data
        assert [m.name for m in models.models] == ["antiberty"]
