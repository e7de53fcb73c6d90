"""The daemon's lifecycle: start serving, load models, follow the registry, stop gracefully."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import structlog

from modeld_server.config import Settings
from modeld_server.rpc.drain import QUIET
from modeld_server.rpc.server import (
    ListenError,
    RpcServer,
    listen_address,
    warn_if_narrowed,
)

log = structlog.get_logger(__name__)


class Daemon:
    """A running daemon. Tests start one on port 0; __main__ starts one and waits for a signal.
    Built by compose.build_daemon."""

    def __init__(self, settings: Settings, rpc: RpcServer) -> None:
        self.settings = settings
        self.rpc = rpc
        self.service = rpc.service
        self._stopped = threading.Event()
        self._metrics_server: Any = None
        self.metrics_port = 0
        self._http_server: Any = None
        self.http_port = 0

    @property
    def port(self) -> int:
        return self.rpc.port

    @property
    def address(self) -> str:
        host = listen_address(self.settings).rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def start(self) -> Daemon:
        """Serves at once (health NOT_SERVING), loads models, reports SERVING, then (unless
        --no-training) warms up training in the background."""
        self.rpc.server.start()
        self.service.start()  # models, then the watcher, schedules and drift monitoring
        if self.settings.metrics_listen:
            self._serve_metrics(self.settings.metrics_listen)
        if self.settings.http_listen:
            self._serve_http(self.settings.http_listen)
        self.rpc.set_serving(True)
        if self.settings.port_file is not None:
            _write_port(self.settings.port_file, self.port)
        log.info("serving", address=self.address, registry=str(self.settings.registry),
                 models=len(self.service.index.models()), training=self.settings.training)
        if self.settings.training:
            # Only now: the forkserver's preload (scikit-learn, XGBoost, pandas and a
            # warm-up job) is a second Python process's start-up, and on a small machine
            # it competed with loading the models and the first Predict. A Train that
            # comes before it is done starts the forkserver itself (jobs.py).
            threading.Thread(target=self.service.warm_up, name="warm-up",
                             daemon=True).start()
        return self

    def _serve_metrics(self, listen: str) -> None:
        from prometheus_client import start_http_server

        from modeld_server.telemetry import registry_for

        host, _, port = listen.rpartition(":")
        try:
            self._metrics_server, _ = start_http_server(
                int(port), addr=host or "127.0.0.1", registry=registry_for(self.service.gauges))
        except OSError as exc:
            raise ListenError.of(exc, listen, "--metrics-listen", "MODELD_METRICS_LISTEN") from None
        self.metrics_port = self._metrics_server.server_port
        log.info("metrics_serving", address=f"{host}:{self.metrics_port}")

    def _serve_http(self, listen: str) -> None:
        from modeld_server.auth import TokenTable
        from modeld_server.rpc.http_server import serve_http
        from modeld_server.rpc.oip_http import OipHttp

        tokens = (TokenTable.load(self.settings.token_file)
                  if self.settings.token_file is not None else None)
        app = OipHttp(self.rpc.oip, tokens, open_health=self.settings.open_health)
        address = listen_address(self.settings, listen)
        warn_if_narrowed(listen, address)
        try:
            self._http_server = serve_http(app, address, self.settings)
        except OSError as exc:
            raise ListenError.of(exc, address, "--http-listen", "MODELD_HTTP_LISTEN") from None
        self.http_port = self._http_server.server_address[1]
        log.info("http_serving", address=f"{address.rpartition(':')[0]}:{self.http_port}")

    def stop(self, grace: float | None = None) -> None:
        """Answers new calls UNAVAILABLE, records running jobs as interrupted, lets the calls
        taken before finish (within `grace` seconds), then stops gRPC (see rpc/drain.py)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.grace_period if grace is None else grace
        deadline = time.monotonic() + grace
        self.rpc.gate.close()
        self.rpc.set_serving(False)  # after: NOT_SERVING means new calls are refused
        if self._http_server is not None:  # takes no new calls; in-flight ones finish
            self._http_server.shutdown()
            self._http_server.server_close()
        # WatchJob streams end with their jobs' final state. Runners get what is left of the
        # grace period to clean up; a staging folder they leave is swept at the next start.
        self.service.close(wait=max(0.0, deadline - time.monotonic()))  # and the watcher
        if not self.rpc.pool.wait_quiet(QUIET, deadline):
            log.warning("grace_period_over", grace_period=grace)
        left = max(0.0, deadline - time.monotonic())
        self.rpc.server.stop(left).wait(left + 1)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        log.info("stopped")


def _write_port(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)
