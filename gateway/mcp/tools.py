"""The gateway's operations as typed MCP tools (the ``mcp`` SDK's ``MCPServer``).

Each tool is a thin call of :class:`~gateway.operations.Gateway`; its parameters (with their
descriptions and enums) become the tool's JSON schema. A tool answers its data as structured
content plus the same JSON as text; an error is an ``is_error`` result whose structured content is
``{"error": {"code", "message", "status"}}`` and whose text starts with the envelope's code, so an
agent can tell a bad input (INVALID_SEQUENCE: fix the call) from a missing service
(MODEL_NOT_LOADED: try later or elsewhere).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from gateway.operations import Gateway
from gateway.tasks import SEQUENCE_TYPES, TASKS
from services.common.envelope import ApiError, ErrorCode

log = logging.getLogger(__name__)

TaskName = Literal[tuple(TASKS)]  # type: ignore[valid-type]
SequenceTypeName = Literal[tuple(SEQUENCE_TYPES)]  # type: ignore[valid-type]
Sequences = Annotated[list[str], Field(min_length=1, description="the sequences, one string each")]
ModelName = Annotated[
    str | None, Field(description="a model (service) name from list_models; omitted: the best model for the task")
]
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
COMPUTE = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

INSTRUCTIONS = (
    "Tools over a mesh of scientific model workers (protein and antibody language models, SpliceAI, a codon "
    "optimiser, COMPASS binding affinity, docking, variant scoring, similarity search). Call list_models or "
    "best_model first when unsure which model serves a task; every answer says which worker served it. "
    "Errors start with a code: INVALID_* means fix the input, MODEL_NOT_LOADED means no worker serves it now."
)


def answer(run: Callable[[], Any]) -> CallToolResult:
    """Run one operation and shape its answer or its error as a tool result."""
    try:
        data = run()
    except ApiError as err:
        error = {"code": err.code.value, "message": err.details, "status": err.status}
        return CallToolResult(
            content=[TextContent(type="text", text=f"{err.code.value} ({err.status}): {err.details}")],
            structured_content={"error": error},
            is_error=True,
        )
    except Exception as exc:  # a gateway bug: say so without a traceback
        log.exception("tool failed")
        error = {
            "code": ErrorCode.INTERNAL_ERROR.value,
            "message": f"internal error: {type(exc).__name__}",
            "status": 500,
        }
        return CallToolResult(
            content=[TextContent(type="text", text=f"INTERNAL_ERROR (500): {error['message']}")],
            structured_content={"error": error},
            is_error=True,
        )
    structured = data if isinstance(data, dict) else {"result": data}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(structured))], structured_content=structured
    )


def build_mcp_server(get_gateway: Callable[[], Gateway | None], caller_token: str = "") -> MCPServer:
    """An MCP server whose tools run on the gateway ``get_gateway()`` returns.

    ``caller_token`` is the credential forwarded for every call on stdio, which carries no headers;
    over HTTP each request's own ``Authorization`` header is forwarded instead.
    """
    server = MCPServer("compass-mesh-gateway", instructions=INSTRUCTIONS, version="1.0.0")

    def gw() -> Gateway:
        gateway = get_gateway()
        if gateway is None:
            raise ApiError(ErrorCode.MODEL_NOT_LOADED, "the gateway is starting", retry_after=1)
        return gateway

    def auth(ctx: Context | None) -> str | None:
        headers = ctx.headers if ctx is not None else None
        if headers:
            found = headers.get("authorization") or headers.get("Authorization")
            if found:
                return found
        return f"Bearer {caller_token}" if caller_token else None

    def run_task(ctx: Context, task: str, body: dict[str, Any]) -> CallToolResult:
        clean = {k: v for k, v in body.items() if v is not None}
        return answer(lambda: gw().analyze({"task_type": task, **clean}, auth(ctx)))

    @server.tool(annotations=READ_ONLY)
    def list_models(
        loaded_only: Annotated[bool, Field(description="only models with a usable instance now")] = False,
    ) -> CallToolResult:
        """List the mesh's models: capabilities, sequence types, validated figures, instances and their health."""
        return answer(lambda: gw().models(loaded_only))

    @server.tool(annotations=READ_ONLY)
    def list_tasks() -> CallToolResult:
        """List the task types, the capability and sequence types of each, and which models serve it now."""
        return answer(lambda: gw().tasks())

    @server.tool(annotations=READ_ONLY)
    def best_model(
        task_type: Annotated[TaskName, Field(description="what to do")],
        sequence_type: Annotated[SequenceTypeName | None, Field(description="what the input is")] = None,
    ) -> CallToolResult:
        """The model to use for a task and sequence type, and the reason (capability, validated figure, load)."""
        return answer(lambda: gw().best(task_type, sequence_type))

    @server.tool(annotations=COMPUTE)
    def embed_sequences(
        ctx: Context,
        sequences: Sequences,
        sequence_type: Annotated[
            Literal["protein", "antibody"], Field(description="protein or antibody chain")
        ] = "protein",
        model_name: ModelName = None,
        per_residue: Annotated[bool, Field(description="also return one vector per residue (large)")] = False,
    ) -> CallToolResult:
        """Embed protein or antibody sequences with a protein language model (mean vector per sequence)."""
        body = {"sequences": sequences, "sequence_type": sequence_type, "model_name": model_name}
        return run_task(ctx, "embedding", {**body, "options": {"per_residue": per_residue}})

    @server.tool(annotations=COMPUTE)
    def score_sequences(
        ctx: Context,
        sequences: Sequences,
        sequence_type: Annotated[
            Literal["antibody", "protein"], Field(description="antibody chain or protein")
        ] = "antibody",
        model_name: ModelName = None,
    ) -> CallToolResult:
        """Pseudo-log-likelihood of each sequence under a masked language model (higher: more natural)."""
        body = {"sequences": sequences, "sequence_type": sequence_type, "model_name": model_name}
        return run_task(ctx, "likelihood", body)

    @server.tool(annotations=COMPUTE)
    def optimise_codons(
        ctx: Context,
        protein: Annotated[str, Field(min_length=1, description="protein sequence, one-letter codes")],
        host: Annotated[str, Field(description="codon usage table: e_coli, s_cerevisiae, h_sapiens, ...")] = "e_coli",
        avoid_sites: Annotated[list[str], Field(description="restriction enzymes whose sites to avoid")] = [],  # noqa: B006
        method: Annotated[Literal["use_best_codon", "match_codon_usage"], Field(description="design objective")] = (
            "use_best_codon"
        ),
    ) -> CallToolResult:
        """Design a coding DNA sequence for a protein in a host, under GC, site and repeat constraints."""
        options = {"host": host, "avoid_sites": avoid_sites, "method": method}
        return run_task(ctx, "codon_optimization", {"sequences": [protein], "options": options})

    @server.tool(annotations=COMPUTE)
    def find_splice_sites(
        ctx: Context,
        dna: Annotated[str, Field(min_length=1, description="DNA sequence (A, C, G, T, N)")],
        threshold: Annotated[float, Field(ge=0, le=1, description="report sites scoring at least this")] = 0.5,
    ) -> CallToolResult:
        """Splice acceptor and donor sites of a DNA sequence (SpliceAI), 1-based positions with scores."""
        options = {"threshold": threshold, "scores": False}
        return run_task(ctx, "splice", {"sequences": [dna], "options": options})

    @server.tool(annotations=COMPUTE)
    def predict_affinity(
        ctx: Context,
        protein_pdb: Annotated[str, Field(min_length=1, description="protein or pocket: the text of a PDB file")],
        ligand_sdf: Annotated[
            str | None, Field(description="ligand in its bound pose: the text of an SDF file")
        ] = None,
        ligand_mol2: Annotated[str | None, Field(description="or the ligand as MOL2 text")] = None,
        model_name: ModelName = None,
    ) -> CallToolResult:
        """Binding affinity (pK) of a protein-ligand complex, with its interval and applicability domain."""
        item = {
            k: v
            for k, v in {"protein_pdb": protein_pdb, "ligand_sdf": ligand_sdf, "ligand_mol2": ligand_mol2}.items()
            if v
        }
        return run_task(ctx, "affinity", {"inputs": [item], "model_name": model_name})

    @server.tool(annotations=COMPUTE)
    def dock(
        ctx: Context,
        protein_pdb: Annotated[str, Field(min_length=1, description="receptor: the text of a PDB file")],
        ligand_smiles: Annotated[str, Field(min_length=1, max_length=2000, description="the ligand as SMILES")],
        center: Annotated[
            list[float] | None, Field(min_length=3, max_length=3, description="box centre x, y, z (Å)")
        ] = None,
        size: Annotated[list[float] | None, Field(min_length=3, max_length=3, description="box size (Å)")] = None,
        reference_ligand_sdf: Annotated[
            str | None, Field(description="or: a ligand SDF whose extent sets the box")
        ] = None,
        exhaustiveness: Annotated[int, Field(ge=1, le=64)] = 8,
        n_poses: Annotated[int, Field(ge=1, le=20)] = 9,
        ring_conformers: Annotated[
            int, Field(ge=1, le=8, description="starts with distinct ring puckers, docked and pooled")
        ] = 1,
    ) -> CallToolResult:
        """Dock a molecule (SMILES) into a protein: ranked poses with Vina scores and a COMPASS pK."""
        if reference_ligand_sdf:
            box: dict[str, Any] = {"reference_ligand_sdf": reference_ligand_sdf, "padding": 4.0}
        elif center and size:
            box = {"center": center, "size": size}
        else:
            return answer(_raise(ErrorCode.INVALID_REQUEST, "give the box: center and size, or reference_ligand_sdf"))
        body = {"protein_pdb": protein_pdb, "ligand_smiles": ligand_smiles, "box": box}
        body |= {"exhaustiveness": exhaustiveness, "n_poses": n_poses, "ring_conformers": ring_conformers}
        return answer(
            lambda: gw().call_capability(
                "docking", "POST", "/dock", json=body, authorization=auth(ctx), idempotent=True
            )
        )

    @server.tool(annotations=COMPUTE)
    def score_variants(
        ctx: Context,
        variants: Annotated[list[str], Field(min_length=1, description="mutants (A23G notation) or full sequences")],
        template: Annotated[str | None, Field(description="the wild-type sequence the notation refers to")] = None,
        model_name: ModelName = None,
    ) -> CallToolResult:
        """Score variants with a trained variant-effect model."""
        body = {k: v for k, v in {"variants": variants, "template": template}.items() if v is not None}
        return answer(
            lambda: gw().call_capability(
                "variant-effect", "POST", "/predict", json=body, authorization=auth(ctx), service=model_name
            )
        )

    @server.tool(annotations=COMPUTE)
    def search_similar(
        ctx: Context,
        collection: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,64}$", description="the vector collection")],
        vectors: Annotated[list[list[float]] | None, Field(description="query vectors")] = None,
        sequences: Annotated[list[str] | None, Field(description="or protein sequences, embedded first")] = None,
        smiles: Annotated[
            str | None, Field(max_length=2000, description="or a molecule (fingerprint collections)")
        ] = None,
        top_k: Annotated[int, Field(ge=1, le=100)] = 10,
    ) -> CallToolResult:
        """Nearest neighbours in a vector collection, by query vectors, protein sequences or a SMILES."""

        def run() -> Any:
            body: dict[str, Any] = {"top_k": top_k}
            if smiles:
                body["smiles"] = smiles  # the vector worker fingerprints it as the collection was built
            else:
                queries = vectors
                if not queries and sequences:
                    embedded = gw().analyze({"task_type": "embedding", "sequences": sequences}, auth(ctx))
                    queries = [r["data"]["mean"] for r in embedded["results"] if r.get("success")]
                if not queries:
                    raise ApiError(ErrorCode.INVALID_REQUEST, "give vectors, sequences or smiles to search with")
                body["vectors"] = queries
            path = f"/api/v1/vectors/collections/{collection}/search"
            return gw().call_capability(
                "vector-search", "POST", path, json=body, authorization=auth(ctx), idempotent=True
            )

        return answer(run)

    @server.tool(annotations=READ_ONLY)
    def job_status(
        ctx: Context,
        service: Annotated[str, Field(description="the service that runs the job (compass, dock, variant...)")],
        job_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")],
    ) -> CallToolResult:
        """Status and progress of a long job (training, docking screen) on the worker that runs it."""
        return answer(lambda: gw().job_status(service, job_id, auth(ctx)))

    @server.tool(annotations=COMPUTE)
    def analyze(
        ctx: Context,
        task_type: Annotated[TaskName, Field(description="what to do (list_tasks describes each)")],
        sequences: Annotated[list[str] | None, Field(description="for sequence tasks")] = None,
        inputs: Annotated[list[dict[str, Any]] | None, Field(description="for structure and variant tasks")] = None,
        sequence_type: Annotated[SequenceTypeName | None, Field(description="what the input is")] = None,
        model_name: ModelName = None,
        options: Annotated[dict[str, Any] | None, Field(description="the worker's task options")] = None,
    ) -> CallToolResult:
        """Any task of list_tasks on the named or best model, with fallbacks; says who served it."""
        body = {"sequences": sequences, "inputs": inputs, "sequence_type": sequence_type, "model_name": model_name}
        return run_task(ctx, task_type, {**body, "options": options})

    return server


def _raise(code: ErrorCode, details: str) -> Callable[[], Any]:
    def run() -> Any:
        raise ApiError(code, details)

    return run
