"""Builds the gRPC server: ModelManager, V2 inference, health and reflection, on one port."""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.auth import AuthInterceptor, TokenTable
from modeld_server.config import Settings
from modeld_server.oip.core import OpenInference
from modeld_server.rpc.drain import CountingPool, DrainGate
from modeld_server.rpc.oip import OipServicer, add_oip
from modeld_server.rpc.reflection import enable_reflection
from modeld_server.rpc.servicer import ModelManagerServicer
from modeld_server.rpc.status import decoder
from modeld_server.rpc.struct_rows import PredictWire
from modeld_server.service import ModelService

log = structlog.get_logger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ModelManager"].full_name


@dataclass(kw_only=True)
class RpcServer:
    """The gRPC side of a daemon, built and bound, not yet started: the server, its port,
    the core it serves, health, the drain gate and the V2 core."""

    server: grpc.Server
    port: int
    service: ModelService
    health: health.HealthServicer
    gate: DrainGate
    pool: CountingPool
    oip: OpenInference

    def set_serving(self, serving: bool) -> None:
        self.oip.serving = serving  # V2's ServerReady says the same as health
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)


def build_server(settings: Settings, service: ModelService) -> RpcServer:
    """Creates the server over `service` and binds settings.listen (port 0 picks a free one).

    Returns:
        The server, with health NOT_SERVING until the caller loads models and flips it.
    """
    interceptors: list[grpc.ServerInterceptor] = []
    if settings.token_file is not None:
        interceptors.append(AuthInterceptor(TokenTable.load(settings.token_file),
                                            open_health=settings.open_health))
    gate = DrainGate()
    interceptors.append(gate)  # after auth: an unknown caller learns nothing more
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    pool = CountingPool(max_workers=settings.rpc_threads, thread_name_prefix="rpc")
    server = grpc.server(pool, options=options, interceptors=interceptors)
    add_model_manager(ModelManagerServicer(service), server)
    oip = OpenInference(service)
    add_oip(OipServicer(oip), server)  # not in reflection: see rpc/oip.py
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    port = _bind(server, settings)
    built = RpcServer(server=server, port=port, service=service, health=health_servicer,
                      gate=gate, pool=pool, oip=oip)
    built.set_serving(False)
    return built


def model_manager_handlers(servicer: ModelManagerServicer) -> dict[str, grpc.RpcMethodHandler]:
    """What the generated add_ModelManagerServicer_to_server registers, built from the
    service's descriptor, except that Predict's request is parsed as PredictRequestWire:
    its records stay bytes until StructRows needs them (see struct_rows.PredictWire)."""
    handlers = {}
    for method in pb.DESCRIPTOR.services_by_name["ModelManager"].methods:
        request = (PredictWire if method.name == "Predict"
                   else getattr(pb, method.input_type.name))
        make = (grpc.unary_stream_rpc_method_handler if method.server_streaming
                else grpc.unary_unary_rpc_method_handler)
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=decoder(request, method.input_type.full_name),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString)
    return handlers


def add_model_manager(servicer: ModelManagerServicer, server: grpc.Server) -> None:
    handlers = model_manager_handlers(servicer)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def listen_address(settings: Settings, listen: str | None = None) -> str:
    """settings.listen (or `listen`), narrowed to loopback when nothing authenticates callers.

    Pure, so callers may ask again; warn_if_narrowed logs the narrowing, once per listener."""
    listen = settings.listen if listen is None else listen
    host, _, port = listen.rpartition(":")
    if settings.token_file is not None or settings.allow_unauthenticated_network:
        return listen
    if _is_loopback(host):
        return listen
    return f"127.0.0.1:{port}"


def warn_if_narrowed(requested: str, address: str) -> None:
    """Logs that `requested` became `address` because nothing authenticates callers."""
    if address != requested:
        log.warning("listening_on_loopback_only", requested=requested,
                    reason="no --token-file; pass --allow-unauthenticated-network to listen on "
                           f"{requested.rpartition(':')[0]} without authentication")


class ListenError(OSError):
    """The daemon cannot listen on its address; the message says why and what to pass."""

    @classmethod
    def of(cls, exc: OSError, address: str, flag: str, env: str) -> ListenError:
        """The one-line error for `exc`, raised binding the listener set by `flag`/`env`."""
        hint = f"pass {flag} HOST:PORT or set {env}"
        if exc.errno == errno.EADDRINUSE:
            return cls(f"{address} is in use; {hint}")
        return cls(f"cannot listen on {address}: {exc.strerror or exc}; {hint}")


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(server: grpc.Server, settings: Settings) -> int:
    address = listen_address(settings)
    warn_if_narrowed(settings.listen, address)
    credentials = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
            root_certificates=client_ca, require_client_auth=client_ca is not None)
    _probe(address)
    try:
        port = (server.add_insecure_port(address) if credentials is None
                else server.add_secure_port(address, credentials))
    except RuntimeError:  # grpc's "Failed to bind to address", with the reason on stderr
        port = 0
    if port == 0:
        raise ListenError(f"cannot listen on {address}; {_LISTEN_HINT}")
    return int(port)


_LISTEN_HINT = "pass --listen HOST:PORT or set MODELD_LISTEN"


def _probe(address: str) -> None:
    """Binds the address as grpc will (SO_REUSEADDR) and lets go: grpc's own failure is a bare
    port 0 and a C-core log line, so the common causes are named here first.

    Raises:
        ListenError: the port is in use, or the host cannot be bound (or resolved).
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ListenError(f"cannot listen on {address}: {exc}; {_LISTEN_HINT}") from None
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ListenError(f"{address} is in use; {_LISTEN_HINT}") from None
            raise ListenError(
                f"cannot listen on {address}: {exc.strerror}; {_LISTEN_HINT}") from None
