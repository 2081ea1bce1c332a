"""The VectorService over gRPC: each RPC is its message as a dict, one service call, the answer as a message.

Message fields carry the REST names, so ``MessageToDict`` gives the REST body (a ``Vector``
becomes ``{values}``, ``{on_bits}`` or ``{smiles}``, forms the service accepts), and
``ParseDict`` turns the REST answer back into the response message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict, ParseDict

from vectors.grpc_server import Admission, guarded
from vectors.proto import vectors_pb2 as pb
from vectors.proto import vectors_pb2_grpc as pb_grpc
from vectors.service import VectorService


def as_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def vector_body(vector: Any) -> dict[str, Any]:
    """A ``Vector`` message as the REST form, without a per-float dict walk (inserts carry 10⁵-10⁶ floats)."""
    if vector.smiles:
        return {"smiles": vector.smiles}
    if len(vector.on_bits):
        return {"on_bits": list(vector.on_bits)}
    return {"values": np.fromiter(vector.values, dtype=np.float32, count=len(vector.values))}


def write_body(request: Any) -> dict[str, Any]:
    """An Insert/Upsert request as the REST body (metadata through the generic Struct conversion)."""
    items = [
        {
            "id": item.id,
            "vector": vector_body(item.vector) if item.HasField("vector") else None,
            "metadata": MessageToDict(item.metadata) if item.HasField("metadata") else None,
        }
        for item in request.items
    ]
    return {"items": items}


def search_body(request: Any) -> dict[str, Any]:
    body = as_dict(request)
    body.pop("name", None)
    body["vectors"] = [vector_body(v) for v in request.vectors]
    return body


def as_message(data: dict[str, Any], message_type: Any) -> Any:
    return ParseDict(data, message_type(), ignore_unknown_fields=True)


def _search_message(answer: dict[str, Any]) -> Any:
    answer = {**answer, "results": [{"hits": hits} for hits in answer["results"]]}
    return as_message(answer, pb.SearchResult)


def _item_message(answer: dict[str, Any]) -> Any:
    return as_message({**answer, "vector": {"values": answer["vector"]}}, pb.Item)


class VectorServicer(pb_grpc.VectorServiceServicer):
    """Every VectorService RPC; mutating ones need the API token like their REST twins."""

    def __init__(self, service: VectorService, admission: Admission) -> None:
        self.service = service
        self.admission = admission

    def _run(
        self,
        request: Any,
        context: grpc.ServicerContext,
        call: Callable[[Any], dict[str, Any]],
        reply: Any,
        mutating: bool = False,
    ) -> Any:
        """Admit, call the service with the request, answer ``reply`` (a message type or a converter)."""
        with guarded(self.admission, request, context, mutating):
            answer = call(request)
            return reply(answer) if callable(reply) and not isinstance(reply, type) else as_message(answer, reply)
        return None  # not reached: guarded aborts the RPC on error

    def CreateCollection(self, request, context):
        return self._run(
            request, context, lambda r: self.service.create_collection(as_dict(r)), pb.CollectionInfo, True
        )

    def DropCollection(self, request, context):
        return self._run(request, context, lambda r: self.service.drop_collection(r.name), pb.Done, True)

    def HasCollection(self, request, context):
        return self._run(request, context, lambda r: self.service.has_collection(r.name), pb.Exists)

    def ListCollections(self, request, context):
        return self._run(request, context, lambda _r: self.service.list_collections(), pb.CollectionList)

    def GetCollectionInfo(self, request, context):
        return self._run(request, context, lambda r: self.service.info(r.name), pb.CollectionInfo)

    def CreateIndex(self, request, context):
        def call(r: Any) -> dict[str, Any]:
            params = MessageToDict(r.params) if r.HasField("params") else None
            return self.service.create_index(r.name, {"index": r.index, "index_params": params})

        return self._run(request, context, call, pb.IndexInfo, True)

    def DropIndex(self, request, context):
        return self._run(request, context, lambda r: self.service.drop_index(r.name), pb.Done, True)

    def HasIndex(self, request, context):
        return self._run(request, context, lambda r: self.service.has_index(r.name), pb.Exists)

    def DescribeIndex(self, request, context):
        return self._run(request, context, lambda r: self.service.describe_index(r.name), pb.IndexInfo)

    def Insert(self, request, context):
        return self._run(request, context, lambda r: self.service.insert(r.name, write_body(r)), pb.WriteResult, True)

    def Upsert(self, request, context):
        return self._run(request, context, lambda r: self.service.upsert(r.name, write_body(r)), pb.WriteResult, True)

    def Delete(self, request, context):
        return self._run(
            request, context, lambda r: self.service.delete(r.name, {"ids": list(r.ids)}), pb.WriteResult, True
        )

    def Get(self, request, context):
        return self._run(request, context, lambda r: self.service.get(r.name, r.id), _item_message)

    def Search(self, request, context):
        return self._run(request, context, lambda r: self.service.search(r.name, search_body(r)), _search_message)

    def Compact(self, request, context):
        return self._run(request, context, lambda r: self.service.compact(r.name), pb.Done, True)

    def Health(self, request, context):
        return self._run(request, context, lambda _r: self.service.health(), pb.HealthResult)
