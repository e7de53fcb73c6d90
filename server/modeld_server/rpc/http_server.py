"""Serves OipHttp on the standard library's ThreadingHTTPServer: HTTP/1.1 with keep-alive,
one thread per connection, TLS (and client certificates) as the gRPC port has them."""

from __future__ import annotations

import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from modeld_server.config import Settings
from modeld_server.rpc.oip_http import OipHttp, Reply, Request

log = structlog.get_logger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: OipHttp
    max_body: int

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (a failed TLS handshake, a client gone): one log line
        instead of the standard library's traceback on stderr."""
        log.warning("http_connection_failed", client=str(client_address[0]),
                    error=repr(sys.exception()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (40 ms on Linux) on every keep-alive call.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self._send(Reply(411, b'{"error": "Content-Length is required"}'))
            return
        if int(length) > self.server.max_body:
            self._send(Reply(413, (f'{{"error": "the body has {length} bytes, more than '
                                   f'max_message_bytes={self.server.max_body}"}}').encode()))
            self.close_connection = True
            return
        self._serve(self.rfile.read(int(length)))

    def _serve(self, body: bytes) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(self.server.app.handle(Request(self.command, self.path, headers, body)))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: OipHttp logs one line per call."""


def serve_http(app: OipHttp, address: str, settings: Settings) -> _Server:
    """Binds `address` (port 0 picks one) and serves in a background thread."""
    host, _, port = address.rpartition(":")
    server = _Server((host.strip("[]") or "127.0.0.1", int(port)), _Handler)
    server.app, server.max_body = app, settings.max_message_bytes
    if settings.tls_cert is not None and settings.tls_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca is not None:
            context.load_verify_locations(settings.tls_client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        # The handshake then runs on the connection's own thread, not in accept().
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
