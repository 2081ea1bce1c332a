"""The vector worker as a real process on a real Milvus Lite file: every call over REST and gRPC, every bad input.

One registry and one worker for the module; each test uses its own collections. The same
scenario runs over both transports through :class:`VectorClient` (Router for REST, GrpcRouter
for gRPC), so the two must agree on every answer and every refusal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests

from services.client import RegistryClient
from services.client.errors import RequestFailed
from services.client.grpc_router import GrpcRouter
from tests.support import (
    REGISTRY_FLAGS,
    TOKEN,
    Proc,
    python_env,
    read_json_line,
    spawn,
    start_registry,
    stop_all,
    wait_until,
)
from vectors.client import VectorClient
from vectors.proto import vectors_pb2 as pb

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

API_TOKEN = "vectors-test-token"
LIMITS = ("--max-items", "20", "--max-top-k", "50", "--max-body-bytes", "60000", "--max-grpc-message-bytes", "60000")
TRANSPORTS = ("rest", "grpc")


def start_vector_worker(tmp: Path, registry: Proc, db: Path, name: str, *extra: str) -> Proc:
    args = [
        "-m",
        "vectors.worker",
        "--port",
        "0",
        "--registry",
        registry.base_url,
        "--token",
        TOKEN,
        "--milvus-uri",
        str(db),
        *LIMITS,
        *extra,
    ]
    proc = spawn(
        args, tmp / f"{name}.log", base_url="", env=python_env(VECTORS_API_TOKEN=API_TOKEN, OMP_NUM_THREADS="1")
    )
    proc.base_url = read_json_line(proc, "event", timeout=60)["base_url"]
    return proc


def wait_passing(registry: Proc, count: int) -> None:
    with RegistryClient(registry.base_url, watch=False, max_age_s=0) as client:
        wait_until(
            lambda: (
                sum(
                    i.status == "passing" and bool(i.metadata.get("grpc_port"))
                    for i in client.instances(name="vectors").instances
                )
                >= count
            ),
            timeout=60,
            what=f"{count} vectors worker(s) passing with a grpc_port",
        )


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[dict[str, Proc]]:
    tmp = tmp_path_factory.mktemp("vectors")
    registry = start_registry(tmp, *REGISTRY_FLAGS)
    procs = {"registry": registry}
    try:
        procs["worker"] = start_vector_worker(tmp, registry, tmp / "vectors.db", "vectors")
        wait_passing(registry, 1)
        yield procs
    finally:
        stop_all(list(procs.values()))


@pytest.fixture(scope="module")
def router(mesh) -> Iterator[GrpcRouter]:
    with GrpcRouter(mesh["registry"].base_url, deadline_s=60) as r:
        yield r


@pytest.fixture(params=TRANSPORTS)
def client(request, router) -> VectorClient:
    return VectorClient(router, transport=request.param, token=API_TOKEN)


def unit(i: int, dim: int = 8) -> list[float]:
    return [1.0 if j == i % dim else 0.1 * ((i + j) % 3) for j in range(dim)]


def test_every_vector_service_call(client: VectorClient) -> None:
    name = f"calls_{client.transport}"
    created = client.create_collection(
        {"name": name, "dim": 8, "metric": "cosine", "index": "approximate", "description": "test"}
    )
    assert (created["dim"], created["metric"], created["index"], created["storage"]) == (
        8,
        "cosine",
        "approximate",
        "float_vector",
    )
    assert client.has_collection(name) and not client.has_collection(name + "_absent")
    assert name in [c["name"] for c in client.list_collections()]
    items = [
        {"id": f"v{i}", "vector": unit(i), "metadata": {"group": "even" if i % 2 == 0 else "odd", "n": i}}
        for i in range(12)
    ]
    assert client.insert(name, items)["count"] == 12
    assert client.info(name)["row_count"] == 12

    hits = client.search(name, {"vectors": [unit(3)], "top_k": 3})
    assert hits["metric"] == "cosine" and hits["higher_is_closer"] is True
    assert hits["results"][0][0]["id"] == "v3" and hits["results"][0][0]["score"] == pytest.approx(1.0, abs=1e-4)
    filtered = client.search(
        name,
        {
            "vectors": [unit(3)],
            "top_k": 5,
            "filter": [{"key": "group", "op": "==", "value": "even"}],
            "include_vector": True,
        },
    )["results"][0]
    assert filtered and all(h["metadata"]["group"] == "even" for h in filtered)
    assert len(filtered[0]["vector"]) == 8
    in_list = client.search(
        name, {"vectors": [unit(3)], "top_k": 12, "filter": [{"key": "id", "op": "in", "value": ["v1", "v2"]}]}
    )
    assert sorted(h["id"] for h in in_list["results"][0]) == ["v1", "v2"]

    got = client.get(name, "v5")
    assert got["id"] == "v5" and got["vector"] == pytest.approx(unit(5)) and got["metadata"]["group"] == "odd"
    client.upsert(name, [{"id": "v5", "vector": unit(7), "metadata": {"group": "moved"}}])
    assert client.get(name, "v5")["metadata"]["group"] == "moved"
    assert client.delete(name, ["v0", "v1", "absent"])["count"] == 2
    assert client.info(name)["row_count"] == 10

    assert client.has_index(name) and client.describe_index(name)["info"]["index_type"] == "HNSW"
    client.drop_index(name)
    assert not client.has_index(name)
    with pytest.raises(RequestFailed) as no_index:
        client.search(name, {"vectors": [unit(3)], "top_k": 3})
    assert no_index.value.code == "CONFLICT"
    assert client.create_index(name, "exact")["info"]["index_type"] == "FLAT"
    exact = client.search(name, {"vectors": [unit(3)], "top_k": 3})
    assert exact["exact"] is True and exact["results"][0][0]["id"] == "v3"
    client.compact(name)
    assert client.health()["backend"] == "milvus-lite"
    client.drop_collection(name)
    assert not client.has_collection(name)


def test_fingerprints_are_ranked_by_exact_tanimoto(client: VectorClient) -> None:
    name = f"ligands_{client.transport}"
    client.create_collection({"name": name, "dim": 2048, "vector_type": "binary"})
    smiles = {"ethanol": "CCO", "propanol": "CCCO", "butanol": "CCCCO", "phenol": "c1ccccc1O", "toluene": "Cc1ccccc1"}
    client.insert(name, [{"id": k, "smiles": s, "metadata": {"smiles": s}} for k, s in smiles.items()])
    answer = client.search(name, {"smiles": ["CCCCCO"], "top_k": 3})
    from vectors.fingerprints import morgan_bits, tanimoto

    query = morgan_bits("CCCCCO")
    expected = sorted(((tanimoto(query, morgan_bits(s)), k) for k, s in smiles.items()), key=lambda t: (-t[0], t[1]))[
        :3
    ]
    got = [(h["score"], h["id"]) for h in answer["results"][0]]
    assert [k for _, k in got] == [k for _, k in expected]
    assert [s for s, _ in got] == pytest.approx([s for s, _ in expected])
    assert answer["metric"] == "tanimoto" and answer["exact"] is True
    bits = client.get(name, "phenol")["vector"]
    assert [i for i, b in enumerate(bits) if b] == morgan_bits("c1ccccc1O")
    with pytest.raises(RequestFailed) as approx:
        client.create_index(name, "approximate")  # Milvus Lite has no approximate sparse index
    assert approx.value.status == 400


BAD_SEARCHES = {
    "wrong dimension": ({"vectors": [[1.0, 2.0]], "top_k": 3}, 400, "INVALID_REQUEST"),
    "top-k over the cap": ({"vectors": [unit(1)], "top_k": 51}, 400, "INVALID_REQUEST"),
    "unknown filter op": (
        {"vectors": [unit(1)], "filter": [{"key": "n", "op": "~=", "value": 1}]},
        400,
        "INVALID_REQUEST",
    ),
    "injected filter key": (
        {"vectors": [unit(1)], "filter": [{"key": 'n"] == 1 or metadata["n', "op": "==", "value": 1}]},
        400,
        "INVALID_REQUEST",
    ),
    "empty in-list": (
        {"vectors": [unit(1)], "filter": [{"key": "n", "op": "in", "value": []}]},
        400,
        "INVALID_REQUEST",
    ),
}


@pytest.fixture(scope="module")
def bad_input_collection(router) -> str:
    client = VectorClient(router, transport="rest", token=API_TOKEN)
    client.create_collection({"name": "bad_inputs", "dim": 8})
    client.insert("bad_inputs", [{"id": f"b{i}", "vector": unit(i)} for i in range(3)])
    return "bad_inputs"


@pytest.mark.parametrize("case", sorted(BAD_SEARCHES))
def test_bad_searches_are_refused_alike(client: VectorClient, bad_input_collection: str, case: str) -> None:
    body, status, code = BAD_SEARCHES[case]
    with pytest.raises(RequestFailed) as refused:
        client.search(bad_input_collection, body)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert client.health()["status"] == "healthy"


def test_unknown_collection_is_404(client: VectorClient) -> None:
    for call in (
        lambda: client.search("no_such", {"vectors": [unit(1)]}),
        lambda: client.info("no_such"),
        lambda: client.insert("no_such", [{"id": "x", "vector": unit(1)}]),
    ):
        with pytest.raises(RequestFailed) as refused:
            call()
        assert (refused.value.status, refused.value.code) == (404, "NOT_FOUND")


def test_a_batch_with_one_bad_item_writes_nothing(client: VectorClient, bad_input_collection: str) -> None:
    before = client.info(bad_input_collection)["row_count"]
    items = [{"id": f"ok{client.transport}{i}", "vector": unit(i)} for i in range(4)] + [
        {"id": "short", "vector": [1.0]}
    ]
    with pytest.raises(RequestFailed) as refused:
        client.insert(bad_input_collection, items)
    assert refused.value.code == "INVALID_REQUEST"
    with pytest.raises(RequestFailed) as conflict:
        client.insert(bad_input_collection, [{"id": "b0", "vector": unit(0)}])
    assert (conflict.value.status, conflict.value.code) == (409, "CONFLICT")
    assert client.info(bad_input_collection)["row_count"] == before


def test_payload_over_the_limits(client: VectorClient, bad_input_collection: str) -> None:
    many = [{"id": f"m{i}", "vector": unit(i)} for i in range(21)]  # --max-items 20
    with pytest.raises(RequestFailed) as too_many:
        client.insert(bad_input_collection, many)
    assert (too_many.value.status, too_many.value.code) == (413, "PAYLOAD_TOO_LARGE")
    fat = [{"id": f"f{i}", "vector": unit(i), "metadata": {"blob": "x" * 4000}} for i in range(18)]  # ~72 kB > 60 kB
    with pytest.raises(RequestFailed) as too_big:
        client.insert(bad_input_collection, fat)
    assert (too_big.value.status, too_big.value.code) == (413, "PAYLOAD_TOO_LARGE")
    assert client.health()["status"] == "healthy"


def test_mutating_calls_need_the_token(router, bad_input_collection: str) -> None:
    for transport in TRANSPORTS:
        anonymous = VectorClient(router, transport=transport)
        with pytest.raises(RequestFailed) as refused:
            anonymous.insert(bad_input_collection, [{"id": "anon", "vector": unit(1)}])
        assert (refused.value.status, refused.value.code) == (401, "UNAUTHORIZED")
        assert anonymous.search(bad_input_collection, {"vectors": [unit(1)], "top_k": 1})["results"][0]


def test_grpc_status_and_trailing_code(mesh, router) -> None:
    """The raw gRPC answer: INVALID_ARGUMENT / NOT_FOUND with the envelope code in the trailing metadata."""
    from vectors.proto import vectors_pb2_grpc as pb_grpc

    inst = router.discovery.lookup("vectors").instances[0]
    with grpc.insecure_channel(f"{inst.host}:{inst.metadata['grpc_port']}") as channel:
        stub = pb_grpc.VectorServiceStub(channel)
        cases = [
            (
                pb.SearchRequest(name="missing", vectors=[pb.Vector(values=[1.0])]),
                grpc.StatusCode.NOT_FOUND,
                "NOT_FOUND",
            ),
            (
                pb.SearchRequest(name="bad name!", vectors=[pb.Vector(values=[1.0])]),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_REQUEST",
            ),
        ]
        for request, status, code in cases:
            with pytest.raises(grpc.RpcError) as err:
                stub.Search(request, timeout=10)
            assert err.value.code() == status
            assert dict(err.value.trailing_metadata())["error-code"] == code
    rest = requests.get(mesh["worker"].base_url + "/api/v1/vectors/collections/missing", timeout=10)
    assert rest.status_code == 404 and rest.json()["error"]["code"] == "NOT_FOUND"


def test_filter_text_is_never_passed_through(router, bad_input_collection: str) -> None:
    """REST could carry an expression string; it is refused, never handed to Milvus's parser."""
    rest = VectorClient(router, transport="rest")
    with pytest.raises(RequestFailed) as refused:
        rest.search(bad_input_collection, {"vectors": [unit(1)], "filter": 'id != "" or true'})
    assert (refused.value.status, refused.value.code) == (400, "INVALID_REQUEST")
