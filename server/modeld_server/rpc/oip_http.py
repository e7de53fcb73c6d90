"""V2 over HTTP/JSON (`--http-listen`): the routes of the V2 REST spec on OpenInference.

`OipHttp.handle` is the whole protocol, free of any server library: method, path,
headers and body in; status, headers and body out. `serve_http` runs it on the standard
library's ThreadingHTTPServer (HTTP/1.1, keep-alive), with the daemon's bearer tokens
and TLS settings. Errors are the same domain errors as over gRPC, mapped once more to
HTTP codes, with the V2 body {"error": "..."}; every call is counted and logged as a
gRPC call is, under the same method names.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog

from modeld_server import errors
from modeld_server.auth import OIP_SERVICE, READER, TokenTable, is_open, required_role
from modeld_server.oip.core import OpenInference
from modeld_server.rpc import oip_json
from modeld_server.rpc.status import fit_details, status_for
from modeld_server.telemetry import RPC_LATENCY, RPC_REQUESTS

log = structlog.get_logger("modeld_server.rpc")

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}
"""A status code for each gRPC code the daemon answers with. FAILED_PRECONDITION is 409
(the state of the model conflicts), RESOURCE_EXHAUSTED 413 (too many rows, too large)."""

_MODEL = r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
Handler = Callable[["OipHttp", dict[str, str], "Request"], "Reply"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-case names."""
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json(doc: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(doc).encode(), [("Content-Type", "application/json")])


def _error(status: int, message: str) -> Reply:
    return _json({"error": message}, status)


class OipHttp:
    """V2 REST routes over one OpenInference."""

    def __init__(self, core: OpenInference, tokens: TokenTable | None = None,
                 open_health: bool = True) -> None:
        self._core = core
        self._tokens = tokens
        self._open_health = open_health

    def handle(self, request: Request) -> Reply:
        """Routes, authenticates, calls the core; never raises."""
        started, path = time.perf_counter(), urllib.parse.urlsplit(request.path).path
        route = _route(request.method, path)
        if isinstance(route, Reply):
            return route
        method, handler, params = route
        code, reply = grpc.StatusCode.OK, None
        try:
            self._check_token(method, request.headers.get("authorization", ""))
            reply = handler(self, params, request)
        except errors.ModeldError as exc:
            code = status_for(exc)
            reply = _error(HTTP_STATUS.get(code, 500), fit_details(exc.message))
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("rpc_internal_error", method=method, transport="http")
            reply = _error(500, "internal error; the daemon log has the details")
        seconds = time.perf_counter() - started
        RPC_REQUESTS.labels(method, code.name).inc()
        RPC_LATENCY.labels(method).observe(seconds)
        log.info("rpc", method=method, code=code.name, transport="http", status=reply.status,
                 duration_ms=round(seconds * 1000, 3))
        return reply

    def _check_token(self, method: str, header: str) -> None:
        if self._tokens is None or (self._open_health and is_open(OIP_SERVICE, method)):
            return
        token = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
        role = self._tokens.role_of(token) if token else None
        if role is None:
            raise errors.Unauthenticated("missing or unknown token: send header "
                                         "'Authorization: Bearer TOKEN'")
        needed = required_role(method, OIP_SERVICE)
        if needed != READER and role == READER:
            raise errors.PermissionDenied(f"{method} needs the {needed} role; this token is "
                                          f"a {role}")

    # ---- routes -----------------------------------------------------------------------------

    def live(self, params: dict[str, str], request: Request) -> Reply:
        return _json({"live": True})

    def ready(self, params: dict[str, str], request: Request) -> Reply:
        # The spec: 200 is true, a 4xx false (Triton answers 400).
        return _json({"ready": self._core.serving}, 200 if self._core.serving else 400)

    def server_metadata(self, params: dict[str, str], request: Request) -> Reply:
        name, version, extensions = self._core.server_metadata()
        return _json({"name": name, "version": version, "extensions": list(extensions)})

    def model_metadata(self, params: dict[str, str], request: Request) -> Reply:
        meta = self._core.model_metadata(params["name"], params["version"])
        return _json({"name": meta.name, "versions": meta.versions, "platform": meta.platform,
                      "inputs": [_tensor(t) for t in meta.inputs],
                      "outputs": [_tensor(t) for t in meta.outputs]})

    def model_ready(self, params: dict[str, str], request: Request) -> Reply:
        ready = self._core.model_ready(params["name"], params["version"])
        return _json({"name": params["name"], "ready": ready}, 200 if ready else 400)

    def infer(self, params: dict[str, str], request: Request) -> Reply:
        call = oip_json.infer_call(request.body, request.headers.get(oip_json.HEADER_LENGTH))
        answer = self._core.infer(params["name"], params["version"], call.inputs,
                                  call.per_column, call.wanted)
        body, header_length = oip_json.answer_body(answer, call)
        if header_length is None:
            return Reply(200, body, [("Content-Type", "application/json")])
        return Reply(200, body, [("Content-Type", "application/octet-stream"),
                                 ("Inference-Header-Content-Length", str(header_length))])

    def repository_index(self, params: dict[str, str], request: Request) -> Reply:
        ready = oip_json.parse_json(request.body, "the request body").get("ready") is True
        return _json([{"name": e.name, "version": e.version, "state": e.state,
                       "reason": e.reason} for e in self._core.index(ready)])

    def load(self, params: dict[str, str], request: Request) -> Reply:
        parameters = oip_json.parse_json(request.body, "the request body").get("parameters")
        self._core.load(params["name"], parameters if isinstance(parameters, dict) else {})
        return _json({})

    def unload(self, params: dict[str, str], request: Request) -> Reply:
        self._core.unload(params["name"])


def _tensor(t: Any) -> dict[str, Any]:
    return {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}


ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = [
    ("GET", re.compile(r"/v2/health/live"), "ServerLive", OipHttp.live),
    ("GET", re.compile(r"/v2/health/ready"), "ServerReady", OipHttp.ready),
    ("GET", re.compile(r"/v2/?"), "ServerMetadata", OipHttp.server_metadata),
    ("GET", re.compile(_MODEL + "/?"), "ModelMetadata", OipHttp.model_metadata),
    ("GET", re.compile(_MODEL + "/ready"), "ModelReady", OipHttp.model_ready),
    ("POST", re.compile(_MODEL + "/infer"), "ModelInfer", OipHttp.infer),
    ("POST", re.compile(r"/v2/repository/index"), "RepositoryIndex", OipHttp.repository_index),
    ("POST", re.compile(r"/v2/repository/models/(?P<name>[^/]+)/load"), "RepositoryModelLoad",
     OipHttp.load),
    ("POST", re.compile(r"/v2/repository/models/(?P<name>[^/]+)/unload"),
     "RepositoryModelUnload", OipHttp.unload),
]


def _route(method: str, path: str) -> tuple[str, Handler, dict[str, str]] | Reply:
    allowed = []
    for verb, pattern, name, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if verb == method:
            params = {k: urllib.parse.unquote(v or "") for k, v in match.groupdict().items()}
            params.setdefault("version", "")
            return name, handler, params
        allowed.append(verb)
    if allowed:
        return Reply(405, json.dumps({"error": f"{method} {path}: use {allowed[0]}"}).encode(),
                     [("Content-Type", "application/json"), ("Allow", allowed[0])])
    return _error(404, f"no V2 route {method} {path[:200]}")
