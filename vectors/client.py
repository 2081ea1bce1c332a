"""A Python client of the VectorService that speaks REST or gRPC through the mesh, with one answer shape.

    from services.client.grpc_router import GrpcRouter
    from vectors.client import VectorClient
    with GrpcRouter("http://127.0.0.1:8500") as router:
        vc = VectorClient(router, transport="grpc", token=TOKEN)
        vc.create_collection({"name": "ligands", "dim": 2048, "vector_type": "binary"})
        vc.search("ligands", {"smiles": ["CCO"], "top_k": 5})["results"][0]

Both transports answer the REST ``data`` dicts and raise the client package's errors
(:class:`~services.client.errors.RequestFailed` with the envelope code for a refusal), so a
caller can switch transports with one argument; the tests run every call over both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from google.protobuf.json_format import MessageToDict, ParseDict

from services.client.grpc_router import GrpcRouter
from vectors.proto import vectors_pb2 as pb

SERVICE = "/compass.vectors.v1.VectorService/"
MODELS = "/compass.vectors.v1.ModelService/"
TARGET = "vector-search"


def to_dict(message: Any) -> dict[str, Any]:
    """A response message as the REST ``data`` dict (int64 as numbers, nested vectors and hits flattened)."""
    data = MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        preserving_proto_field_name=True,
        unquote_int64_if_possible=True,
    )
    if isinstance(message, pb.SearchResult):
        data["results"] = [q.get("hits", []) for q in data.get("results", [])]
    if isinstance(message, pb.Item):
        vector = data.get("vector") or {}
        data["vector"] = vector.get("values", [])
    return data


def _vector(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    return {"values": raw}


def _item_message(item: dict[str, Any]) -> Any:
    """One item as a message, built directly (ParseDict walks every float: slow for 10⁵ floats a call)."""
    message = pb.Item(id=str(item.get("id", "")))
    if "smiles" in item:
        message.vector.smiles = item["smiles"]
    elif isinstance(item.get("vector"), dict):
        message.vector.CopyFrom(ParseDict(item["vector"], pb.Vector()))
    elif item.get("vector") is not None:
        message.vector.values.extend(item["vector"])
    if item.get("metadata"):
        message.metadata.update(item["metadata"])
    return message


class VectorClient:
    """Every VectorService call over ``transport`` (``rest`` or ``grpc``) to instances of ``target``."""

    def __init__(
        self,
        router: GrpcRouter,
        *,
        transport: str = "rest",
        target: str = TARGET,
        token: str = "",
        deadline: float = 60.0,
    ) -> None:
        if transport not in ("rest", "grpc"):
            raise ValueError("transport must be rest or grpc")
        self.router = router
        self.transport = transport
        self.target = target
        self.token = token
        self.deadline = deadline

    # -- the two wires ----------------------------------------------------------------------------

    def _rest(self, method: str, path: str, body: dict[str, Any] | None = None, idempotent: bool | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        result = self.router.call(
            self.target,
            method,
            "/api/v1/vectors" + path,
            json=body,
            headers=headers,
            deadline=self.deadline,
            idempotent=idempotent,
            fallbacks=[],
        )
        return result.data

    def _grpc(self, rpc: str, request: Any, request_type: Any, response_type: Any, idempotent: bool) -> Any:
        """``request``: a dict (converted with ParseDict) or a ready message."""
        metadata = {"authorization": f"Bearer {self.token}"} if self.token else None
        message = request if not isinstance(request, dict) else ParseDict(request, request_type())
        result = self.router.unary(
            self.target,
            SERVICE + rpc,
            message,
            response_type=response_type,
            idempotent=idempotent,
            metadata=metadata,
            deadline=self.deadline,
            fallbacks=[],
        )
        return to_dict(result.data)

    def _either(self, rest: Callable[[], Any], grpc_call: Callable[[], Any]) -> Any:
        return rest() if self.transport == "rest" else grpc_call()

    @staticmethod
    def _path(name: str) -> str:
        return "/collections/" + quote(name, safe="")

    # -- collections ------------------------------------------------------------------------------

    def create_collection(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("POST", "/collections", spec),
            lambda: self._grpc("CreateCollection", spec, pb.CollectionSpec, pb.CollectionInfo, False),
        )

    def drop_collection(self, name: str) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("DELETE", self._path(name)),
            lambda: self._grpc("DropCollection", {"name": name}, pb.CollectionName, pb.Done, True),
        )

    def has_collection(self, name: str) -> bool:
        if self.transport == "grpc":
            return bool(self._grpc("HasCollection", {"name": name}, pb.CollectionName, pb.Exists, True)["exists"])
        from services.client.errors import RequestFailed

        try:
            self._rest("GET", self._path(name))
            return True
        except RequestFailed as exc:
            if exc.status == 404:
                return False
            raise

    def list_collections(self) -> list[dict[str, Any]]:
        data = self._either(
            lambda: self._rest("GET", "/collections"),
            lambda: self._grpc("ListCollections", {}, pb.HealthRequest, pb.CollectionList, True),
        )
        return data["collections"]

    def info(self, name: str) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("GET", self._path(name)),
            lambda: self._grpc("GetCollectionInfo", {"name": name}, pb.CollectionName, pb.CollectionInfo, True),
        )

    # -- indexes ----------------------------------------------------------------------------------

    def create_index(self, name: str, index: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"index": index}
        if params:
            body["index_params"] = params
        return self._either(
            lambda: self._rest("PUT", self._path(name) + "/index", body),
            lambda: self._grpc(
                "CreateIndex",
                {"name": name, "index": index, "params": params or {}},
                pb.IndexRequest,
                pb.IndexInfo,
                True,
            ),
        )

    def describe_index(self, name: str) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("GET", self._path(name) + "/index"),
            lambda: self._grpc("DescribeIndex", {"name": name}, pb.CollectionName, pb.IndexInfo, True),
        )

    def has_index(self, name: str) -> bool:
        if self.transport == "grpc":
            return bool(self._grpc("HasIndex", {"name": name}, pb.CollectionName, pb.Exists, True)["exists"])
        return bool(self.info(name).get("index_info"))

    def drop_index(self, name: str) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("DELETE", self._path(name) + "/index"),
            lambda: self._grpc("DropIndex", {"name": name}, pb.CollectionName, pb.Done, True),
        )

    # -- rows -------------------------------------------------------------------------------------

    def insert(self, name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("POST", self._path(name) + "/vectors", {"items": items}, idempotent=False),
            lambda: self._grpc("Insert", self._write(name, items), pb.WriteRequest, pb.WriteResult, False),
        )

    def upsert(self, name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("PUT", self._path(name) + "/vectors", {"items": items}),
            lambda: self._grpc("Upsert", self._write(name, items), pb.WriteRequest, pb.WriteResult, True),
        )

    @staticmethod
    def _write(name: str, items: list[dict[str, Any]]) -> Any:
        return pb.WriteRequest(name=name, items=[_item_message(item) for item in items])

    def delete(self, name: str, ids: list[str]) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("DELETE", self._path(name) + "/vectors", {"ids": ids}),
            lambda: self._grpc("Delete", {"name": name, "ids": ids}, pb.DeleteRequest, pb.WriteResult, True),
        )

    def get(self, name: str, item_id: str) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("GET", f"{self._path(name)}/vectors/{quote(item_id, safe='')}"),
            lambda: self._grpc("Get", {"name": name, "id": item_id}, pb.GetRequest, pb.Item, True),
        )

    def search(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """``{vectors | smiles, top_k, filter, include_vector}``; a read, so retried elsewhere on failure."""

        def grpc_call() -> Any:
            request = {k: v for k, v in body.items() if k not in ("vectors", "smiles")}
            vectors = [_vector(v) for v in body.get("vectors", [])]
            smiles = body.get("smiles", [])
            vectors += [{"smiles": s} for s in ([smiles] if isinstance(smiles, str) else smiles)]
            return self._grpc(
                "Search", {**request, "name": name, "vectors": vectors}, pb.SearchRequest, pb.SearchResult, True
            )

        return self._either(lambda: self._rest("POST", self._path(name) + "/search", body, idempotent=True), grpc_call)

    def compact(self, name: str) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("POST", self._path(name) + "/compact", idempotent=True),
            lambda: self._grpc("Compact", {"name": name}, pb.CollectionName, pb.Done, True),
        )

    def health(self) -> dict[str, Any]:
        return self._either(
            lambda: self._rest("GET", "/health"),
            lambda: self._grpc("Health", {}, pb.HealthRequest, pb.HealthResult, True),
        )
