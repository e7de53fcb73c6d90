"""Domain errors -> gRPC status codes, and the wrapper every servicer method wears.

The wrapper counts each RPC in the metrics and logs one canonical line per RPC (method,
code, duration) with the request's model/job ids bound, and turns anything unexpected
into INTERNAL with a generic message and the traceback in the log: never UNKNOWN. A unary
call's line is written once its response has been sent (see _log_after). Every message is cut
to MAX_DETAILS_BYTES on the wire, whatever a domain error quoted.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError, Message
from structlog.contextvars import bind_contextvars, reset_contextvars

from modeld_server import errors
from modeld_server.logging import rpc_line
from modeld_server.telemetry import RPC_LATENCY, RPC_REQUESTS

log = structlog.get_logger("modeld_server.rpc")

ERROR_TO_STATUS: dict[type[errors.ModeldError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}

WRAPPED_ATTR = "__modeld_rpc__"
MAX_DETAILS_BYTES = 4096
"""The most a status message may take in its header (grpc-message, percent-encoded): half
a default client's 8 KiB metadata limit, past which the client sees RESOURCE_EXHAUSTED
instead of our code. errors.quoted() keeps messages far below it; this is the backstop."""
_CUT = " ... (message cut)"
_F = TypeVar("_F", bound=Callable[..., Any])


class Undecodable:
    """What a request deserializer returns for bytes that are not its message.

    grpcio answers a deserializer that raises with INTERNAL "Exception deserializing
    request!" and never calls the method; garbage from a client is INVALID_ARGUMENT. So
    the deserializer returns this instead, and `rpc` refuses it with that code.
    """

    def __init__(self, message: str, reason: str) -> None:
        self.message = message
        self.reason = reason


def decoder(message: Any, name: str) -> Callable[[bytes], Any]:
    """`message.FromString` that returns Undecodable for bytes that do not parse.

    Args:
        message: the request's message class.
        name: the request type as the contract names it (modeld.v1.TrainRequest).
    """
    parse = message.FromString

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return Undecodable(name, str(exc))

    return decode


def _decoded(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise errors.InvalidArgument(f"the request is not a valid {request.message} message "
                                     f"({request.reason})")


def status_for(exc: errors.ModeldError) -> grpc.StatusCode:
    """The status code of a domain error, looked up along its MRO."""
    for cls in type(exc).__mro__:
        code = ERROR_TO_STATUS.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def fit_details(message: str, limit: int = MAX_DETAILS_BYTES) -> str:
    """`message` cut so that its percent-encoded UTF-8 takes at most `limit` bytes.

    gRPC sends printable ASCII as is and every other byte (and '%') as '%XX'.
    """
    if len(message) * 12 <= limit:  # 4 UTF-8 bytes a character, 3 wire bytes each
        return message
    budget, used, cut = limit - len(_CUT), 0, 0
    for i, char in enumerate(message):
        if used <= budget:
            cut = i
        used += _wire_bytes(char)
        if used > limit:
            return message[:cut] + _CUT
    return message


def _wire_bytes(char: str) -> int:
    if " " <= char <= "~" and char != "%":
        return 1
    return 3 * len(char.encode("utf-8", "surrogatepass"))


_ID_FIELDS = (("model", "model"), ("model_name", "model"), ("job_id", "job_id"))
_id_fields: dict[type, tuple[tuple[str, str], ...]] = {}
"""Per message class, which of _ID_FIELDS it has as strings (model_name: V2's ModelInfer
and repository calls, rpc/oip.py): a message's fields never change, so each call reads
only those instead of trying all three."""


def _ids(request: Any) -> dict[str, str]:
    fields = _id_fields.get(type(request))
    if fields is None:
        fields = tuple((name, key) for name, key in _ID_FIELDS
                       if isinstance(getattr(request, name, None), str))
        if isinstance(request, Message):
            _id_fields[type(request)] = fields
        else:  # anything else may differ per object: all three, each time
            fields = _ID_FIELDS
    ids = {}
    for name, key in fields:
        value = getattr(request, name, "")
        if isinstance(value, str) and value:
            ids[key] = value[:80]
    return ids


def _fail(context: grpc.ServicerContext, method: str, exc: BaseException) -> grpc.StatusCode:
    """Aborts the call with the right code; returns it for the log line."""
    known = errors.known_error(exc)
    if known is not None:
        if not isinstance(exc, errors.ModeldError):  # the operator must hear of a full disk
            log.warning("rpc_storage_error", method=method, error=known.message)
        code, message = status_for(known), fit_details(known.message)
    else:
        log.exception("rpc_internal_error", method=method)
        code, message = grpc.StatusCode.INTERNAL, "internal error; the daemon log has the details"
    context.abort(code, message)
    return code  # not reached: abort raises


def rpc(fn: _F) -> _F:
    """Wraps a unary or server-streaming servicer method with error mapping and logging."""
    method = fn.__name__

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            started, code = time.perf_counter(), grpc.StatusCode.OK
            with structlog.contextvars.bound_contextvars(**_ids(request)):
                try:
                    _decoded(request)
                    yield from fn(self, request, context)
                except Exception as exc:
                    code = _code_of(exc)
                    _fail(context, method, exc)
                finally:
                    _count(method, code, time.perf_counter() - started)

        setattr(stream, WRAPPED_ATTR, True)
        return stream  # type: ignore[return-value]

    @functools.wraps(fn)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        started, code = time.perf_counter(), grpc.StatusCode.OK
        # bind + reset by token rather than bound_contextvars(), which copies the whole
        # context to save what it overwrites: the same effect, a third of the cost.
        tokens = bind_contextvars(**_ids(request))
        try:
            _decoded(request)
            return fn(self, request, context)
        except Exception as exc:
            code = _code_of(exc)
            _fail(context, method, exc)
        finally:
            _log_after(context, method, code, time.perf_counter() - started)
            reset_contextvars(**tokens)

    setattr(unary, WRAPPED_ATTR, True)
    return unary  # type: ignore[return-value]


def _code_of(exc: BaseException) -> grpc.StatusCode:
    known = errors.known_error(exc)
    return status_for(known) if known is not None else grpc.StatusCode.INTERNAL


_metrics: dict[tuple[str, grpc.StatusCode], tuple[Any, Any]] = {}
"""(method, code) -> its RPC_REQUESTS and RPC_LATENCY children: the objects labels()
returns each time (it takes a lock and builds the key per call)."""


def _count(method: str, code: grpc.StatusCode, seconds: float) -> None:
    """Counts the call in the metrics and writes its line, now."""
    _metric(method, code, seconds)
    _line(method, code, seconds)


def _log_after(context: grpc.ServicerContext, method: str, code: grpc.StatusCode,
               seconds: float) -> None:
    """Counts the call now (a scrape after the response sees it), and writes its line once
    the response has been sent: grpc runs a context's callbacks when the RPC ends, on its
    polling thread, so the line (~25 us of a 1-row Predict: JSON, context variables, the
    write) is off the caller's latency. The callback runs in a copy of this context, so the
    line carries the request's bound ids. Written here and now when the context takes no
    callbacks (a test's stand-in, or the RPC has already ended)."""
    _metric(method, code, seconds)
    add_callback = getattr(context, "add_callback", None)
    if add_callback is not None and add_callback(functools.partial(
            contextvars.copy_context().run, _line, method, code, seconds)):
        return
    _line(method, code, seconds)


def _metric(method: str, code: grpc.StatusCode, seconds: float) -> None:
    children = _metrics.get((method, code))
    if children is None:
        children = _metrics[(method, code)] = (RPC_REQUESTS.labels(method, code.name),
                                               RPC_LATENCY.labels(method))
    children[0].inc()
    children[1].observe(seconds)


def _line(method: str, code: grpc.StatusCode, seconds: float) -> None:
    duration_ms = round(seconds * 1000, 3)
    if not rpc_line(method, code.name, duration_ms):
        log.info("rpc", method=method, code=code.name, duration_ms=duration_ms)
