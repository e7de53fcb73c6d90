"""The client's exceptions: one class per gRPC status code the daemon returns.

Every failed call raises a subclass of ``ModeldError`` chained ``from`` the
``grpc.RpcError``, carrying the status ``code`` and the daemon's ``message``
(its ``details()``). Catch a leaf to handle one outcome, ``ModeldError`` for all::

    ModeldError                  any failed call: .code, .message
    ├── InvalidArgument          INVALID_ARGUMENT     bad name, parameter, column, rows
    ├── NotFound                 NOT_FOUND            model, version, job or dataset
    │   (ModelNotFound)          the same class, under the name the docs use
    ├── AlreadyExists            ALREADY_EXISTS       request_id reused for another request
    ├── FailedPrecondition       FAILED_PRECONDITION  no active version, job already ended, ...
    ├── PermissionDenied         PERMISSION_DENIED    dataset outside the data root
    ├── Unauthenticated          UNAUTHENTICATED      no token, or an unknown one
    ├── ResourceExhausted        RESOURCE_EXHAUSTED   job queue full, too many rows
    ├── Unavailable              UNAVAILABLE          daemon down or restarting, model loading
    │   └── ConnectionFailed     the channel could not reach the daemon at all
    ├── DeadlineExceeded         DEADLINE_EXCEEDED    the call (or a wait) ran out of time
    ├── Cancelled                CANCELLED            the call was cancelled
    ├── Unimplemented            UNIMPLEMENTED        the daemon is older than this client
    ├── Internal                 INTERNAL             a bug in the daemon; its log has details
    └── UnknownError             any other code (UNKNOWN, ABORTED, OUT_OF_RANGE, DATA_LOSS)

The table mirrors the daemon's ``ERROR_TO_STATUS`` (python-api-core's
``from_grpc_error`` is the model).
"""

from __future__ import annotations

from typing import ClassVar

import grpc

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "ConnectionFailed",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "ModelNotFound",
    "ModeldError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "UnknownError",
    "from_rpc_error",
]


class ModeldError(Exception):
    """A call to the daemon failed.

    Attributes:
        code: The gRPC status code.
        message: The daemon's explanation (``details()``), or the client's own.
    """

    #: The code this class stands for; UnknownError takes it from each error.
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code if code is not None else self.grpc_code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(ModeldError):
    """The request is malformed: a name, parameter, column, value or page token."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ModeldError):
    """The model, version, job or dataset does not exist."""

    grpc_code = grpc.StatusCode.NOT_FOUND


# The spec and the README speak of ModelNotFound; it is the same class, so
# `except ModelNotFound` also catches a missing version or job.
ModelNotFound = NotFound


class AlreadyExists(ModeldError):
    """A Train request_id was already used for a different request."""

    grpc_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ModeldError):
    """The system is not in a state that allows the call (e.g. nothing to roll back to)."""

    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ModeldError):
    """The call is not allowed: a dataset path outside the data root, or a token's rights."""

    grpc_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ModeldError):
    """The daemon wants a token and got none, or an unknown one."""

    grpc_code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(ModeldError):
    """A limit was hit: the job queue is full, or too many rows were sent."""

    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ModeldError):
    """The daemon cannot answer now (down, restarting, or the model is still loading)."""

    grpc_code = grpc.StatusCode.UNAVAILABLE


class ConnectionFailed(Unavailable):
    """The channel never reached the daemon: refused, unresolvable, TLS handshake, timeout.

    ``code`` is UNAVAILABLE, or DEADLINE_EXCEEDED when the call ran out of time
    while still connecting. The message names the address tried.
    """


class DeadlineExceeded(ModeldError):
    """The call, or a client-side wait, ran out of time."""

    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(ModeldError):
    """The call was cancelled before it finished."""

    grpc_code = grpc.StatusCode.CANCELLED


class Unimplemented(ModeldError):
    """The daemon does not know this RPC: it is older than the client."""

    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ModeldError):
    """The daemon failed unexpectedly; its log holds the traceback."""

    grpc_code = grpc.StatusCode.INTERNAL


class UnknownError(ModeldError):
    """A status code the daemon does not return on purpose (UNKNOWN, ABORTED, ...)."""


_BY_CODE: dict[grpc.StatusCode, type[ModeldError]] = {
    cls.grpc_code: cls
    for cls in (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, PermissionDenied,
                Unauthenticated, ResourceExhausted, Unavailable, DeadlineExceeded, Cancelled,
                Unimplemented, Internal)
}


def exception_class_for(code: grpc.StatusCode) -> type[ModeldError]:
    """The exception class for a status code.

    Args:
        code: A gRPC status code.

    Returns:
        The matching subclass, or UnknownError for codes without one.
    """
    return _BY_CODE.get(code, UnknownError)


def from_rpc_error(err: grpc.RpcError) -> ModeldError:
    """Translates a failed call into the matching ModeldError.

    Use it as ``raise from_rpc_error(err) from err`` so the RpcError stays
    reachable as ``__cause__``.

    Args:
        err: The error raised by a stub call (a ``grpc.Call``).

    Returns:
        The exception to raise, with ``code`` and the daemon's ``message``.
    """
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    # A bare RpcError (not a Call) carries neither; treat it as UNKNOWN.
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    # An empty details() would print as "CODE: "; fall back to the code's name.
    message = (details_fn() if callable(details_fn) else None) or code.name
    return exception_class_for(code)(message, code)
