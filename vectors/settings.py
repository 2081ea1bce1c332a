"""Settings of the vector worker (``VECTORS_*``), each with its flag and help."""

from __future__ import annotations

from dataclasses import dataclass

import click

from services.common.cli import setting

_AT_LEAST_1 = click.IntRange(min=1)


@dataclass
class VectorSettings:
    """What a ``vectors`` worker needs beyond the runtime's settings."""

    milvus_uri: str = setting(
        "vectors.db",
        "Milvus Lite file (PATH.db, the default: embedded, one per process) or a Milvus server URI (http://host:19530)",
        env="VECTORS_MILVUS_URI",
    )
    milvus_token: str = setting(
        "",
        "Milvus server token (user:password or API key); prefer the environment",
        env="VECTORS_MILVUS_TOKEN",
        show_default=False,
    )
    grpc_port: int = setting(
        0,
        "gRPC port (0 picks a free one); advertised as metadata grpc_port",
        env="VECTORS_GRPC_PORT",
        type=click.IntRange(0, 65535),
    )
    api_token: str = setting(
        "",
        "token for mutating calls (prefer the environment; empty: none)",
        env="VECTORS_API_TOKEN",
        show_default=False,
    )
    max_top_k: int = setting(1000, "largest top_k of a search", env="VECTORS_MAX_TOP_K", type=_AT_LEAST_1)
    max_dim: int = setting(8192, "largest vector dimension of a collection", env="VECTORS_MAX_DIM", type=_AT_LEAST_1)
    max_items: int = setting(
        2000, "items per insert/upsert and ids per delete", env="VECTORS_MAX_ITEMS", type=_AT_LEAST_1
    )
    max_queries: int = setting(64, "query vectors per search", env="VECTORS_MAX_QUERIES", type=_AT_LEAST_1)
    max_metadata_bytes: int = setting(
        16384, "JSON size of one item's metadata", env="VECTORS_MAX_METADATA_BYTES", type=_AT_LEAST_1
    )
    index_save_s: float = setting(
        30.0,
        "with a Lite file: seconds between saves of changed in-process indexes beside it (0: only after "
        "rebuilds and at shutdown)",
        env="VECTORS_INDEX_SAVE_S",
        type=click.FloatRange(min=0),
    )
    max_grpc_message_bytes: int = setting(
        16 * 1024 * 1024,
        "largest gRPC request (the REST body limit is --max-body-bytes)",
        env="VECTORS_MAX_GRPC_MESSAGE_BYTES",
        type=_AT_LEAST_1,
    )
