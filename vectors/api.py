"""REST routes of the VectorService under ``/api/v1/vectors`` (DESIGN.md "Vectors"), in the envelope.

Each route reads its body, calls the one :class:`~vectors.service.VectorService` method and
answers its dict; mutating calls need the worker's API token when one is configured.
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from services.common.auth import require_token
from services.common.envelope import json_body, ok
from vectors.service import VectorService

_MUTATING = frozenset({"POST", "PUT", "DELETE"})


def build_blueprint(service: VectorService, api_token: str) -> Blueprint:
    """The routes; a search is a POST but reads only, so it needs no token."""
    bp = Blueprint("vectors", __name__)  # mounted under /api/v1 by the runtime

    @bp.before_request
    def _auth() -> None:
        if request.method in _MUTATING and not (request.endpoint or "").endswith(".search"):
            require_token(api_token)

    @bp.get("/vectors/health")
    def health() -> Response:
        return ok(service.health())

    @bp.post("/vectors/collections")
    def create_collection() -> Response:
        """``{name, dim, metric, vector_type, index, description, index_params}`` → 201 and the collection's info."""
        return ok(service.create_collection(json_body()), "collection created", status=201)

    @bp.get("/vectors/collections")
    def list_collections() -> Response:
        return ok(service.list_collections())

    @bp.get("/vectors/collections/<name>")
    def collection_info(name: str) -> Response:
        """Configuration, row count and index; 404 when there is no such collection (HEAD: has-collection)."""
        return ok(service.info(name))

    @bp.delete("/vectors/collections/<name>")
    def drop_collection(name: str) -> Response:
        return ok(service.drop_collection(name), "collection dropped")

    @bp.put("/vectors/collections/<name>/index")
    def create_index(name: str) -> Response:
        """``{index: exact|approximate, index_params}``: replaces the collection's index."""
        return ok(service.create_index(name, json_body()), "index built")

    @bp.get("/vectors/collections/<name>/index")
    def describe_index(name: str) -> Response:
        return ok(service.describe_index(name))

    @bp.delete("/vectors/collections/<name>/index")
    def drop_index(name: str) -> Response:
        return ok(service.drop_index(name))

    @bp.post("/vectors/collections/<name>/vectors")
    def insert(name: str) -> Response:
        """``{items: [{id, vector | smiles, metadata}]}``; 409 when an id exists already."""
        return ok(service.insert(name, json_body()), "inserted", status=201)

    @bp.put("/vectors/collections/<name>/vectors")
    def upsert(name: str) -> Response:
        return ok(service.upsert(name, json_body()), "upserted")

    @bp.delete("/vectors/collections/<name>/vectors")
    def delete(name: str) -> Response:
        """``{ids: [...]}``; ``count`` says how many existed."""
        return ok(service.delete(name, json_body()), "deleted")

    @bp.get("/vectors/collections/<name>/vectors/<path:item_id>")
    def get_item(name: str, item_id: str) -> Response:
        return ok(service.get(name, item_id))

    @bp.post("/vectors/collections/<name>/search")
    def search(name: str) -> Response:
        """``{vectors | smiles, top_k, filter, include_vector}`` → per query ``[{id, score, metadata}]``."""
        return ok(service.search(name, json_body()))

    @bp.post("/vectors/collections/<name>/compact")
    def compact(name: str) -> Response:
        return ok(service.compact(name))

    return bp
