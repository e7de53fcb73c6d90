"""A scripted, in-process ModelManager on 127.0.0.1 port 0, for client and CLI unit tests.

Each RPC answers from a queue of outcomes set with ``fake.on(method, ...)``: a
reply message, a ``Fail(code, details)``, or a callable ``(request, context) ->
reply``; when the queue is empty it repeats its last outcome. WatchJob takes
lists of Job messages and Fails (a Fail inside a list aborts the stream there).
Every call is recorded with its request and metadata, so tests count attempts.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Fail:
    """Abort the call with this status."""

    code: grpc.StatusCode
    details: str


@dataclass
class Call:
    """One call the fake received."""

    method: str
    request: Any
    metadata: dict[str, str]


@dataclass
class FakeModelManager(pb_grpc.ModelManagerServicer):  # type: ignore[misc]
    """The scripted servicer; see the module docstring."""

    calls: list[Call] = field(default_factory=list)
    script: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, method: str, *outcomes: Any) -> FakeModelManager:
        self.script[method].extend(outcomes)
        return self

    def attempts(self, method: str) -> int:
        return sum(1 for c in self.calls if c.method == method)

    def requests(self, method: str) -> list[Any]:
        return [c.request for c in self.calls if c.method == method]

    def _next(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            self.calls.append(Call(method, request, dict(context.invocation_metadata())))
            queue = self.script[method]
            if not queue:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, f"fake: nothing scripted for {method}")
            outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(outcome) and not isinstance(outcome, Fail):
            outcome = outcome(request, context)
        if isinstance(outcome, Fail):
            context.abort(outcome.code, outcome.details)
        return outcome

    def WatchJob(self, request: Any, context: Any) -> Iterator[Any]:
        for item in self._next("WatchJob", request, context):
            if isinstance(item, Fail):
                context.abort(item.code, item.details)
            yield pb.JobEvent(job=item)


def _scripted(name: str) -> Callable[[FakeModelManager, Any, Any], Any]:
    def method(self: FakeModelManager, request: Any, context: Any) -> Any:
        return self._next(name, request, context)
    method.__name__ = name
    return method


# Every unary RPC of the contract answers from its script, so a new RPC needs no code here.
for _method in pb.DESCRIPTOR.services_by_name["ModelManager"].methods:
    if not _method.server_streaming:
        setattr(FakeModelManager, _method.name, _scripted(_method.name))


@dataclass
class Running:
    """A started fake: its servicer, its address and its health servicer."""

    fake: FakeModelManager
    address: str
    health: health.HealthServicer


@contextmanager
def running_fake() -> Iterator[Running]:
    """Serves a fresh FakeModelManager (and grpc.health.v1) on 127.0.0.1 port 0."""
    fake = FakeModelManager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_ModelManagerServicer_to_server(fake, server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Running(fake, f"127.0.0.1:{port}", health_servicer)
    finally:
        server.stop(grace=None)


def after(seconds: float, outcome: Any) -> Callable[[Any, Any], Any]:
    """An outcome that answers only after a delay (to trip client deadlines)."""
    def slow(request: Any, context: Any) -> Any:
        threading.Event().wait(seconds)
        return outcome
    return slow


def job(job_id: str = "j0001", state: int = pb.JOB_STATE_QUEUED, **fields: Any) -> pb.Job:
    """A Job message with sensible defaults."""
    values: dict[str, Any] = {"id": job_id, "model": "spam", "state": state}
    values.update(fields)
    return pb.Job(**values)


def metric(mean: float, std: float = 0.0, folds: tuple[float, ...] = ()) -> pb.MetricValue:
    return pb.MetricValue(mean=mean, std=std, folds=list(folds))
