"""What a serving replica costs to start and to keep: cold start to the first prediction, and
memory, for the default daemon, a serve-only one (--no-training), and optionally a peer.

One XGBoost model (spambase, cv_folds 2) is trained once by a daemon; then each kind is
started fresh on a registry (or model folder) holding only that model, in rounds, the kinds
interleaved within each round so load from elsewhere hits them alike:

Each kind is first started once unmeasured (a fresh venv's first start also compiles
its bytecode). Then:

- cold start: from just before the process is spawned to the first successful V2
  ModelInfer (one raw FP64 row, a new gRPC channel, retried every 2 ms), the same request
  shape for every kind; MLServer is asked for `predict_proba`, what modeld answers.
- memory: proportional set size of the whole process tree (the process and every
  descendant, from /proc/*/smaps_rollup, so shared pages count once), read `--settle`
  seconds after the first prediction, once start-up work in the background (modeld's
  training warm-up, MLServer's worker) has had time to finish.

The 1-minute load average is printed beside every figure: on a shared machine a busy
minute moves cold starts by a factor of two.

`--peer mlserver --peer-venv DIR` adds Seldon MLServer with its XGBoost runtime, installed
in its own venv (`python3 -m venv DIR && DIR/bin/pip install mlserver==1.7.1
mlserver-xgboost==1.7.1 uvloop==0.21.0`), with its default settings (one parallel worker
process) apart from its three ports; `--peer-workers 0` (repeatable) sets parallel_workers,
0 predicting in MLServer's main process.

Run:  .venv/bin/python bench/footprint.py [--rounds 3] [--settle 8] [--peer mlserver]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from _common import (
    CHANNEL_OPTIONS,
    HOST,
    ROOT,
    SPAMBASE,
    descendants,
    git_commit,
    load_note,
    median,
    mlserver_folder,
    mlserver_version,
    pss_mib,
    running_daemon,
    scratch_folder,
    spawned,
    train_and_wait,
)

from modeld.oip.v2 import inference_pb2 as oip
from modeld.v1 import model_manager_pb2 as pb

MODEL = "spam"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
CALL_TIMEOUT = 5.0
START_TIMEOUT = 120.0


@dataclass
class Start:
    kind: str
    cold_s: float
    load_at_first: float
    pss_mib: float
    processes: int
    load_at_pss: float


@dataclass
class Kind:
    """How to start one kind of server in a fresh folder; returns (argv, address source)."""

    name: str
    prepare: Callable[[Path], tuple[list[str], Callable[[], str | None]]]
    ask_proba: bool = False


def load1() -> float:
    return os.getloadavg()[0]


def infer_request(row: list[float], proba: bool) -> bytes:
    """One raw FP64 [1, F] tensor: the shape of every client call here."""
    import numpy as np

    request = oip.ModelInferRequest(
        model_name=MODEL, raw_input_contents=[np.asarray([row], dtype="<f8").tobytes()])
    request.inputs.add(name="input-0", datatype="FP64", shape=[1, len(row)])
    if proba:
        request.outputs.add(name="predict_proba")
    return request.SerializeToString()


def modeld_kind(name: str, registry: Path, extra: list[str]) -> Kind:
    def prepare(folder: Path) -> tuple[list[str], Callable[[], str | None]]:
        shutil.copytree(registry, folder / "registry")
        (folder / "data").mkdir()
        port_file = folder / "port"
        argv = [sys.executable, "-m", "modeld_server", "serve", "--listen", f"{HOST}:0",
                "--registry", str(folder / "registry"), "--data-root", str(folder / "data"),
                "--state-dir", str(folder / "state"), "--port-file", str(port_file),
                "--log-format", "json", *extra]

        def address() -> str | None:
            with contextlib.suppress(FileNotFoundError, ValueError):
                return f"{HOST}:{int(port_file.read_text().strip())}"
            return None

        return argv, address

    return Kind(name, prepare)


def mlserver_kind(venv: Path, model_file: Path, workers: int | None) -> Kind:
    python = venv / "bin" / "python"

    def prepare(folder: Path) -> tuple[list[str], Callable[[], str | None]]:
        argv, address = mlserver_folder(folder, MODEL, model_file, python, workers)
        return argv, lambda: address

    shown = "" if workers is None else f" workers={workers}"
    return Kind(f"MLServer {mlserver_version(python)}{shown}", prepare, ask_proba=True)


def first_prediction(process: subprocess.Popen[bytes], address: Callable[[], str | None],
                     payload: bytes) -> float:
    """time.perf_counter() at the first successful ModelInfer."""
    deadline = time.perf_counter() + START_TIMEOUT
    channel = None
    try:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with code {process.returncode}")
            where = address()
            if where is None:
                time.sleep(0.002)
                continue
            if channel is None:
                channel = grpc.insecure_channel(where, options=CHANNEL_OPTIONS)
                infer = channel.unary_unary(MODEL_INFER)
            try:
                infer(payload, timeout=CALL_TIMEOUT)
                return time.perf_counter()
            except grpc.RpcError:
                time.sleep(0.002)
        raise TimeoutError(f"no prediction in {START_TIMEOUT:.0f} s")
    finally:
        if channel is not None:
            channel.close()


def one_start(kind: Kind, folder: Path, row: list[float], settle: float) -> Start:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    argv, address = kind.prepare(folder)
    payload = infer_request(row, kind.ask_proba)
    started = time.perf_counter()
    with spawned(argv, folder) as process:
        first = first_prediction(process, address, payload)
        at_first = load1()
        time.sleep(settle)
        pids = [process.pid, *descendants(process.pid)]
        pss = pss_mib(pids)
        out = Start(kind.name, first - started, at_first, pss, len(pids), load1())
    shutil.rmtree(folder, ignore_errors=True)
    return out


def train_model(base: Path) -> tuple[Path, list[float]]:
    """Trains the model once; returns its registry and one spambase row."""
    (base / "data").mkdir(parents=True)
    shutil.copy(SPAMBASE, base / "data" / SPAMBASE.name)
    with running_daemon(base) as daemon:
        job = train_and_wait(daemon.stub, pb.TrainRequest(
            model=MODEL, algorithm="xgboost", cv_folds=2,
            dataset=pb.Dataset(path=SPAMBASE.name, target="is_spam")))
        if job.state != pb.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"training failed: {job.error} {job.message}")
    header, first = SPAMBASE.read_text().splitlines()[:2]
    row = [float(v) for name, v in zip(header.split(","), first.split(","), strict=True)
           if name != "is_spam"]
    return base / "registry", row


def report(starts: list[Start], kinds: list[Kind]) -> None:
    print()
    print(f"{'':28} {'cold start s':>12} {'load':>5}  {'PSS tree MiB':>12} {'procs':>5} "
          f"{'load':>5}")
    for start in starts:
        print(f"  {start.kind:26} {start.cold_s:>12.3f} {start.load_at_first:>5.2f}  "
              f"{start.pss_mib:>12.0f} {start.processes:>5} {start.load_at_pss:>5.2f}")
    print()
    print("medians (load average range over the starts):")
    for kind in kinds:
        mine = [s for s in starts if s.kind == kind.name]
        loads = [s.load_at_first for s in mine] + [s.load_at_pss for s in mine]
        print(f"  {kind.name:26} cold start {median([s.cold_s for s in mine]):.3f} s, PSS "
              f"{median([s.pss_mib for s in mine]):.0f} MiB in {mine[-1].processes} "
              f"process(es); load {min(loads):.2f}-{max(loads):.2f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="starts of each kind")
    parser.add_argument("--settle", type=float, default=8.0,
                        help="seconds after the first prediction before reading memory")
    parser.add_argument("--peer", choices=["mlserver"], action="append", default=[])
    parser.add_argument("--peer-venv", type=Path, default=ROOT / ".venv-mlserver",
                        help="the venv holding mlserver and mlserver-xgboost")
    parser.add_argument("--peer-workers", type=int, action="append", default=[],
                        help="MLServer parallel_workers; repeat for several kinds (default: "
                             "its own default, 1; 0 predicts in its main process)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"footprint.py at commit {git_commit()}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs; {load_note()}")
    with scratch_folder("modeld-footprint-", args.keep) as base:
        registry, row = train_model(base / "train")
        model_file = registry / MODEL / "versions" / "1" / "model.ubj"
        kinds = [modeld_kind("modeld (default)", registry, []),
                 modeld_kind("modeld --no-training", registry, ["--no-training"])]
        if "mlserver" in args.peer:
            for workers in args.peer_workers or [None]:
                kinds.append(mlserver_kind(args.peer_venv, model_file, workers))
        print(f"trained; {load_note()}")
        for kind in kinds:  # unmeasured: bytecode caches written, files in the page cache
            one_start(kind, base / "start", row, 0.0)
        print(f"warmed up (one unmeasured start of each kind); {load_note()}")
        starts = []
        for round_ in range(args.rounds):
            # Rotate the order, so no kind always starts right after the same other one.
            for kind in kinds[round_ % len(kinds):] + kinds[:round_ % len(kinds)]:
                start = one_start(kind, base / "start", row, args.settle)
                print(f"  round {round_ + 1}: {start.kind}: cold start {start.cold_s:.3f} s "
                      f"(load {start.load_at_first:.2f}), PSS {start.pss_mib:.0f} MiB in "
                      f"{start.processes} process(es) (load {start.load_at_pss:.2f})",
                      flush=True)
                starts.append(start)
        report(starts, kinds)
    print(f"done; {load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
