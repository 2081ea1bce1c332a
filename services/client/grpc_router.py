"""gRPC calls through the mesh: the Router's balancers, ejection, retry budget and fallbacks, over gRPC.

    from services.client.grpc_router import GrpcRouter
    with GrpcRouter("http://127.0.0.1:8500") as router:
        result = router.unary("vector-search", "/compass.vectors.v1.VectorService/Search", request,
                              response_type=SearchResult, idempotent=True)
        result.data  # the response message; result.instance says who answered

A worker serving gRPC advertises the port in its registry metadata as ``grpc_port``; the
instance is reached at ``host:grpc_port``. :class:`GrpcRouter` is a :class:`Router` whose one
try (``_send``) is a gRPC call instead of an HTTP request: which instances are candidates, which
one is picked, when a failed try moves on and where the chain falls back to stay the Router's.

Errors follow the envelope: a worker puts its code name (``INVALID_REQUEST``, ``NOT_FOUND`` ...)
in the trailing metadata key ``error-code`` with the gRPC status of :data:`GRPC_STATUS`.
A try proved not to have run (connection refused, UNAVAILABLE with OVERLOADED, RATE_LIMITED)
moves to another instance; a refusal of the request itself (INVALID_ARGUMENT, NOT_FOUND ...)
is final (:class:`RequestFailed` with the HTTP status the code has in REST).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from services.client.call import CallResult, CallState
from services.client.discovery import Snapshot
from services.client.errors import ClientError, RequestFailed
from services.client.router import Router
from services.client.transport import Failure
from services.common.envelope import ErrorCode
from services.common.instance import Instance

ERROR_CODE_KEY = "error-code"
GRPC_METHOD = "GRPC"

# The envelope's codes as gRPC statuses (issue 22): one table for servers and clients.
GRPC_STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.INVALID_STRUCTURE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.INVALID_SEQUENCE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.INVALID_SMILES: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.SEQUENCE_TOO_LONG: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.METHOD_NOT_ALLOWED: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.PAYLOAD_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.OVERLOADED: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.MODEL_NOT_LOADED: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.PREDICTION_FAILED: grpc.StatusCode.INTERNAL,
    ErrorCode.INTERNAL_ERROR: grpc.StatusCode.INTERNAL,
}
# Codes that prove the request was refused before it ran (the HTTP side's 429 and 503).
_NOT_RUN_CODES = frozenset({"OVERLOADED", "MODEL_NOT_LOADED", "RATE_LIMITED"})
_CONNECT_HINTS = ("failed to connect", "connection refused", "connect failed", "no connection")


@dataclass(frozen=True)
class GrpcRequest:
    """What one gRPC call sends: the request message, how to read the answer, whether it streams."""

    message: Any
    response_type: Any
    streaming: bool = False
    metadata: tuple[tuple[str, str], ...] = ()


def grpc_address(inst: Instance) -> str | None:
    """``host:grpc_port`` of an instance that advertises one."""
    port = inst.metadata.get("grpc_port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return None
    host = f"[{inst.host}]" if ":" in inst.host else inst.host
    return f"{host}:{port}"


def error_code_of(err: grpc.RpcError) -> str | None:
    """The envelope code a server put in the trailing metadata, if any."""
    for key, value in getattr(err, "trailing_metadata", lambda: None)() or ():
        if key == ERROR_CODE_KEY:
            return str(value)
    return None


def http_status_of(code: str | None, status: grpc.StatusCode) -> int:
    """The HTTP status a REST client would have seen for the same refusal."""
    if code:
        try:
            return ErrorCode(code).status
        except ValueError:
            pass
    return {grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAUTHENTICATED: 401}.get(status, 500)


def classify_rpc_error(err: grpc.RpcError) -> tuple[Failure | None, str | None]:
    """A retryable :class:`Failure`, or None when the refusal is final; and the envelope code."""
    status = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    code = error_code_of(err)
    details = (err.details() if hasattr(err, "details") else str(err)) or ""
    if code in _NOT_RUN_CODES:
        return Failure(f"grpc-{status.name.lower()}", reached=False, details=details), code
    if status is grpc.StatusCode.UNAVAILABLE and code is None:
        if any(hint in details.lower() for hint in _CONNECT_HINTS):
            return Failure("refused", reached=False, refused=True, details=details), code
        return Failure("connection-lost", reached=True, details=details), code
    if status is grpc.StatusCode.DEADLINE_EXCEEDED:
        return Failure("read-timeout", reached=True, details=details), code
    if status in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) and code in (None, "INTERNAL_ERROR"):
        return Failure("grpc-internal", reached=True, details=details), code
    return None, code


class GrpcRouter(Router):
    """A :class:`Router` whose tries are gRPC calls on each instance's advertised ``grpc_port``.

    HTTP calls (``call``, ``predict``) still work on it as on any Router; the gRPC ones are
    :meth:`unary` and :meth:`stream`. Channels are kept per address and closed with the router.
    """

    def __init__(self, *args: Any, grpc_options: Sequence[tuple[str, Any]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._channels: dict[str, grpc.Channel] = {}
        self._channels_lock = threading.Lock()
        self._grpc_options = list(grpc_options)

    def close(self) -> None:
        with self._channels_lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()
        super().close()

    def unary(
        self,
        target: str,
        method: str,
        request: Any,
        *,
        response_type: Any,
        idempotent: bool = False,
        metadata: Mapping[str, str] | None = None,
        fallbacks: Sequence[str] | None = None,
        deadline: float | None = None,
        try_timeout: float | None = None,
    ) -> CallResult:
        """One unary call of ``method`` (``/package.Service/Method``); ``result.data`` is the response."""
        payload = GrpcRequest(request, response_type, False, tuple((metadata or {}).items()))
        return self.call(
            target,
            GRPC_METHOD,
            method,
            json=payload,
            fallbacks=fallbacks,
            deadline=deadline,
            try_timeout=try_timeout,
            idempotent=idempotent,
        )

    def stream(
        self,
        target: str,
        method: str,
        request: Any,
        *,
        response_type: Any,
        metadata: Mapping[str, str] | None = None,
        fallbacks: Sequence[str] | None = None,
        deadline: float | None = None,
    ) -> CallResult:
        """A server-streaming call; ``result.data`` iterates the messages.

        The try that fails before its first message moves to another instance like a unary one
        (a stream that has begun is never restarted elsewhere: its messages were delivered).
        """
        payload = GrpcRequest(request, response_type, True, tuple((metadata or {}).items()))
        return self.call(
            target, GRPC_METHOD, method, json=payload, fallbacks=fallbacks, deadline=deadline, idempotent=True
        )

    # -- one try ----------------------------------------------------------------------------------

    def _channel(self, address: str) -> grpc.Channel:
        with self._channels_lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = grpc.insecure_channel(address, options=self._grpc_options)
                self._channels[address] = channel
            return channel

    def _send(self, call: CallState, service: str, inst: Instance, snap: Snapshot, panic: bool) -> CallResult | None:
        payload = call.kwargs.get("json")
        if call.method != GRPC_METHOD or not isinstance(payload, GrpcRequest):
            return super()._send(call, service, inst, snap, panic)
        timeout = call.begin_try(inst.instance_id, self._clock.monotonic())
        address = grpc_address(inst)
        if address is None:
            failure = Failure("no-grpc-port", reached=False, details="instance advertises no grpc_port")
            return self._failed(call, service, inst, failure, None, None, 0.0)
        headers = call.kwargs.get("headers") or {}  # the Router's identity headers, the caller's over them
        own = {key for key, _ in payload.metadata}
        metadata = (
            ("x-request-id", call.request_id),
            ("x-client-id", str(headers.get("X-Client-ID", self.client_id))),
            *(
                (("authorization", headers["Authorization"]),)
                if "Authorization" in headers and "authorization" not in own
                else ()
            ),
            *payload.metadata,
        )
        pool = [i.instance_id for i in snap.instances]
        t0 = time.perf_counter()
        with self.loads.track(inst.instance_id):
            try:
                response = self._invoke(self._channel(address), call.path, payload, timeout, metadata)
            except grpc.RpcError as err:
                elapsed = time.perf_counter() - t0
                failure, code = classify_rpc_error(err)
                if failure is None:  # the worker understood and refused: final, as a 4xx is
                    self.outliers.record_success(inst.instance_id)
                    status = http_status_of(code, err.code())
                    call.record(
                        service,
                        inst,
                        f"grpc-{err.code().name.lower()}",
                        status=status,
                        code=code,
                        details=err.details() or "",
                        elapsed_s=elapsed,
                        reached=True,
                    )
                    raise RequestFailed(
                        f"{call.path} refused by {inst.instance_id}: {err.code().name} {code or ''} {err.details()}",
                        target=call.target,
                        attempts=call.attempts,
                        status=status,
                        code=code,
                        details=err.details() or "",
                    ) from None
                if failure.refused or failure.outcome in ("connection-lost", "read-timeout", "grpc-internal"):
                    self.outliers.record_failure(inst.instance_id, pool, refused=failure.refused)
                if failure.outcome == "read-timeout":
                    self.loads.observe(inst.instance_id, elapsed)
                return self._failed(call, service, inst, failure, None, code, elapsed)
        elapsed = time.perf_counter() - t0
        self.loads.observe(inst.instance_id, elapsed)
        self.outliers.record_success(inst.instance_id)
        call.record(service, inst, "ok", status=200, elapsed_s=elapsed, reached=True)
        return call.result(service, inst, snap, panic, 200, response, self._clock.monotonic())

    @staticmethod
    def _invoke(channel: grpc.Channel, method: str, payload: GrpcRequest, timeout: float, metadata: Any) -> Any:
        serialize = type(payload.message).SerializeToString
        if not payload.streaming:
            rpc = channel.unary_unary(
                method, request_serializer=serialize, response_deserializer=payload.response_type.FromString
            )
            return rpc(payload.message, timeout=timeout, metadata=metadata)
        rpc_stream = channel.unary_stream(
            method, request_serializer=serialize, response_deserializer=payload.response_type.FromString
        )
        responses = rpc_stream(payload.message, timeout=timeout, metadata=metadata)
        first = next(responses, None)  # a failure before the first message is retryable like a unary one
        return _Stream(first, responses)


class _Stream:
    """The messages of a server stream whose first one has arrived; later errors raise ClientError."""

    def __init__(self, first: Any, rest: Iterator[Any]) -> None:
        self._first = first
        self._rest = rest

    def __iter__(self) -> Iterator[Any]:
        if self._first is None:
            return
        yield self._first
        try:
            yield from self._rest
        except grpc.RpcError as err:
            code = error_code_of(err)
            raise ClientError(f"stream broke after it began: {err.code().name} {code or ''} {err.details()}") from None

    def cancel(self) -> None:
        cancel = getattr(self._rest, "cancel", None)
        if cancel is not None:
            cancel()
