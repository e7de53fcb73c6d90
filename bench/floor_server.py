"""A gRPC server built as the daemon builds its own, answering Predict from a fixed reply:
what a 1-row Predict costs on the wire when less and less of modeld's work is done.

    python bench/floor_server.py LEVEL PORT_FILE REPLY_FILE

REPLY_FILE holds a serialized PredictResponse (the daemon's answer to a 1-row call). The
server has what the daemon's has around Predict (grpc.server with its options, the counting
pool of Settings' default size, the drain gate as interceptor, ModelManager's handlers with
Predict's wire parser, grpc.health.v1), and LEVEL says how much of Predict runs:

- grpc: the handler returns the reply (transport, thread hand-offs, parsing the request,
  serializing the reply);
- rpc: the same handler inside modeld's `@rpc` wrapper (request ids bound, two metrics,
  the per-RPC log line as JSON on stderr, which is this server's log);
- edge: modeld's own ModelManagerServicer.Predict over a service that returns the reply's
  prediction (the wrapper, the rows read from the request, the reply built from it): all
  of Predict but the core (checks, version pick, row matrix, the model, drift sampling).

It writes its port to PORT_FILE once serving and stops on SIGTERM. bench/serve_peer.py
(`serve.py --peer floor`) times each level beside the daemon.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld_server import logging as modeld_logging
from modeld_server.config import Settings
from modeld_server.rpc.convert import TASK_FROM_PB
from modeld_server.rpc.drain import CountingPool, DrainGate
from modeld_server.rpc.server import SERVICE_NAME, model_manager_handlers
from modeld_server.rpc.servicer import ModelManagerServicer
from modeld_server.rpc.status import rpc
from modeld_server.serving.loaded import Prediction

LEVELS = ("grpc", "rpc", "edge")


class FixedService:
    """Stands in for ModelService: every Predict answers `prediction` from version 1."""

    def __init__(self, prediction: Prediction) -> None:
        self._prediction = prediction

    def predict(self, model: str, version: int, alias: str, rows: Any, *,
                ignore_extra_columns: bool = False, explain: bool = False
                ) -> tuple[int, Prediction]:
        return 1, self._prediction


def prediction_of(reply: pb.PredictResponse) -> Prediction:
    """The Prediction that convert.prediction_to_pb turns into `reply` (a classifier's)."""
    classes = list(reply.classes)
    return Prediction(TASK_FROM_PB[reply.task], list(reply.labels), classes=classes,
                      probabilities=np.array(reply.probabilities).reshape(-1, len(classes)))


def servicer_for(level: str, reply: pb.PredictResponse) -> ModelManagerServicer:
    servicer = ModelManagerServicer(FixedService(prediction_of(reply)))  # type: ignore[arg-type]
    if level == "edge":
        return servicer

    # Named so: @rpc counts and logs a call under its function's name, as the daemon's.
    def Predict(self: Any, request: Any, context: Any) -> pb.PredictResponse:
        return reply

    handler = rpc(Predict) if level == "rpc" else Predict
    servicer.Predict = handler.__get__(servicer)  # type: ignore[method-assign]
    return servicer


def serve(level: str, port_file: Path, reply: pb.PredictResponse) -> None:
    modeld_logging.configure("json", "info")  # as the daemon logs: JSON lines on stderr
    settings = Settings()
    options = [("grpc.max_receive_message_length", settings.max_message_bytes),
               ("grpc.max_send_message_length", settings.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    pool = CountingPool(max_workers=settings.rpc_threads, thread_name_prefix="rpc")
    server = grpc.server(pool, options=options, interceptors=[DrainGate()])
    handlers = model_manager_handlers(servicer_for(level, reply))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME,
                                                                          handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
    checks = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    checks.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    port_file.write_text(str(port))
    while not stop.wait(0.5):
        pass
    server.stop(1).wait()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in LEVELS:
        print(__doc__, file=sys.stderr)
        return 2
    reply = pb.PredictResponse.FromString(Path(argv[2]).read_bytes())
    serve(argv[0], Path(argv[1]), reply)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
