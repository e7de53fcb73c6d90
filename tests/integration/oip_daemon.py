"""A `modeld serve` subprocess with a few trained models, for the V2 (Open Inference) tests.

The daemon runs in its own process, as a Triton client's server would; the tests talk
to it with the real tritonclient and, to compare, with modeld's own Predict.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from tests.conftest import write_datasets

MAX_ROWS = 1000


@dataclass
class Served:
    """A daemon subprocess: its gRPC address, its HTTP address (if any), a modeld stub."""

    process: subprocess.Popen[bytes]
    base: Path
    address: str
    http_address: str
    channel: grpc.Channel
    stub: pb_grpc.ModelManagerStub

    def train(self, model: str, path: str, target: str, algorithm: str,
              metadata: tuple[tuple[str, str], ...] = ()) -> pb.Job:
        """Trains (two folds) and waits for the job to end."""
        job = self.stub.Train(pb.TrainRequest(
            model=model, dataset=pb.Dataset(path=path, target=target), algorithm=algorithm,
            cv_folds=2), metadata=metadata)
        last = job
        for event in self.stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=300,
                                        metadata=metadata):
            last = event.job
        assert last.state == pb.JOB_STATE_SUCCEEDED, last.error
        return last

    def stop(self) -> None:
        self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def serve(base: Path, *extra: str, http: bool = False) -> Served:
    """Starts `modeld serve` on 127.0.0.1 port 0 with folders under `base`."""
    if not (base / "data" / "spambase.csv").exists():
        write_datasets(base / "data")
    port_file = base / "port"
    port_file.unlink(missing_ok=True)
    http_args = ["--http-listen", "127.0.0.1:0"] if http else []
    process = subprocess.Popen(
        [sys.executable, "-m", "modeld_server", "serve", "--listen", "127.0.0.1:0",
         "--registry", str(base / "registry"), "--data-root", str(base / "data"),
         "--state-dir", str(base / "state"), "--port-file", str(port_file),
         "--grace-period", "1", "--max-predict-rows", str(MAX_ROWS), *http_args, *extra],
        stdout=subprocess.DEVNULL, stderr=(base / "daemon.log").open("ab"))
    deadline = time.monotonic() + 120
    while not port_file.exists() or not port_file.read_text().strip():
        assert process.poll() is None, (base / "daemon.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "daemon did not start"
        time.sleep(0.05)
    address = f"127.0.0.1:{port_file.read_text().strip()}"
    http_address = _http_address(base / "daemon.log") if http else ""
    channel = grpc.insecure_channel(address)
    return Served(process, base, address, http_address, channel, pb_grpc.ModelManagerStub(channel))


def _http_address(log: Path) -> str:
    """The HTTP address from the daemon's JSON log line `http_serving` (written before the
    port file, so it is there)."""
    for line in log.read_text().splitlines():
        if '"http_serving"' in line:
            return str(json.loads(line)["address"])
    raise AssertionError(f"no http_serving line in {log}")
