"""The ModelService over gRPC: the mesh's models seen from one place.

* ``ListModels``: the serving models, from the registry (grouped by service, with how many
  instances pass now); ``GetModelInfo``: a worker's ``GET /model/info``, through the Router.
* ``GenerateEmbedding``: antibodies go to the ``antiberty`` workers (AntiBERTy, 512-d mean of the
  last layer), other proteins to any ``protein-embedding`` worker, molecules are fingerprinted
  here with RDKit (Morgan radius 2 bits as a 0/1 vector).
* ``StreamGenerateVariants``: masked in-filling by the antiberty worker's routes
  (``POST /api/v1/antiberty/infill`` draws the candidates in one masked pass, shared with the
  variant experiments); each candidate is then scored (``/api/v1/antiberty/score``: the
  pseudo-log-likelihood over the region, one masked pass per residue) and streamed at once.

The seed system's RegisterModel / UnregisterModel / UpdateModelConfig map onto what exists: a
model is registered by starting its worker (``python -m services.worker.launch KIND``), removed by
stopping it (drain and deregister), and its configuration changes by activating another model on
that worker (COMPASS: ``PUT /api/v1/models/{id}/activate``). ``GenerateText`` /
``StreamGenerateText`` have no counterpart: no free-text language model serves in this domain.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import grpc

from services.client.errors import ClientError, RequestFailed
from services.client.registry_client import RegistryClient
from services.client.router import Router
from services.common.envelope import ApiError, ErrorCode
from vectors.fingerprints import DEFAULT_BITS, dense_from_bits, morgan_bits
from vectors.grpc_server import Admission, guarded
from vectors.grpc_vectors import as_dict, as_message
from vectors.proto import vectors_pb2 as pb
from vectors.proto import vectors_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

PROTEIN_RE = re.compile(r"^[ACDEFGHIKLMNPQRSTVWY]+$")
MAX_RESIDUES = 510  # AntiBERTy's positions less CLS and SEP
MAX_VARIANTS = 100
MAX_REGION = 64  # the in-filling route's most positions
EMBED_DEADLINE_S = 60.0


def _upstream(exc: ClientError) -> ApiError:
    """A Router failure as the error this service answers (a refusal keeps its code)."""
    if isinstance(exc, RequestFailed) and exc.code:
        try:
            return ApiError(ErrorCode(exc.code), exc.details or str(exc))
        except ValueError:
            pass
    return ApiError(ErrorCode.OVERLOADED, f"no model worker could answer: {exc}"[:500])


def check_protein(sequence: Any) -> str:
    if not isinstance(sequence, str) or not sequence:
        raise ApiError(ErrorCode.INVALID_SEQUENCE, "sequence must be a non-empty string")
    sequence = sequence.strip().upper()
    if len(sequence) > MAX_RESIDUES:
        raise ApiError(ErrorCode.SEQUENCE_TOO_LONG, f"{len(sequence)} residues; at most {MAX_RESIDUES}")
    if not PROTEIN_RE.match(sequence):
        raise ApiError(ErrorCode.INVALID_SEQUENCE, "sequence must use the 20 amino-acid letters")
    return sequence


class ModelServicer(pb_grpc.ModelServiceServicer):
    """Reads the registry and calls workers through one Router; ``served_by`` names this worker."""

    def __init__(
        self, router: Router | None, registry: RegistryClient | None, admission: Admission, served_by: Any
    ) -> None:
        self.router = router
        self.registry = registry
        self.admission = admission
        self.served_by = served_by  # () -> str: this instance's id, known once registered

    def _need_mesh(self) -> tuple[Router, RegistryClient]:
        if self.router is None or self.registry is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "this worker runs without --registry: it sees no other model")
        return self.router, self.registry

    def ListModels(self, request, context):
        with guarded(self.admission, request, context):
            _, registry = self._need_mesh()
            capability = request.capability or None
            snap = registry.instances(capability=capability)
            grouped: dict[str, dict[str, Any]] = {}
            for inst in snap.instances:
                entry = grouped.setdefault(
                    inst.service_name,
                    {"name": inst.service_name, "models": [], "capabilities": [], "passing": 0, "instances": 0},
                )
                entry["instances"] += 1
                entry["passing"] += inst.status == "passing"
                entry["models"] = sorted({*entry["models"], *inst.models})
                entry["capabilities"] = sorted({*entry["capabilities"], *inst.capabilities})
            return as_message({"models": [grouped[k] for k in sorted(grouped)]}, pb.ModelList)

    def GetModelInfo(self, request, context):
        with guarded(self.admission, request, context):
            router, _ = self._need_mesh()
            if not request.name:
                raise ApiError(ErrorCode.INVALID_REQUEST, "name is required")
            try:
                result = router.call(request.name, "GET", "/model/info", fallbacks=[], deadline=10.0)
            except ClientError as exc:
                raise _upstream(exc) from None
            return as_message({"name": request.name, "instance": result.instance, "info": result.data}, pb.ModelInfo)

    def GenerateEmbedding(self, request, context):
        with guarded(self.admission, request, context):
            body = as_dict(request)
            kind = body.get("kind") or ("molecule" if body.get("smiles") else "antibody")
            if kind == "molecule":
                n_bits = int(body.get("n_bits") or DEFAULT_BITS)
                if not 64 <= n_bits <= 8192:
                    raise ApiError(ErrorCode.INVALID_REQUEST, "n_bits must be between 64 and 8192")
                vector = dense_from_bits(morgan_bits(body.get("smiles", ""), n_bits), n_bits)
                answer = {
                    "vector": vector,
                    "dim": n_bits,
                    "model": f"rdkit-morgan2-{n_bits}",
                    "served_by": self.served_by(),
                }
                return as_message(answer, pb.Embedding)
            if kind not in ("antibody", "protein"):
                raise ApiError(ErrorCode.INVALID_REQUEST, "kind must be antibody, protein or molecule")
            sequence = check_protein(body.get("sequence"))
            router, _ = self._need_mesh()
            target = "antiberty" if kind == "antibody" else "protein-embedding"
            payload = {"sequence": sequence, "task_type": "embedding", "options": {"per_residue": False}}
            try:
                result = router.predict(target, payload, deadline=EMBED_DEADLINE_S)
            except ClientError as exc:
                raise _upstream(exc) from None
            mean = result.data["mean"]
            answer = {"vector": mean, "dim": len(mean), "model": result.model, "served_by": result.instance}
            return as_message(answer, pb.Embedding)

    def StreamGenerateVariants(self, request, context) -> Iterator[Any]:
        """Sample ``n`` in-fillings of the region in one masked pass, then score and stream each in turn."""
        with guarded(self.admission, request, context):
            sequence = check_protein(request.sequence)
            start, end, n = request.start, request.end, request.n or 10
            if not 1 <= start <= end <= len(sequence) or end - start + 1 > MAX_REGION:
                raise ApiError(
                    ErrorCode.INVALID_REQUEST,
                    f"region must satisfy 1 <= start <= end <= {len(sequence)}, at most {MAX_REGION} residues",
                )
            if not 1 <= n <= MAX_VARIANTS:
                raise ApiError(ErrorCode.INVALID_REQUEST, f"n must be between 1 and {MAX_VARIANTS}")
            temperature = request.temperature or 1.0
            if not 0.05 <= temperature <= 5.0:
                raise ApiError(ErrorCode.INVALID_REQUEST, "temperature must be between 0.05 and 5")
            router, _ = self._need_mesh()
            positions = list(range(start, end + 1))
            body = {
                "sequence": sequence,
                "positions": positions,
                "n": n,
                "temperature": temperature,
                "seed": max(0, request.seed),
            }
            drawn = self._antiberty(router, "/api/v1/antiberty/infill", body)
            for i, candidate in enumerate(drawn["variants"]):
                if not context.is_active():  # the client went away: stop scoring
                    return
                scored = self._antiberty(
                    router, "/api/v1/antiberty/score", {"sequences": [candidate["sequence"]], "positions": positions}
                )
                variant = candidate["sequence"]
                yield as_message(
                    {
                        "index": i,
                        "sequence": variant,
                        "pseudo_log_likelihood": scored["results"][0]["pseudo_log_likelihood"],
                        "region": variant[start - 1 : end],
                        "model": drawn.get("model", "antiberty"),
                        "sample_log_prob": candidate["log_prob"],
                        "mutations": candidate["mutations"],
                    },
                    pb.Variant,
                )

    @staticmethod
    def _antiberty(router: Router, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return router.call("antiberty", "POST", path, json=body, deadline=EMBED_DEADLINE_S, idempotent=True).data
        except ClientError as exc:
            raise _upstream(exc) from None


def add_servicers(server: grpc.Server, vector_servicer: Any, model_servicer: ModelServicer) -> None:
    pb_grpc.add_VectorServiceServicer_to_server(vector_servicer, server)
    pb_grpc.add_ModelServiceServicer_to_server(model_servicer, server)
