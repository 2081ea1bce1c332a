"""The worker's gRPC server: admission (drain, in-flight, token, size) and errors as gRPC statuses.

Every RPC runs inside :func:`guarded`: refused while the worker drains (UNAVAILABLE with
OVERLOADED), counted in the same in-flight limiter as HTTP requests (so a drain waits for gRPC
calls too and the registry sees their load), and any :class:`ApiError` ends the call with the
status of :data:`~services.client.grpc_router.GRPC_STATUS` and the envelope's code name in the
trailing metadata. The transport's own message limit sits above ``--max-grpc-message-bytes`` so
an oversized request gets our PAYLOAD_TOO_LARGE, not a bare transport error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any, NoReturn

import grpc

from services.client.grpc_router import ERROR_CODE_KEY, GRPC_STATUS
from services.common.auth import bearer_from_header, token_matches
from services.common.envelope import ApiError, ErrorCode
from services.worker.limits import OVERLOADED_RETRY_AFTER_S, InflightLimiter

log = logging.getLogger(__name__)

_MAX_DETAILS = 500


class Admission:
    """What every RPC checks before it runs; shared by the VectorService and ModelService servicers."""

    def __init__(
        self,
        limiter: InflightLimiter,
        draining: Callable[[], bool],
        api_token: str,
        max_message_bytes: int,
    ) -> None:
        self.limiter = limiter
        self.draining = draining
        self.api_token = api_token
        self.max_message_bytes = max_message_bytes

    def check(self, request: Any, context: grpc.ServicerContext, mutating: bool) -> None:
        if self.draining():
            raise ApiError(
                ErrorCode.OVERLOADED, "draining: this worker is shutting down", retry_after=OVERLOADED_RETRY_AFTER_S
            )
        size = request.ByteSize()
        if size > self.max_message_bytes:
            raise ApiError(
                ErrorCode.PAYLOAD_TOO_LARGE, f"request of {size} bytes exceeds the {self.max_message_bytes}-byte limit"
            )
        if mutating and self.api_token:
            header = dict(context.invocation_metadata()).get("authorization", "")
            given = bearer_from_header(header)
            if not given:
                raise ApiError(ErrorCode.UNAUTHORIZED, "this call needs metadata 'authorization: Bearer <token>'")
            if not token_matches(self.api_token, given):
                raise ApiError(ErrorCode.UNAUTHORIZED, "invalid token")


def abort(context: grpc.ServicerContext, err: ApiError) -> NoReturn:
    """End the RPC with the envelope code's status, and the code name in the trailing metadata."""
    context.set_trailing_metadata(((ERROR_CODE_KEY, err.code.value),))
    context.abort(GRPC_STATUS.get(err.code, grpc.StatusCode.INTERNAL), err.details[:_MAX_DETAILS])


@contextmanager
def guarded(
    admission: Admission, request: Any, context: grpc.ServicerContext, mutating: bool = False
) -> Iterator[None]:
    """Admit one RPC and translate what it raises (see the module docstring)."""
    try:
        admission.check(request, context, mutating)
        with admission.limiter.slot():
            yield
    except ApiError as err:
        abort(context, err)
    except grpc.RpcError:
        raise
    except Exception as exc:  # a bug is INTERNAL_ERROR with its type, never a bare traceback to the client
        if type(exc).__name__ == "_AbortError" or isinstance(exc, GeneratorExit):
            raise
        log.exception("gRPC call failed")
        abort(context, ApiError(ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))


def start_server(
    host: str, port: int, add: Callable[[grpc.Server], None], max_message_bytes: int, threads: int = 16
) -> tuple[grpc.Server, int]:
    """Bind and start a gRPC server with the servicers ``add`` registers; returns it and its port."""
    transport_limit = 4 * max_message_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", transport_limit),
            ("grpc.max_send_message_length", transport_limit),
            ("grpc.so_reuseport", 0),
        ],
    )
    add(server)
    bound = server.add_insecure_port(f"{'[' + host + ']' if ':' in host else host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {host}:{port}")
    server.start()
    return server, bound
