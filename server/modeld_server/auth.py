"""Bearer tokens with roles, checked by a server interceptor before any servicer runs.

The token file holds one `ROLE TOKEN` pair per line. A `#` starts a comment only at the
start of a line or after a space or tab: inside a token it is part of the token, so a
file never sets a shorter secret than the one written. A reader may call the read-only
RPCs and Predict; an operator may call every RPC. Tokens never come from the command
line, where `ps` would show them.
"""

from __future__ import annotations

import hmac
import re
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
        """Reads `path`.

        Raises:
            TokenFileError: it cannot be read, is not ASCII, or a line is not `ROLE TOKEN`
                with a known role and a token of 16 or more printable characters.
        """
        entries: list[tuple[bytes, str]] = []
        seen: dict[str, int] = {}
        for number, line in enumerate(_read(path).split("\n"), start=1):
            fields = _fields(line.removesuffix("\r"), f"{path}:{number}")
            if not fields:
                continue
            if len(fields) != 2 or fields[0] not in _RANK:
                raise TokenFileError(f"{path}:{number}: expected 'reader TOKEN' or "
                                     f"'operator TOKEN', got {_shape(fields)}")
            role, token = fields
            if len(token) < MIN_TOKEN_LENGTH:
                raise TokenFileError(f"{path}:{number}: token shorter than "
                                     f"{MIN_TOKEN_LENGTH} characters ({len(token)})")
            if token in seen:
                raise TokenFileError(f"{path}:{number}: the same token as line {seen[token]}")
            seen[token] = number
            entries.append((token.encode(), role))
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


MIN_TOKEN_LENGTH = 16
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # what an HTTP/2 header value can carry, less space


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read the token file: {exc.strerror}") from None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TokenFileError(f"{path}:{line}: byte 0x{raw[exc.start]:02x} is not ASCII; "
                             "roles and tokens are printable ASCII") from None


def _fields(line: str, where: str) -> list[str]:
    """The words of a line before its comment: a word starting with `#`."""
    fields: list[str] = []
    for word in re.split(r"[ \t]+", line):
        if word.startswith("#"):
            break
        if word and not _TOKEN_CHARS.fullmatch(word):
            bad = next(c for c in word if not _TOKEN_CHARS.fullmatch(c))
            raise TokenFileError(f"{where}: character 0x{ord(bad):02x} is not allowed; roles "
                                 "and tokens are printable ASCII, separated by spaces or tabs")
        if word:
            fields.append(word)
    return fields


def _shape(fields: list[str]) -> str:
    """What a bad line holds, never echoing a word that could be a token."""
    if len(fields) != 2:
        return f"{len(fields)} word{'s' if len(fields) > 1 else ''}"
    role = fields[0]
    return f"unknown role {role!r}" if len(role) < MIN_TOKEN_LENGTH else "an unknown role"


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
            return refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                           "missing or unknown token: send metadata 'authorization: Bearer TOKEN'")
        needed = required_role(method, service)
        if _RANK[role] < _RANK[needed]:
            log.info("rpc_denied", method=method, code="PERMISSION_DENIED", role=role)
            return refusal(handler, grpc.StatusCode.PERMISSION_DENIED,
                           f"{method} needs the {needed} role; this token is a {role}")
        return handler


def refusal(handler: Any, code: grpc.StatusCode, message: str) -> Any:
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
