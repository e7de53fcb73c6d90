"""Bearer tokens with roles, checked by a server interceptor before any servicer runs.

The token file holds one `ROLE TOKEN` pair per line (`#` starts a comment). A
reader may call the read-only RPCs and Predict; an operator may call every RPC.
Tokens never come from the command line, where `ps` would show them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog

log = structlog.get_logger(__name__)

READER, OPERATOR = "reader", "operator"
_RANK = {READER: 1, OPERATOR: 2}
READER_METHODS = frozenset({"GetStatus", "ListVersions", "GetVersion", "GetJob", "ListJobs",
                            "WatchJob", "Predict"})
OPEN_SERVICES = frozenset({"grpc.health.v1.Health",
                           "grpc.reflection.v1alpha.ServerReflection",
                           "grpc.reflection.v1.ServerReflection"})
OIP_SERVICE = "inference.GRPCInferenceService"
OIP_HEALTH_METHODS = frozenset({"ServerLive", "ServerReady"})
"""V2's health checks: open like grpc.health.v1 when --open-health."""
OIP_READER_METHODS = OIP_HEALTH_METHODS | {"ServerMetadata", "ModelReady", "ModelMetadata",
                                           "ModelInfer", "RepositoryIndex"}


class TokenFileError(ValueError):
    """The token file cannot be used; the message names the line."""


@dataclass(frozen=True)
class TokenTable:
    """Known tokens and their roles."""

    entries: tuple[tuple[bytes, str], ...]

    @classmethod
    def load(cls, path: Path) -> TokenTable:
        entries = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = text.split()
            if len(parts) != 2 or parts[0] not in _RANK:
                raise TokenFileError(f"{path}:{number}: expected 'reader TOKEN' or "
                                     "'operator TOKEN'")
            if len(parts[1]) < 16:
                raise TokenFileError(f"{path}:{number}: token shorter than 16 characters")
            entries.append((parts[1].encode(), parts[0]))
        if not entries:
            raise TokenFileError(f"{path}: no tokens")
        return cls(tuple(entries))

    def role_of(self, token: str) -> str | None:
        """The token's role, comparing against every entry in constant time."""
        presented = token.encode()
        role = None
        for known, known_role in self.entries:
            if hmac.compare_digest(presented, known):
                role = known_role
        return role


def required_role(method: str, service: str = "modeld.v1.ModelManager") -> str:
    """The role a method needs; anything not known to be a read needs operator."""
    if service == OIP_SERVICE:
        return READER if method in OIP_READER_METHODS else OPERATOR
    if service == "modeld.v1.ModelManager":
        return READER if method in READER_METHODS else OPERATOR
    return OPERATOR


def is_open(service: str, method: str) -> bool:
    """Health checks that need no token when --open-health."""
    return service in OPEN_SERVICES or (service == OIP_SERVICE and method in OIP_HEALTH_METHODS)


def _bearer(metadata: Any) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    return ""


class AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without a known token (UNAUTHENTICATED) or with too low a role."""

    def __init__(self, tokens: TokenTable, open_health: bool = True) -> None:
        self._tokens = tokens
        self._open_health = open_health

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        service, _, method = details.method.lstrip("/").partition("/")
        handler = continuation(details)
        if handler is None or (self._open_health and is_open(service, method)):
            return handler
        role = self._tokens.role_of(_bearer(details.invocation_metadata))
        if role is None:
            log.info("rpc_denied", method=method, code="UNAUTHENTICATED")
            return _refuse(handler, grpc.StatusCode.UNAUTHENTICATED,
                           "missing or unknown token: send metadata 'authorization: Bearer TOKEN'")
        needed = required_role(method, service)
        if _RANK[role] < _RANK[needed]:
            log.info("rpc_denied", method=method, code="PERMISSION_DENIED", role=role)
            return _refuse(handler, grpc.StatusCode.PERMISSION_DENIED,
                           f"{method} needs the {needed} role; this token is a {role}")
        return handler


def _refuse(handler: Any, code: grpc.StatusCode, message: str) -> Any:
    """A handler of the same shape as `handler` that only aborts."""
    def abort(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort, **kwargs)
    return grpc.unary_unary_rpc_method_handler(abort, **kwargs)
