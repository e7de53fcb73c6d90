"""Graceful stop: calls the daemon has taken finish, later ones get UNAVAILABLE, none CANCELLED.

grpc's `server.stop(grace)` lets the calls its Python layer has taken finish, but gRPC core
at once ends every call that reached the server and was not taken yet, with CANCELLED
(grpc/grpc#41785). The Python layer takes one call at a time per method, so under load
(30 Predicts at once) some are always waiting there: they got CANCELLED, which tells a
client nothing about whether to retry.

So the daemon stops in two steps. First the gate closes: every call taken from then on
is answered UNAVAILABLE at once (not run; safe to retry elsewhere), which keeps gRPC's own
queue short, and the calls taken before it run to their end, however long they waited for
a thread. Only once those are done and no call has come for QUIET seconds (or the grace
period is over) is gRPC stopped. A call taken before the signal has the answer its handler
gives; one after, UNAVAILABLE. What remains is a call that reaches gRPC in the instant it
stops: CANCELLED, until gRPC answers those UNAVAILABLE itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any, ParamSpec, TypeVar

import grpc
import structlog

from modeld_server.auth import OPEN_SERVICES, refusal
from modeld_server.telemetry import RPC_STARTED

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

QUIET = 0.2
"""Seconds without a new call before gRPC is stopped (calls still arriving are refused)."""
SHUTTING_DOWN = "the daemon is shutting down and takes no new calls; retry on another replica"


class CountingPool(futures.ThreadPoolExecutor):
    """The RPC threads, counting the calls handed to them.

    gRPC hands each call here as soon as it takes it, before a thread is free, and the
    task ends whether or not the handler ran (a call cancelled while it waited), so the
    count is exactly the calls taken and not yet answered.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._idle = threading.Condition()
        self._in_flight = 0
        self._last_taken = 0.0

    def submit(self, fn: Callable[P, T], /, *args: P.args,
               **kwargs: P.kwargs) -> futures.Future[T]:
        with self._idle:
            self._in_flight += 1
            self._last_taken = time.monotonic()
        RPC_STARTED.inc()
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, future: futures.Future[Any] | None) -> None:
        with self._idle:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.notify_all()

    def wait_quiet(self, quiet: float, deadline: float) -> bool:
        """Blocks until no call is in flight and none was taken for `quiet` seconds.

        Returns:
            False if the time.monotonic() `deadline` came first.
        """
        with self._idle:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    return False
                calm = now - self._last_taken
                if not self._in_flight and calm >= quiet:
                    return True
                until = deadline if self._in_flight else min(deadline, now + quiet - calm)
                self._idle.wait(until - now)


class DrainGate(grpc.ServerInterceptor):  # type: ignore[misc]
    """Lets calls through until close(); then answers UNAVAILABLE (health stays open, to
    report NOT_SERVING)."""

    def __init__(self) -> None:
        self._closed = False

    def close(self) -> None:
        self._closed = True

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if not self._closed or handler is None:
            return handler
        service, _, method = details.method.lstrip("/").partition("/")
        if service in OPEN_SERVICES:
            return handler
        log.info("rpc_refused", method=method, code="UNAVAILABLE", reason="shutting down")
        return refusal(handler, grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
