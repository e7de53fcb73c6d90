"""modeld beside a peer server in one run, for `bench/serve.py --peer mlserver`.

The peer is Seldon MLServer with its XGBoost runtime, from its own venv (`--peer-python`,
made as `_common.MLSERVER_INSTALL` says), serving the very model.ubj the daemon trained
(spambase, xgboost, cv_folds 2), asked for `predict_proba`: what modeld answers. Every
server gets the same client shape: raw pre-serialized requests on sync gRPC channels;
V2 ModelInfer with one raw FP64 tensor for MLServer and for modeld's V2, Predict dense
for modeld's own API.

Each round (default 3) times, for every server, with the order rotated between rounds:
- latency, one call at a time on one channel per server: 1-row calls and the server's
  cheapest RPC (modeld: grpc.health.v1 Check; MLServer: ServerLive), all kinds
  interleaved in blocks of 50, so load from elsewhere hits them alike;
- throughput: 16 callers (4 spawned processes x 4 threads, one channel each) for
  `--seconds` after `--warmup`: the cheapest RPC, 1-row calls (calls/s), 100-row calls
  (rows/s).

With `--peer floor` (alone, or beside MLServer) three more servers join the rounds, each
built as the daemon's and answering 1-row Predict from the daemon's own reply with less and
less of modeld's work (floor_server.py: `grpc` the reply alone, `rpc` inside modeld's
wrapper, `edge` modeld's servicer over a service that returns the prediction); each is
timed against its own health Check, so the per-call ratios show what each layer costs on
the wire.

Figures are medians over the rounds, each printed with the median 1-minute load average
taken at the end of its measurements. Cold start and memory are bench/footprint.py's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import serve_oip
from _common import (
    CHANNEL_OPTIONS,
    SPAMBASE,
    git_commit,
    load_note,
    median,
    mlserver_folder,
    mlserver_version,
    percentile,
    running_daemon,
    spawned,
    train_and_wait,
)

from modeld.oip.v2 import inference_pb2 as oip
from modeld.v1 import model_manager_pb2 as pb

MODEL = "bench-xgboost"
PREDICT = "/modeld.v1.ModelManager/Predict"
HEALTH = "/grpc.health.v1.Health/Check"
SERVER_LIVE = "/inference.GRPCInferenceService/ServerLive"
CALL_TIMEOUT = 10.0
ONE_ROW_SET, BATCH_ROWS, BATCHES = 64, 100, 8
# The targets, modeld / MLServer.
TARGET_LATENCY_RATIO, TARGET_THROUGHPUT_RATIO = 1.0, 2.0


@dataclass
class Api:
    """One way to ask one server for predictions, and the server's cheapest RPC."""

    name: str  # a column of the table
    address: str
    pid: int
    method: str
    one_row: list[bytes]
    batches: list[bytes]
    cheapest: str  # the server's cheapest RPC; "" when another Api of the server times it
    peer: bool = False
    floor: bool = False  # a floor_server.py level: fixed replies, 1-row calls only


@dataclass
class Figures:
    """One Api's figures over the rounds: one value per round, and the load beside it."""

    values: dict[str, list[float]] = field(default_factory=dict)
    loads: dict[str, list[float]] = field(default_factory=dict)

    def add(self, figure: str, value: float, load: float) -> None:
        self.values.setdefault(figure, []).append(value)
        self.loads.setdefault(figure, []).append(load)


def v2_request(block: Any, proba: bool) -> bytes:
    """A serialized ModelInferRequest with one raw FP64 [N, F] tensor."""
    request = oip.ModelInferRequest(model_name=MODEL,
                                    raw_input_contents=[block.astype("<f8").tobytes()])
    request.inputs.add(name="input-0", datatype="FP64", shape=list(block.shape))
    if proba:  # MLServer's XGBoost runtime answers labels unless asked
        request.outputs.add(name="predict_proba")
    return request.SerializeToString()


def v2_answer(raw: bytes) -> Any:
    """The first floating-point output tensor of a serialized ModelInferResponse, as float64."""
    import numpy as np

    answer = oip.ModelInferResponse.FromString(raw)
    dtypes = {"FP32": "<f4", "FP64": "<f8"}
    k, out = next((k, o) for k, o in enumerate(answer.outputs) if o.datatype in dtypes)
    if answer.raw_output_contents:
        values = np.frombuffer(answer.raw_output_contents[k], dtype=dtypes[out.datatype])
    else:
        values = np.array(list(out.contents.fp64_contents) or list(out.contents.fp32_contents))
    return values.astype("float64").reshape([int(d) for d in out.shape])


def rows(frame: Any, columns: list[str]) -> tuple[list[Any], list[Any]]:
    matrix = frame[columns].to_numpy(dtype="float64")
    return ([matrix[i: i + 1] for i in range(ONE_ROW_SET)],
            [matrix[i * BATCH_ROWS: (i + 1) * BATCH_ROWS] for i in range(BATCHES)])


def train(base: Path) -> tuple[Path, list[str]]:
    """Trains the model in a throw-away daemon; returns its version folder and columns."""
    import json

    (base / "data").mkdir(parents=True)
    shutil.copy(SPAMBASE, base / "data" / "spambase.csv")
    with running_daemon(base) as daemon:
        job = train_and_wait(daemon.stub, pb.TrainRequest(
            model=MODEL, algorithm="xgboost", cv_folds=2,
            dataset=pb.Dataset(path="spambase.csv", target="is_spam")))
        if job.state != pb.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"training failed: {job.error} {job.message}")
    folder = base / "registry" / MODEL / "versions" / str(job.version)
    schema = json.loads((folder / "manifest.json").read_text())["schema"]
    return folder, list(schema["numeric"]) + list(schema["categorical"])


@contextlib.contextmanager
def peers(base: Path, model_file: Path, python: Path, workers: list[int], threads: list[int]
          ) -> Iterator[list[tuple[str, str, int]]]:
    """Starts one MLServer per (`workers`, `threads`) pair: parallel_workers, and
    OMP_NUM_THREADS (0: left unset, XGBoost's default of one thread per CPU); yields
    (name, address, pid) once each answers."""
    version = mlserver_version(python)
    with contextlib.ExitStack() as stack:
        out = []
        for n in workers:
            for omp in threads:
                folder = base / f"mlserver-{n}-{omp}"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                argv, address = mlserver_folder(folder, MODEL, model_file, python, n)
                env = {"OMP_NUM_THREADS": str(omp)} if omp else {}
                process = stack.enter_context(spawned(argv, folder, env))
                shown = f" OMP={omp}" if omp else ""
                out.append((f"MLServer {version} workers={n}{shown}", address, process.pid))
        for name, address, _ in out:
            wait_ready(address, name, base)
        yield out


@contextlib.contextmanager
def floors(base: Path, reply: bytes) -> Iterator[list[tuple[str, str, int]]]:
    """Starts one floor_server.py per level, each answering Predict with `reply` (the
    daemon's answer to a 1-row call); yields (name, address, pid) once each serves."""
    import floor_server

    with contextlib.ExitStack() as stack:
        out = []
        for level in floor_server.LEVELS:
            folder = base / f"floor-{level}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            (folder / "reply").write_bytes(reply)
            argv = [sys.executable, str(Path(floor_server.__file__).absolute()), level,
                    str(folder / "port"), str(folder / "reply")]
            process = stack.enter_context(spawned(argv, folder))
            out.append((f"floor {level}", folder, process))
        ready = []
        for name, folder, process in out:
            deadline = time.monotonic() + 60
            while not (folder / "port").exists() or not (folder / "port").read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; its log is {folder}/server.log")
                time.sleep(0.05)
            ready.append((name, f"127.0.0.1:{(folder / 'port').read_text()}", process.pid))
        yield ready


def wait_ready(address: str, name: str, base: Path, timeout: float = 180.0) -> None:
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        live = channel.unary_unary(SERVER_LIVE)
        deadline = time.monotonic() + timeout
        while True:
            try:
                live(b"", timeout=2)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer in {timeout:.0f} s; its log is "
                                       f"under {base}") from None
                time.sleep(0.05)


def check_answers(apis: list[Api], batch: Any, expected: Any) -> str:
    """Every Api answers the same probabilities for 100 rows (the positive class)."""
    import numpy as np

    notes = []
    for api in apis:
        if api.floor:  # fixed replies
            continue
        with grpc.insecure_channel(api.address, options=CHANNEL_OPTIONS) as channel:
            raw = channel.unary_unary(api.method)(api.batches[0], timeout=CALL_TIMEOUT)
        if api.method == PREDICT:
            got = np.array(pb.PredictResponse.FromString(raw).probabilities).reshape(-1, 2)
        else:
            got = v2_answer(raw)
        got = got[:, -1] if got.ndim == 2 else got
        notes.append(f"{api.name} {float(np.abs(got - expected).max()):.1e}")
    return "max |P(spam) - modeld Predict| on 100 rows: " + ", ".join(notes)


# ---- one round -------------------------------------------------------------------------------

def latency_round(apis: list[Api], calls: int, block: int, figures: dict[str, Figures]) -> None:
    """1-row calls and each server's cheapest RPC, one at a time, kinds interleaved in blocks."""
    channels = {api.address: grpc.insecure_channel(api.address, options=CHANNEL_OPTIONS)
                for api in apis}
    kinds: list[tuple[str, str, Callable[[int], object]]] = []
    for api in apis:
        channel = channels[api.address]
        call, payloads = channel.unary_unary(api.method), api.one_row
        kinds.append((api.name, "1-row", _caller(call, payloads)))
        if api.cheapest:
            kinds.append((api.name, "cheapest", _caller(channel.unary_unary(api.cheapest), [b""])))
    try:
        seconds: dict[tuple[str, str], list[float]] = {(a, f): [] for a, f, _ in kinds}
        for _, _, call in kinds:  # untimed: channels connected, servers warm
            for i in range(block):
                call(i)
        for start in range(0, calls, block):
            for api_name, figure, call in kinds:
                timed = seconds[(api_name, figure)]
                for i in range(start, min(calls, start + block)):
                    t0 = time.perf_counter()
                    call(i)
                    timed.append(time.perf_counter() - t0)
        load = os.getloadavg()[0]
        for (api_name, figure), values in seconds.items():
            figures[api_name].add(f"{figure} p50", 1000 * percentile(values, 50), load)
            figures[api_name].add(f"{figure} p99", 1000 * percentile(values, 99), load)
    finally:
        for channel in channels.values():
            channel.close()


def _caller(call: Any, payloads: list[bytes]) -> Callable[[int], object]:
    return lambda i: call(payloads[i % len(payloads)], timeout=CALL_TIMEOUT)


def throughput_round(apis: list[Api], pools: dict[str, Any], args: argparse.Namespace,
                     figures: dict[str, Figures]) -> None:
    for api in apis:
        pool = pools[api.address]
        phases = [("1-row calls/s", api.method, api.one_row, 1)]
        if api.batches:
            phases.append(("100-row rows/s", api.method, api.batches, BATCH_ROWS))
        if api.cheapest:
            phases.insert(0, ("cheapest calls/s", api.cheapest, [b""], 1))
        for figure, method, payloads, rows_per_call in phases:
            got = pool.run(f"{api.name} {figure}", method, payloads, rows_per_call,
                           args.warmup, args.seconds, api.pid)
            if got.errors:
                raise RuntimeError(f"{api.name} {figure}: failed calls {got.errors}")
            value = got.rows_per_s if rows_per_call > 1 else got.calls_per_s
            figures[api.name].add(figure, value, os.getloadavg()[0])
            print(f"    {api.name} {figure}: {value:,.0f} (load {os.getloadavg()[0]:.2f})",
                  flush=True)


# ---- the run -----------------------------------------------------------------------------------

def run(base: Path, args: argparse.Namespace, caller_pool: Callable[[str], Any]) -> int:
    """Trains the model, starts the servers, times them in rounds, prints the table."""
    import pandas as pd

    print(f"modeld vs {', '.join(args.peer)}: spambase xgboost; commit {git_commit()}")
    print(f"before: {load_note()}", flush=True)
    folder, columns = train(base / "train")
    one_row, batches = rows(pd.read_csv(SPAMBASE), columns)
    serving = base / "serve"
    (serving / "data").mkdir(parents=True)
    shutil.copytree(base / "train" / "registry", serving / "registry")
    with contextlib.ExitStack() as stack:
        daemon = stack.enter_context(running_daemon(serving))
        servers = []
        if "mlserver" in args.peer:
            servers = stack.enter_context(peers(base, folder / "model.ubj", args.peer_python,
                                                args.peer_workers, args.peer_omp_threads))
        fixed = []
        if "floor" in args.peer:
            with grpc.insecure_channel(daemon.address, options=CHANNEL_OPTIONS) as channel:
                reply = channel.unary_unary(PREDICT)(_dense(columns, one_row[0]),
                                                     timeout=CALL_TIMEOUT)
            fixed = stack.enter_context(floors(base, reply))
        apis = [
            Api("modeld Predict", daemon.address, daemon.pid, PREDICT,
                [_dense(columns, x) for x in one_row], [_dense(columns, x) for x in batches],
                HEALTH),
            Api("modeld V2", daemon.address, daemon.pid, serve_oip.MODEL_INFER,
                [v2_request(x, False) for x in one_row], [v2_request(x, False) for x in batches],
                ""),
        ]
        for name, address, pid in fixed:
            apis.append(Api(name, address, pid, PREDICT, apis[0].one_row, [], HEALTH,
                            floor=True))
        for name, address, pid in servers:
            apis.append(Api(name, address, pid, serve_oip.MODEL_INFER,
                            [v2_request(x, True) for x in one_row],
                            [v2_request(x, True) for x in batches], SERVER_LIVE, peer=True))
        expected = _predict_positive(daemon.stub, columns, batches[0])
        print(check_answers(apis, batches[0], expected))
        pools = {}
        for api in apis:
            if api.address not in pools:
                pools[api.address] = caller_pool(api.address)
                stack.callback(pools[api.address].close)
        print(f"servers up, {len(pools)} caller pools ready; {load_note()}", flush=True)
        figures = {api.name: Figures() for api in apis}
        for round_ in range(args.rounds):
            order = apis[round_ % len(apis):] + apis[:round_ % len(apis)]
            print(f"  round {round_ + 1}/{args.rounds}: latency", flush=True)
            latency_round(order, args.peer_calls, 50, figures)
            print(f"  round {round_ + 1}/{args.rounds}: throughput, {args.callers} callers",
                  flush=True)
            throughput_round(order, pools, args, figures)
    print(f"after: {load_note()}")
    report(apis, figures, args)
    return 0


def _dense(columns: list[str], block: Any) -> bytes:
    return pb.PredictRequest(model=MODEL, dense=pb.DenseRows(
        columns=columns, values=block.ravel().tolist())).SerializeToString()


def _predict_positive(stub: Any, columns: list[str], block: Any) -> Any:
    import numpy as np

    answer = stub.Predict(pb.PredictRequest.FromString(_dense(columns, block)),
                          timeout=CALL_TIMEOUT)
    return np.array(answer.probabilities).reshape(-1, 2)[:, 1]


# ---- the table -------------------------------------------------------------------------------

ROWS = [  # (label, figures, unit, lower is better)
    ("1-row p50 / p99", ["1-row p50", "1-row p99"], " ms", True),
    ("16 callers x 1 row", ["1-row calls/s"], " calls/s", False),
    ("16 callers x 100 rows", ["100-row rows/s"], " rows/s", False),
    ("cheapest RPC (health Check / ServerLive), p50", ["cheapest p50"], " ms", True),
    ("cheapest RPC, 16 callers", ["cheapest calls/s"], " calls/s", False),
]


def _fmt(value: float, unit: str) -> str:
    return f"{value:.2f}" if unit == " ms" else f"{value:,.0f}"


def _cell(figures: Figures, names: list[str], unit: str) -> str:
    if not all(n in figures.values for n in names):
        return "-"
    values = " / ".join(_fmt(median(figures.values[n]), unit) for n in names)
    load = median([x for n in names for x in figures.loads[n]])
    return f"{values}{unit} (load {load:.1f})"


def _server_figures(apis: list[Api], figures: dict[str, Figures], api: Api) -> Figures:
    """The Api's figures with its server's cheapest RPC filled in from the Api that timed it."""
    if api.cheapest:
        return figures[api.name]
    owner = next(a for a in apis if a.address == api.address and a.cheapest)
    merged = Figures(dict(figures[api.name].values), dict(figures[api.name].loads))
    for key in ("cheapest p50", "cheapest calls/s"):
        merged.values[key], merged.loads[key] = (figures[owner.name].values[key],
                                                 figures[owner.name].loads[key])
    return merged


def report(apis: list[Api], figures: dict[str, Figures], args: argparse.Namespace) -> None:
    mine = [a for a in apis if not a.peer and not a.floor]
    theirs = [a for a in apis if a.peer]
    full = {a.name: _server_figures(apis, figures, a) for a in apis}
    print()
    print(f"medians of {args.rounds} interleaved rounds; {args.callers} callers = "
          f"{args.caller_processes} processes x {args.callers // args.caller_processes} threads, "
          f"sync gRPC, prebuilt requests; phases {args.seconds:g} s after {args.warmup:g} s "
          f"warm-up; latency {args.peer_calls} calls per kind per round; (load) = median "
          f"1-minute load average when the figure was taken, {os.cpu_count()} CPUs")
    print()
    head = [a.name for a in apis] + [f"{m.name} / {t.name}" for t in theirs for m in mine]
    print("| figure | " + " | ".join(head) + " |")
    print("|---" * (len(head) + 1) + "|")
    for label, names, unit, _ in ROWS:
        cells = [_cell(full[a.name], names, unit) for a in apis]
        for t in theirs:
            for m in mine:
                cells.append(" / ".join(
                    f"{median(full[m.name].values[n]) / median(full[t.name].values[n]):.2f}"
                    for n in names))
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    for m in (a for a in apis if not a.peer):  # each against its own server's Check
        own = full[m.name]
        p50, rate = median(own.values["1-row p50"]), median(own.values["1-row calls/s"])
        health_p50, health_rate = (median(own.values["cheapest p50"]),
                                   median(own.values["cheapest calls/s"]))
        print(f"{m.name}: 1-row p50 {p50 / health_p50:.2f}x the health Check's (target <= 1.3), "
              f"16-caller 1-row calls/s {100 * rate / health_rate:.0f}% of the health Check's "
              f"(target >= 75%)")
    for t in theirs:
        for m in mine:
            bad = []
            for _label, names, _, lower in ROWS[:3]:
                for n in names:
                    ratio = median(full[m.name].values[n]) / median(full[t.name].values[n])
                    if (lower and ratio > TARGET_LATENCY_RATIO) or (
                            not lower and ratio < TARGET_THROUGHPUT_RATIO):
                        bad.append(f"{n} {ratio:.2f}")
            print(f"{m.name} vs {t.name}: latency ratios <= {TARGET_LATENCY_RATIO:g}, "
                  f"throughput >= {TARGET_THROUGHPUT_RATIO:g}: "
                  + ("ok" if not bad else "MISSED " + ", ".join(bad)))
    print("cold start and memory: bench/footprint.py --peer mlserver")
