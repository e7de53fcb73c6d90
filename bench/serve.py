"""What serving costs: Predict latency, throughput, cold start, memory and CPU, each beside a floor.

A daemon runs in a subprocess with its default settings, only on 127.0.0.1. Through it
this script trains two models on spambase, xgboost and logistic_regression (cv_folds 2:
the served model is the final fit on all rows either way). Every figure is printed
beside a floor measured in the same run, on the same model (the version's own
artifacts, loaded in this process) and the same rows (real spambase rows):

(a) latency, one call at a time: Predict with 1 row in both request forms (dense,
    records) and with 100 dense rows, against the in-process library call (the floor:
    XGBClassifier.predict_proba; for logistic regression the saved preprocessor and
    estimator), modeld's own predict core called in-process, and a bare gRPC round
    trip (grpc.health.v1 Check) on the same channel. The kinds run interleaved in
    blocks, so load from elsewhere hits them alike. Daemon CPU per call from /proc.
(b) throughput: 16 concurrent callers (4 processes x 4 threads, one channel each,
    sending pre-serialized bytes so the client stays light) for a fixed time; 1-row
    calls (calls/s) and 100-row calls (rows/s) in both forms. Floors: the in-process
    call on one core (1 / its mean latency) and, for calls/s, Check from 16 callers.
(c) cold start: a fresh daemon on a registry holding only that model, from process
    start to its port file (written once models are loaded) and to the first successful
    Predict. Floor: a fresh `python` that imports the library, loads the same artifacts
    and predicts one row.
(d) memory with that one model loaded: the daemon's RSS after the first Predict and
    after its background warm-up, its peak, and the proportional set size of the daemon
    with its children (the training forkserver). Floor: the process of (c).
(e) the server model: the daemon has one, the synchronous grpc.server with a thread
    pool (config.py has no grpc.aio option); `--rpc-threads 8 32` repeats (b) for
    each pool size.
(g) drift monitoring's cost on the request path: two daemons on the same registry, one
    with --monitor-sample 0 and one with the default 0.1, 1-row Predict dense p50
    (interleaved in blocks) and 16-caller 1-row calls/s (phases alternated off/on);
    target: < 3% on both. `--monitor-seconds 0` skips it.
(f) the Open Inference Protocol (V2) beside Predict dense, on the same rows: ModelInfer
    through a bare stub (raw FP64, pre-serialized) and through tritonclient.grpc, and
    REST infer with JSON (serve_oip.py), in (a) and (b). Target: V2 gRPC within 15% of
    Predict on 1-row p50, 1-row calls/s and 100-row rows/s.

`--peer mlserver --peer-python PATH` runs instead only modeld (Predict and V2) beside Seldon
MLServer on the same XGBoost model, same client shape, interleaved rounds, and prints the
issue-16 table with ratios and load averages (serve_peer.py). `--peer floor` (alone or as
well) adds the per-call floors: servers built as the daemon's whose 1-row Predict does less
and less of modeld's work (floor_server.py), each against its own health Check.

`--profile` adds an in-process breakdown of one 1-row Predict: the servicer, the
service and the model called directly (no network), each stage timed alone, then
cProfile's top functions.

Every loop is bounded in count and time; the script stops by itself.

Run:  .venv/bin/python bench/serve.py [--calls 2000] [--seconds 4] [--cold-starts 3] [--profile]
      .venv/bin/python bench/serve.py --peer mlserver --peer-python .venv-mlserver/bin/python
      .venv/bin/python bench/serve.py --peer floor
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import serve_oip
import serve_peer
from _common import (
    CHANNEL_OPTIONS,
    HOST,
    MLSERVER_INSTALL,
    SPAMBASE,
    DaemonProcess,
    RpcLog,
    cpu_seconds,
    descendants,
    first_answer,
    git_commit,
    load_note,
    median,
    percentile,
    pss_mib,
    rss_mib,
    running_daemon,
    scratch_folder,
    train_and_wait,
    verdict,
)

from modeld.v1 import model_manager_pb2 as pb

MODELS = {"xgboost": "bench-xgboost", "logistic_regression": "bench-logistic-regression"}
TARGET_COLUMN = "is_spam"
PREDICT = "/modeld.v1.ModelManager/Predict"
HEALTH = "/grpc.health.v1.Health/Check"
CALL_TIMEOUT = 10.0
ONE_ROW_SET, BATCH_ROWS, BATCHES = 64, 100, 8  # 64 distinct single rows; 8 batches of 100
# Issue 7's targets.
TARGET_P50_MS, TARGET_FLOOR_RATIO = 0.5, 3.0
TARGET_CALLS_S, TARGET_ROWS_S = 2000.0, 100_000.0
TARGET_COLD_S, TARGET_MIB = 1.0, 232.0
TARGET_V2_RATIO = 0.85  # issue 12: V2 gRPC within 15% of Predict


# ---- rows and requests ------------------------------------------------------------------

@dataclass
class Inputs:
    """The same rows in every shape a caller or the floor needs, for one model."""

    model: str
    columns: list[str]
    one_row: list[Any]  # ONE_ROW_SET arrays of shape (1, n)
    batches: list[Any]  # BATCHES arrays of shape (BATCH_ROWS, n)
    payloads: dict[str, list[bytes]] = field(default_factory=dict)  # kind -> serialized requests


def make_inputs(model: str, columns: list[str], frame: Any) -> Inputs:
    """Rows from spambase in the model's column order, and Predict requests for them."""
    matrix = frame[columns].to_numpy(dtype="float64")
    one_row = [matrix[i: i + 1] for i in range(ONE_ROW_SET)]
    batches = [matrix[i * BATCH_ROWS: (i + 1) * BATCH_ROWS] for i in range(BATCHES)]
    out = Inputs(model, columns, one_row, batches)
    out.payloads = {
        "dense1": [dense_request(model, columns, x).SerializeToString() for x in one_row],
        "records1": [records_request(model, columns, x).SerializeToString() for x in one_row],
        "dense100": [dense_request(model, columns, x).SerializeToString() for x in batches],
        "records100": [records_request(model, columns, x).SerializeToString() for x in batches],
        "v2stub1": [serve_oip.stub_request(model, x) for x in one_row],
        "v2stub100": [serve_oip.stub_request(model, x) for x in batches],
    }
    return out


def dense_request(model: str, columns: list[str], block: Any) -> pb.PredictRequest:
    return pb.PredictRequest(model=model, dense=pb.DenseRows(columns=columns,
                                                             values=block.ravel().tolist()))


def records_request(model: str, columns: list[str], block: Any) -> pb.PredictRequest:
    request = pb.PredictRequest(model=model)
    for row in block:
        request.records.rows.add().update(dict(zip(columns, row.tolist(), strict=True)))
    return request


# ---- the floors, in this process ----------------------------------------------------------

def library_floor(folder: Path, manifest: dict[str, Any]) -> tuple[Callable[[Any], Any], str]:
    """The plain library's predict on the version's own artifacts, as a user would call it.

    XGBoost runs single-threaded, as the daemon runs it: for a few rows OpenMP's thread
    hand-off costs more than the trees, and on a busy machine it costs 10-50x more.
    """
    if manifest["format"] == "xgboost-ubj+joblib":
        from xgboost import XGBClassifier

        model = XGBClassifier(n_jobs=1)
        model.load_model(folder / "model.ubj")
        return model.predict_proba, "XGBClassifier(n_jobs=1).predict_proba"
    import joblib

    saved = joblib.load(folder / "pipeline.joblib")
    pre, est = saved["preprocess"], saved["estimator"]
    return (lambda x: est.predict_proba(pre.transform(x)),
            f"{type(pre).__name__}.transform + {type(est).__name__}.predict_proba")


@dataclass
class Core:
    """modeld's own LoadedModel, in this process: its schema mapping and predict, no gRPC."""

    dense: Callable[[Any], Any]
    records: Callable[[Any], Any]


def modeld_core(model: str, version: int, folder: Path, manifest: dict[str, Any],
                columns: list[str]) -> Core | str:
    """The daemon's predict path without the network, or why it cannot be built."""
    try:
        from modeld_server.serving.loaded import LoadedModel

        loaded = LoadedModel.load(model, version, folder, manifest)
        schema = loaded.schema
        rows_from = _records_reader()
        return Core(
            dense=lambda values: loaded.predict(schema.matrix_from_dense(columns, values)),
            records=lambda rows: loaded.predict(schema.matrix_from_records(rows_from(rows))))
    except Exception as exc:  # internals move; the floor that matters is the library's
        return f"{type(exc).__name__}: {exc}"


def _records_reader() -> Callable[[Any], Any]:
    """What the servicer hands the schema for a request's `records` (as parsed by
    _predict_parser): StructRows where it exists, else the rows as dicts."""
    try:
        from modeld_server.rpc.struct_rows import StructRows
    except ImportError:
        return lambda records: [dict(row.items()) for row in records.rows]
    return StructRows


# ---- (a) latency, one call at a time ---------------------------------------------------

@dataclass
class Kind:
    """One thing to time: `call(i)` does the i-th call; daemon kinds get its CPU attributed."""

    name: str
    call: Callable[[int], object]
    daemon: bool
    rows: int = 1
    method: str = ""  # the daemon's log lines of this method time its handler


@dataclass
class Timing:
    daemon: bool
    seconds: list[float] = field(default_factory=list)
    daemon_cpu: float = 0.0
    handler_ms: list[float] = field(default_factory=list)  # from the daemon's rpc log lines

    def ms(self, q: float) -> float:
        return 1000 * percentile(self.seconds, q)

    @property
    def mean_ms(self) -> float:
        return 1000 * sum(self.seconds) / max(1, len(self.seconds))

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.daemon_cpu / max(1, len(self.seconds))


def latency_kinds(daemon: DaemonProcess, inputs: Inputs, floor: Callable[[Any], Any],
                  floor_name: str, core: Core | str, http: str) -> list[Kind]:
    """Daemon calls on one channel (raw bytes both ways) and the in-process floors."""
    predict = daemon.channel.unary_unary(PREDICT)
    infer = daemon.channel.unary_unary(serve_oip.MODEL_INFER)
    triton = serve_oip.triton_caller(daemon.address, inputs.model, inputs.one_row)
    rest = serve_oip.rest_caller(http, inputs.model, inputs.one_row)
    health = daemon.channel.unary_unary(HEALTH)
    p = inputs.payloads
    ones, batches = inputs.one_row, inputs.batches
    kinds = [
        Kind(f"in-process {floor_name}", lambda i: floor(ones[i % ONE_ROW_SET]), False),
        Kind("gRPC round trip: health Check", lambda i: health(b"", timeout=CALL_TIMEOUT), True),
        Kind("Predict dense", lambda i: predict(p["dense1"][i % ONE_ROW_SET],
                                                timeout=CALL_TIMEOUT), True, method="Predict"),
        Kind("Predict records", lambda i: predict(p["records1"][i % ONE_ROW_SET],
                                                  timeout=CALL_TIMEOUT), True,
             method="Predict"),
        Kind("in-process floor, 100 rows", lambda i: floor(batches[i % BATCHES]), False,
             BATCH_ROWS),
        Kind("Predict dense, 100 rows", lambda i: predict(p["dense100"][i % BATCHES],
                                                          timeout=CALL_TIMEOUT), True, BATCH_ROWS,
             method="Predict"),
        Kind("V2 ModelInfer stub", lambda i: infer(p["v2stub1"][i % ONE_ROW_SET],
                                                   timeout=CALL_TIMEOUT), True,
             method="ModelInfer"),
        Kind("V2 ModelInfer tritonclient", triton, True, method="ModelInfer"),
        Kind("V2 REST infer (JSON)", rest, True, method="ModelInfer"),
        Kind("V2 ModelInfer stub, 100 rows", lambda i: infer(p["v2stub100"][i % BATCHES],
                                                             timeout=CALL_TIMEOUT), True,
             BATCH_ROWS, method="ModelInfer"),
    ]
    if isinstance(core, Core):
        dense = [x.ravel().tolist() for x in ones]
        parse = _predict_parser()  # the records as the daemon receives them
        records = [parse(payload).records for payload in p["records1"]]
        kinds[1:1] = [
            Kind("in-process modeld core, dense", lambda i: core.dense(dense[i % ONE_ROW_SET]),
                 False),
            Kind("in-process modeld core, records",
                 lambda i: core.records(records[i % ONE_ROW_SET]), False),
        ]
    return kinds


def measure_latency(kinds: list[Kind], calls: int, block: int, pid: int,
                    log: RpcLog) -> dict[str, Timing]:
    """`calls` of each kind, in rotating blocks of `block`, after one untimed block each."""
    for kind in kinds:
        for i in range(block):
            kind.call(i)
    log.durations_ms()  # skip the warm-up's lines
    out = {kind.name: Timing(kind.daemon) for kind in kinds}
    for start in range(0, calls, block):
        for kind in kinds:
            timing = out[kind.name]
            cpu0 = cpu_seconds(pid) if kind.daemon else 0.0
            for i in range(start, min(calls, start + block)):
                t0 = time.perf_counter()
                kind.call(i)
                timing.seconds.append(time.perf_counter() - t0)
            if kind.daemon:
                if kind.method:  # lines come just after the responses: their CPU is the call's
                    timing.handler_ms.extend(log.wait_for(kind.method,
                                                          min(calls, start + block) - start))
                timing.daemon_cpu += cpu_seconds(pid) - cpu0
    return out


# ---- (b) throughput: caller processes ------------------------------------------------------

@dataclass
class Tally:
    calls: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)


def _call_loop(call: Any, payloads: list[bytes], begin: float, end: float, tally: Tally,
               offset: int) -> None:
    """Calls until `end`; counts only calls that started after `begin` and ended by `end`."""
    i = offset
    while True:
        t0 = time.monotonic()
        error = ""
        try:
            call(payloads[i % len(payloads)], timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            error = exc.code().name
        t1 = time.monotonic()
        if t1 > end:
            return
        if t0 >= begin:
            tally.calls += 1
            tally.latencies.append(t1 - t0)
            if error:
                tally.errors[error] += 1
        i += 1


def _run_phase(channels: list[grpc.Channel], method: str, payloads: list[bytes], begin: float,
               end: float) -> dict[str, Any]:
    tallies = [Tally() for _ in channels]
    threads = [threading.Thread(target=_call_loop, daemon=True,
                                args=(ch.unary_unary(method), payloads, begin, end, t, k))
               for k, (ch, t) in enumerate(zip(channels, tallies, strict=True))]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, begin - time.monotonic()))
    cpu0 = time.process_time()
    time.sleep(max(0.0, end - time.monotonic()))
    cpu = time.process_time() - cpu0
    for thread in threads:
        thread.join(timeout=CALL_TIMEOUT + 5)
    errors: collections.Counter[str] = collections.Counter()
    for t in tallies:
        errors.update(t.errors)
    return {"calls": sum(t.calls for t in tallies), "errors": dict(errors), "cpu": cpu,
            "latencies": [x for t in tallies for x in t.latencies]}


def caller_process(address: str, threads: int, commands: Any, results: Any) -> None:
    """Entry point of a caller process: one channel per thread, phases on command."""
    channels = [grpc.insecure_channel(address, options=CHANNEL_OPTIONS) for _ in range(threads)]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=60)
    results.put("ready")
    while (command := commands.get()) is not None:
        results.put(_run_phase(channels, *command))
    for channel in channels:
        channel.close()


@dataclass
class Throughput:
    name: str
    rows: int
    seconds: float
    calls: int
    errors: dict[str, int]
    latencies: list[float]
    daemon_cpu: float
    client_cpu: float

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds

    @property
    def rows_per_s(self) -> float:
        return self.calls * self.rows / self.seconds


class CallerPool:
    """`processes` spawned caller processes of `threads` threads, kept for every phase."""

    def __init__(self, address: str, processes: int, threads: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that holds gRPC
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(processes)]
        self.processes = [ctx.Process(target=caller_process, daemon=True,
                                      args=(address, threads, q, self.results))
                          for q in self.commands]
        for process in self.processes:
            process.start()
        for _ in self.processes:
            self.results.get(timeout=120)

    def run(self, name: str, method: str, payloads: list[bytes], rows: int, warmup: float,
            seconds: float, pid: int) -> Throughput:
        begin = time.monotonic() + 0.3 + warmup  # 0.3 s for the command to arrive
        end = begin + seconds
        for q in self.commands:
            q.put((method, payloads, begin, end))
        time.sleep(max(0.0, begin - time.monotonic()))
        cpu0 = cpu_seconds(pid)
        time.sleep(max(0.0, end - time.monotonic()))
        daemon_cpu = cpu_seconds(pid) - cpu0
        parts = [self.results.get(timeout=seconds + 120) for _ in self.processes]
        errors: collections.Counter[str] = collections.Counter()
        for part in parts:
            errors.update(part["errors"])
        return Throughput(name, rows, seconds, sum(p["calls"] for p in parts), dict(errors),
                          [x for p in parts for x in p["latencies"]], daemon_cpu,
                          sum(p["cpu"] for p in parts))

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()


def measure_throughput(daemon: DaemonProcess, inputs: list[Inputs],
                       args: argparse.Namespace, http: str) -> list[Throughput]:
    pool = CallerPool(daemon.address, args.caller_processes,
                      args.callers // args.caller_processes)
    out = []
    try:
        out.append(pool.run("health Check", HEALTH, [b""], 0, args.warmup, args.seconds,
                            daemon.pid))
        for x in inputs:
            for kind, rows in (("dense1", 1), ("records1", 1), ("dense100", BATCH_ROWS),
                               ("records100", BATCH_ROWS)):
                out.append(pool.run(f"{x.model} {kind}", PREDICT, x.payloads[kind], rows,
                                    args.warmup, args.seconds, daemon.pid))
                print(f"  {out[-1].name}: {out[-1].calls_per_s:.0f} calls/s", flush=True)
            for kind, rows in (("v2stub1", 1), ("v2stub100", BATCH_ROWS)):
                out.append(pool.run(f"{x.model} {kind}", serve_oip.MODEL_INFER,
                                    x.payloads[kind], rows, args.warmup, args.seconds,
                                    daemon.pid))
                print(f"  {out[-1].name}: {out[-1].calls_per_s:.0f} calls/s", flush=True)
    finally:
        pool.close()
    for client, address in (("tritonclient", daemon.address), ("rest", http)):
        clients = serve_oip.ClientPool(client, address, args.caller_processes,
                                       args.callers // args.caller_processes)
        try:
            for x in inputs:
                for blocks, rows in ((x.one_row, 1), (x.batches, BATCH_ROWS)):
                    got = clients.run(x.model, blocks, args.warmup, args.seconds,
                                      lambda: cpu_seconds(daemon.pid))
                    out.append(Throughput(f"{x.model} v2{client}{rows}", rows, args.seconds,
                                          got["calls"], got["errors"], got["latencies"],
                                          got["daemon_cpu"], got["client_cpu"]))
                    print(f"  {out[-1].name}: {out[-1].calls_per_s:.0f} calls/s", flush=True)
        finally:
            clients.close()
    return out


# ---- (c, d) cold start and memory ----------------------------------------------------------

FLOOR_SCRIPT = r"""
import json, sys
from pathlib import Path
folder, fmt, row = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
import numpy as np
x = np.array([row], dtype=np.float64)
if fmt == "xgboost-ubj+joblib":
    from xgboost import XGBClassifier
    model = XGBClassifier(n_jobs=1)
    model.load_model(folder / "model.ubj")
    model.predict_proba(x)
else:
    import joblib
    saved = joblib.load(folder / "pipeline.joblib")
    saved["estimator"].predict_proba(saved["preprocess"].transform(x))
print("ready", flush=True)
status = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines())
print(int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024, flush=True)
"""


@dataclass
class ColdStart:
    serving: float  # process start -> port file
    first_predict: float  # process start -> first successful Predict
    rss_first: float  # MiB, just after the first Predict
    rss_settled: float  # MiB, after 200 calls and the background warm-up
    rss_peak: float
    pss_tree: float  # daemon + children, MiB
    children: int


def cold_start(model_dir: Path, model: str, payload: bytes, folder: Path,
               settle: float) -> ColdStart:
    """A fresh daemon on a registry holding only `model_dir`; times it to its first answer."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    shutil.copytree(model_dir, folder / "registry" / model)
    with running_daemon(folder) as daemon:
        predict = daemon.channel.unary_unary(PREDICT)
        first = first_answer(predict, payload, CALL_TIMEOUT, 60)
        rss_first, _ = rss_mib(daemon.pid)
        for _ in range(200):
            predict(payload, timeout=CALL_TIMEOUT)
        time.sleep(settle)
        rss_settled, peak = rss_mib(daemon.pid)
        children = descendants(daemon.pid)
        pss = pss_mib([daemon.pid, *children])
        out = ColdStart(daemon.serving_at - daemon.spawned_at, first - daemon.spawned_at,
                        rss_first, rss_settled, peak, pss, len(children))
    shutil.rmtree(folder, ignore_errors=True)
    return out


def cold_floor(version_dir: Path, fmt: str, row: list[float]) -> tuple[float, float, float]:
    """(seconds to first prediction, RSS MiB, peak RSS MiB) of a bare python doing the same."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", FLOOR_SCRIPT, str(version_dir), fmt,
                                json.dumps(row)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready = process.stdout.readline()
    seconds = time.perf_counter() - started
    rss, peak = (float(v) for v in process.stdout.readline().split())
    process.wait(timeout=30)
    if ready.strip() != "ready":
        raise RuntimeError("the cold-start floor process failed")
    return seconds, rss, peak


@dataclass
class ColdFigures:
    daemon: list[ColdStart]
    floor: list[tuple[float, float, float]]


def measure_cold(registry: Path, base: Path, inputs: Inputs, fmt: str,
                 args: argparse.Namespace) -> ColdFigures:
    """Alternates a daemon cold start with the floor process, `args.cold_starts` times."""
    model_dir = registry / inputs.model
    version_dir = model_dir / "versions" / (model_dir / "ACTIVE").read_text().strip()
    row = inputs.one_row[0][0].tolist()
    out = ColdFigures([], [])
    for _ in range(args.cold_starts):
        out.floor.append(cold_floor(version_dir, fmt, row))
        out.daemon.append(cold_start(model_dir, inputs.model, inputs.payloads["dense1"][0],
                                     base / "cold", args.settle))
    return out


# ---- the run ---------------------------------------------------------------------------------

@dataclass
class ModelRun:
    algorithm: str
    inputs: Inputs
    version: int
    floor_name: str
    core_note: str
    max_abs_diff: float
    latency: dict[str, Timing] = field(default_factory=dict)
    cold: ColdFigures | None = None


def train_models(daemon: DaemonProcess, algorithms: list[str]) -> dict[str, int]:
    versions = {}
    for algorithm in algorithms:
        job = train_and_wait(daemon.stub, pb.TrainRequest(
            model=MODELS[algorithm], algorithm=algorithm, cv_folds=2,
            dataset=pb.Dataset(path="spambase.csv", target=TARGET_COLUMN)))
        if job.state != pb.JOB_STATE_SUCCEEDED or not job.activated:
            raise RuntimeError(f"training {algorithm} failed: {pb.JobState.Name(job.state)} "
                               f"{job.error} {job.message}")
        versions[algorithm] = job.version
    return versions


def prepare(daemon: DaemonProcess, algorithm: str, version: int, frame: Any) -> tuple[
        ModelRun, Callable[[Any], Any], Core | str]:
    """Loads the version's artifacts here and checks the daemon answers what they answer."""
    import numpy as np

    model = MODELS[algorithm]
    folder = daemon.registry / model / "versions" / str(version)
    manifest = json.loads((folder / "manifest.json").read_text())
    columns = list(manifest["schema"]["numeric"]) + list(manifest["schema"]["categorical"])
    inputs = make_inputs(model, columns, frame)
    floor, floor_name = library_floor(folder, manifest)
    core = modeld_core(model, version, folder, manifest, columns)
    answer = daemon.stub.Predict(dense_request(model, columns, inputs.batches[0]),
                                 timeout=CALL_TIMEOUT)
    got = np.array(answer.probabilities).reshape(-1, 2)
    diff = float(np.abs(got - floor(inputs.batches[0])).max())
    by_records = daemon.stub.Predict(records_request(model, columns, inputs.batches[0]),
                                     timeout=CALL_TIMEOUT)
    if list(by_records.probabilities) != list(answer.probabilities) or answer.version != version:
        raise RuntimeError(f"{model}: records and dense answers differ, or another version "
                           "answered")
    run = ModelRun(algorithm, inputs, version, floor_name,
                   "" if isinstance(core, Core) else core, diff)
    return run, floor, core


def run_all(base: Path, args: argparse.Namespace
            ) -> tuple[list[ModelRun], dict[str, list[Throughput]]]:
    import pandas as pd

    frame = pd.read_csv(SPAMBASE)
    runs: list[ModelRun] = []
    throughput: dict[str, list[Throughput]] = {}
    with running_daemon(base, ["--http-listen", f"{HOST}:0"]) as daemon:
        http = serve_oip.http_address(daemon.log_path)
        versions = train_models(daemon, args.algorithms)
        time.sleep(args.settle)
        for algorithm in args.algorithms:
            run, floor, core = prepare(daemon, algorithm, versions[algorithm], frame)
            print(f"latency: {algorithm}", flush=True)
            run.latency = measure_latency(latency_kinds(daemon, run.inputs, floor,
                                                        run.floor_name, core, http),
                                          args.calls, args.block, daemon.pid,
                                          RpcLog(daemon.log_path))
            runs.append(run)
        if args.seconds > 0:
            print(f"throughput: {args.callers} callers, daemon defaults", flush=True)
            throughput["default"] = measure_throughput(daemon, [r.inputs for r in runs], args,
                                                       http)
        formats = {r.algorithm: json.loads((daemon.registry / r.inputs.model / "versions" /
                                           str(r.version) / "manifest.json").read_text())["format"]
                   for r in runs}
    for threads in args.rpc_threads:
        with running_daemon(base, ["--rpc-threads", str(threads),
                                   "--http-listen", f"{HOST}:0"]) as daemon:
            time.sleep(args.settle)
            print(f"throughput: {args.callers} callers, --rpc-threads {threads}", flush=True)
            throughput[f"--rpc-threads {threads}"] = measure_throughput(
                daemon, [r.inputs for r in runs], args, serve_oip.http_address(daemon.log_path))
    if args.monitor_seconds > 0 and runs:
        print("monitoring overhead: sampling off vs 10%", flush=True)
        monitoring[:] = measure_monitoring(base, runs[0].inputs, args)
    for run in runs:
        if args.cold_starts:
            print(f"cold start: {run.algorithm}", flush=True)
            run.cold = measure_cold(base / "registry", base, run.inputs, formats[run.algorithm],
                                    args)
    return runs, throughput


# ---- (g) drift monitoring on the request path ------------------------------------------------

monitoring: list[str] = []
"""The overhead lines run_all measured, printed by report()."""


def measure_monitoring(base: Path, inputs: Inputs, args: argparse.Namespace) -> list[str]:
    """1-row p50 and 16-caller calls/s with sampling off and at the default 10%."""
    # A second daemon with sampling off measures how far two identical daemons differ.
    samples = {"off": "0", "10%": "0.1", "off again": "0"}
    with contextlib.ExitStack() as stack:
        daemons = {}
        for name, rate in samples.items():
            folder = base / f"monitor-{name.replace(' ', '-').replace('%', '')}"
            folder.mkdir(exist_ok=True)
            for link in ("registry", "data"):
                if not (folder / link).exists():
                    (folder / link).symlink_to(base / link)
            daemons[name] = stack.enter_context(running_daemon(folder, ["--monitor-sample", rate]))
        time.sleep(args.settle)
        payloads = inputs.payloads["dense1"]
        calls = {n: d.channel.unary_unary(PREDICT) for n, d in daemons.items()}
        seconds: dict[str, list[float]] = {n: [] for n in daemons}
        for start in range(0, args.calls + args.block, args.block):
            for name, call in calls.items():
                for i in range(start, start + args.block):
                    t0 = time.perf_counter()
                    call(payloads[i % ONE_ROW_SET], timeout=CALL_TIMEOUT)
                    if start:  # the first block warms up
                        seconds[name].append(time.perf_counter() - t0)
        p50 = {n: median(v) * 1000 for n, v in seconds.items()}
        rates: dict[str, list[float]] = {n: [] for n in daemons}
        for _ in range(2):
            for name, daemon in daemons.items():
                pool = CallerPool(daemon.address, args.caller_processes,
                                  args.callers // args.caller_processes)
                try:
                    got = pool.run(f"monitor {name}", PREDICT, payloads, 1, args.warmup,
                                   args.monitor_seconds, daemon.pid)
                finally:
                    pool.close()
                rates[name].append(got.calls_per_s)
        sampled = daemons["10%"].stub.GetDrift(pb.GetDriftRequest(model=inputs.model))
    per_s = {n: sum(v) / len(v) for n, v in rates.items()}
    return [
        f"monitoring overhead ({inputs.model}, Predict dense 1 row; sampling 10% vs off; "
        f"{sampled.sampled_rows} rows sampled, {sampled.dropped_rows} dropped; a second "
        "daemon with sampling off shows the noise between identical daemons):",
        f"  1-row p50: 10% {p50['10%']:.3f} ms, off {p50['off']:.3f} ms "
        f"({(p50['10%'] / p50['off'] - 1) * 100:+.1f}%), off again {p50['off again']:.3f} ms "
        f"({(p50['off again'] / p50['off'] - 1) * 100:+.1f}%); {args.calls} calls each, "
        "interleaved",
        f"  {args.callers} callers: 10% {per_s['10%']:,.0f}, off {per_s['off']:,.0f} calls/s "
        f"({(per_s['10%'] / per_s['off'] - 1) * 100:+.1f}%), off again "
        f"{per_s['off again']:,.0f} ({(per_s['off again'] / per_s['off'] - 1) * 100:+.1f}%); "
        f"2 alternated phases of {args.monitor_seconds:g} s each",
        f"  in process, DriftMonitor.offer per 1-row call: {offer_us(0.1):.2f} us at 10%, "
        f"{offer_us(0.0):.2f} us off (no histogram is touched per call)",
    ]


def offer_us(rate: float, calls: int = 100_000) -> float:
    """What sampling adds to one 1-row Predict, timed in this process."""
    import numpy as np

    from modeld_server.monitoring.monitor import DriftMonitor
    from modeld_server.monitoring.report import Thresholds

    monitor = DriftMonitor(rate=rate, window=5000, capacity=10**9, replica="bench",
                           thresholds_for=lambda model: Thresholds(), interval=0)
    row, answer, served = np.zeros((1, 57)), np.zeros((1, 2)), object()
    started = time.perf_counter()
    for _ in range(calls):
        monitor.offer("m", served, row, answer)
    return (time.perf_counter() - started) / calls * 1e6


# ---- report ---------------------------------------------------------------------------------

def report_latency(run: ModelRun, args: argparse.Namespace) -> None:
    lat = run.latency
    floor = lat[f"in-process {run.floor_name}"]
    floor100 = lat["in-process floor, 100 rows"]
    print()
    print(f"{run.algorithm} ({run.inputs.model} v{run.version}): one call at a time, {args.calls} "
          f"calls per kind, interleaved in blocks of {args.block}; the floor is in-process "
          f"{run.floor_name}")
    print(f"  daemon vs floor on 100 rows: max |probability difference| {run.max_abs_diff:.2e}")
    if run.core_note:
        print(f"  in-process modeld core: unavailable ({run.core_note})")
    width = max(len(name) for name in lat)
    print(f"  {'kind':<{width}} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'x floor p50':>12} "
          f"{'daemon CPU ms/call':>19} {'handler p50 ms':>15}")
    for name, t in lat.items():
        base = floor100 if "100 rows" in name else floor
        cpu = f"{t.cpu_ms_per_call:.3f}" if t.daemon else ""
        handler = f"{median(t.handler_ms):.3f}" if t.handler_ms else ""
        print(f"  {name:<{width}} {t.ms(50):>8.3f} {t.ms(99):>8.3f} {t.mean_ms:>8.3f} "
              f"{t.ms(50) / base.ms(50):>12.2f} {cpu:>19} {handler:>15}")
    print("  (handler: the daemon's own duration_ms for the call, from its per-RPC log line: the "
          "servicer alone, without gRPC, transport or thread hand-off)")
    for form in ("dense", "records"):
        t = lat[f"Predict {form}"]
        ok = t.ms(50) <= TARGET_P50_MS and t.ms(50) / floor.ms(50) <= TARGET_FLOOR_RATIO
        print(f"  target 1-row p50 <= {TARGET_P50_MS} ms and <= {TARGET_FLOOR_RATIO:.0f}x the "
              f"floor: {form} {t.ms(50):.3f} ms, {t.ms(50) / floor.ms(50):.2f}x {verdict(ok)}")


def report_throughput(label: str, figures: list[Throughput], runs: list[ModelRun],
                      args: argparse.Namespace) -> None:
    print()
    print(f"throughput ({label}): {args.callers} callers ({args.caller_processes} processes x "
          f"{args.callers // args.caller_processes} threads, one channel each), "
          f"{args.seconds:g} s after {args.warmup:g} s warm-up")
    print(f"  {'phase':<44} {'rate':>16} {'p50 ms':>7} {'p99 ms':>7} {'failed':>6} "
          f"{'daemon CPU ms/call':>19} {'client CPU ms/call':>19} {'floor':>16} {'/ floor':>8}")
    health = figures[0]
    floors = {r.inputs.model: r for r in runs}
    for f in figures:
        model = f.name.split(" ")[0]
        run = floors.get(model)
        if f.rows == 0:
            rate, floor_text, ratio = f"{f.calls_per_s:,.0f} calls/s", "", ""
        elif f.rows == 1 and run is not None:
            floor_rate = 1000 / run.latency[f"in-process {run.floor_name}"].mean_ms
            rate = f"{f.calls_per_s:,.0f} calls/s"
            floor_text = f"{floor_rate:,.0f} calls/s"
            ratio = f"{f.calls_per_s / floor_rate:.2f}"
        else:
            assert run is not None
            floor_rate = 1000 * f.rows / run.latency["in-process floor, 100 rows"].mean_ms
            rate, floor_text = f"{f.rows_per_s:,.0f} rows/s", f"{floor_rate:,.0f} rows/s"
            ratio = f"{f.rows_per_s / floor_rate:.2f}"
        print(f"  {f.name:<44} {rate:>16} {1000 * percentile(f.latencies, 50):>7.2f} "
              f"{1000 * percentile(f.latencies, 99):>7.2f} {sum(f.errors.values()):>6} "
              f"{1000 * f.daemon_cpu / max(1, f.calls):>19.3f} "
              f"{1000 * f.client_cpu / max(1, f.calls):>19.3f} {floor_text:>16} {ratio:>8}")
    print(f"  health Check from {args.callers} callers: {health.calls_per_s:,.0f} calls/s is "
          f"the ceiling of any RPC on this server and client")
    for f in figures[1:]:
        if f.name.endswith("dense1") or f.name.endswith("records1"):
            print(f"  target >= {TARGET_CALLS_S:,.0f} calls/s: {f.name} {f.calls_per_s:,.0f} "
                  f"{verdict(f.calls_per_s >= TARGET_CALLS_S)}")
        elif f.rows > 1:
            print(f"  target >= {TARGET_ROWS_S:,.0f} rows/s: {f.name} {f.rows_per_s:,.0f} "
                  f"{verdict(f.rows_per_s >= TARGET_ROWS_S)}")


def report_cold(run: ModelRun, settle: float) -> None:
    if run.cold is None:
        return
    d, f = run.cold.daemon, run.cold.floor
    n = len(d)
    serving, first = median([c.serving for c in d]), median([c.first_predict for c in d])
    floor_s = median([x[0] for x in f])
    floor_rss = median([x[1] for x in f])
    rss = median([c.rss_settled for c in d])
    print()
    print(f"cold start and memory, {run.algorithm}, a registry with only this model "
          f"(medians of {n} starts, alternating with the floor):")
    print(f"  daemon: start -> port file (models loaded) {serving:.3f} s; start -> first Predict "
          f"{first:.3f} s; floor (python + import + load + predict one row) {floor_s:.3f} s; "
          f"ratio {first / floor_s:.2f}")
    print(f"  daemon RSS: after the first Predict {median([c.rss_first for c in d]):.0f} MiB, "
          f"after 200 calls + {settle:.0f} s {rss:.0f} MiB, peak "
          f"{median([c.rss_peak for c in d]):.0f} MiB; PSS daemon + "
          f"{d[-1].children} children {median([c.pss_tree for c in d]):.0f} MiB; floor RSS "
          f"{floor_rss:.0f} MiB (peak {median([x[2] for x in f]):.0f}); ratio "
          f"{rss / floor_rss:.2f}")
    print(f"  target cold start <= {TARGET_COLD_S:.1f} s: {first:.3f} s "
          f"{verdict(first <= TARGET_COLD_S)}; target memory <= {TARGET_MIB:.0f} MiB: "
          f"RSS {rss:.0f} MiB {verdict(rss <= TARGET_MIB)}")


def report(runs: list[ModelRun], throughput: dict[str, list[Throughput]],
           args: argparse.Namespace) -> None:
    for run in runs:
        report_latency(run, args)
    for label, figures in throughput.items():
        report_throughput(label, figures, runs, args)
    if len(throughput) > 1:
        print()
        print("server model: synchronous grpc.server, thread pool sizes compared "
              "(config.py offers no grpc.aio server):")
        for label, figures in throughput.items():
            print(f"  {label}: " + ", ".join(
                f"{f.name} {f.calls_per_s:,.0f} calls/s" for f in figures if f.rows <= 1))
    else:
        print()
        print("server model: synchronous grpc.server + thread pool (--rpc-threads, default 32) "
              "is the only one; config.py has no grpc.aio option. --rpc-threads N M compares "
              "pool sizes.")
    report_oip(runs, throughput.get("default", []))
    if monitoring:
        print()
        print("\n".join(monitoring))
    for run in runs:
        report_cold(run, args.settle)


def report_oip(runs: list[ModelRun], figures: list[Throughput]) -> None:
    """V2 against Predict dense on each figure, as a ratio of Predict's (>1: V2 is better)."""
    print()
    print("Open Inference Protocol (V2) vs Predict dense, same rows, same run "
          f"(target: V2 gRPC >= {TARGET_V2_RATIO:.2f}x Predict on each figure):")
    rates = {f.name: f for f in figures}
    for run in runs:
        lat, model = run.latency, run.inputs.model
        base_p50 = lat["Predict dense"].ms(50)
        for kind, name in (("V2 ModelInfer stub", "v2stub"),
                           ("V2 ModelInfer tritonclient", "v2tritonclient"),
                           ("V2 REST infer (JSON)", "v2rest")):
            grpc_kind = "REST" not in kind
            p50 = lat[kind].ms(50)
            parts = [f"1-row p50 {p50:.3f} ms vs {base_p50:.3f} ({base_p50 / p50:.2f}x)"]
            for suffix, rows, predict in (("1", 1, "dense1"), ("100", BATCH_ROWS, "dense100")):
                v2, base = rates.get(f"{model} {name}{suffix}"), rates.get(f"{model} {predict}")
                if v2 is None or base is None:
                    continue
                unit = "calls/s" if rows == 1 else "rows/s"
                mine, theirs = (v2.calls_per_s, base.calls_per_s) if rows == 1 else (
                    v2.rows_per_s, base.rows_per_s)
                parts.append(f"{unit} {mine:,.0f} vs {theirs:,.0f} ({mine / theirs:.2f}x)")
            ratios = [base_p50 / p50] + [
                float(p.rsplit("(", 1)[1].rstrip("x)")) for p in parts[1:]]
            ok = verdict(min(ratios) >= TARGET_V2_RATIO) if grpc_kind else "(no target)"
            print(f"  {model} {kind}: " + "; ".join(parts) + f" {ok}")


# ---- --profile: one Predict in-process, stage by stage -------------------------------------

class _Context:
    """Just enough of grpc.ServicerContext for the rpc wrapper."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RuntimeError(f"{code.name}: {details}")


def time_stages(stages: list[tuple[str, Callable[[], object]]], calls: int,
                rounds: int = 10) -> dict[str, float]:
    """Median over `rounds` of each stage's mean microseconds per call, stages interleaved
    round by round so that load from elsewhere hits them alike; NaN for a stage that fails."""
    per_round = max(1, calls // rounds)
    samples: dict[str, list[float]] = {name: [] for name, _ in stages}
    broken: set[str] = set()
    for name, fn in stages:
        try:
            for _ in range(min(200, per_round)):
                fn()
        except Exception:  # a renamed internal: leave that stage out, keep the rest
            broken.add(name)
    for _ in range(rounds):
        for name, fn in stages:
            if name in broken:
                continue
            started = time.perf_counter()
            for _ in range(per_round):
                fn()
            samples[name].append(1e6 * (time.perf_counter() - started) / per_round)
    return {name: median(values) if values else float("nan") for name, values in samples.items()}


def profile(registry: Path, base: Path, runs: list[ModelRun], calls: int, top: int) -> None:
    """Times each stage of a 1-row Predict in this process, then profiles the servicer."""
    import cProfile
    import pstats

    from modeld_server import logging as modeld_logging
    from modeld_server.compose import build_service
    from modeld_server.config import Settings
    from modeld_server.rpc.servicer import ModelManagerServicer

    log_file = (base / "profile.log").open("w")
    with contextlib.redirect_stderr(log_file):
        modeld_logging.configure("json", "info")  # as the daemon logs: JSON lines to a file
    service = build_service(Settings(registry=registry, data_root=base / "profile-data",
                                     state_dir=base / "profile-state"))
    service.start(background=False)
    servicer, ctx = ModelManagerServicer(service), _Context()
    print()
    print(f"profile: one 1-row Predict in this process (no network), {calls} calls per stage "
          "in 10 interleaved rounds (medians), logging JSON lines to a file as the daemon does; "
          "microseconds per call:")
    columns: dict[str, dict[str, float]] = {}
    for run in runs:
        for form in ("dense1", "records1"):
            stages = profile_stages(service, servicer, ctx, run.inputs.payloads[form][0],
                                    run.inputs.model)
            columns[f"{run.algorithm} {form}"] = time_stages(stages, calls)
    names = list(dict.fromkeys(name for col in columns.values() for name in col))
    width = max(len(name) for name in names)
    print(f"  {'stage':<{width}} " + " ".join(f"{label:>26}" for label in columns))
    for name in names:
        print(f"  {name:<{width}} " + " ".join(f"{col.get(name, float('nan')):>26.1f}"
                                               for col in columns.values()))
    for run in runs:
        for form in ("dense1", "records1"):
            request = _predict_parser()(run.inputs.payloads[form][0])
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                servicer.Predict(request, ctx).SerializeToString()
            profiler.disable()
            print()
            print(f"cProfile, {run.algorithm} {form}, {calls} servicer.Predict calls + "
                  f"SerializeToString, top {top} by own time (tottime):")
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(top)
    service.close()
    log_file.close()


def _predict_parser() -> Callable[[bytes], Any]:
    """How the daemon parses a Predict request: PredictRequestWire (records left as bytes)
    where it exists, else the contract's PredictRequest."""
    try:
        from modeld_server.rpc.struct_rows import PredictRequestWire
    except ImportError:
        return pb.PredictRequest.FromString
    return PredictRequestWire.FromString  # type: ignore[no-any-return]


def profile_stages(service: Any, servicer: Any, ctx: _Context, raw: bytes,
                   model: str) -> list[tuple[str, Callable[[], object]]]:
    """The parts of one Predict, each callable on its own (internals named as of this commit)."""
    import structlog

    from modeld_server.rpc import convert, status
    from modeld_server.telemetry import PREDICT_ROWS, RPC_LATENCY, RPC_REQUESTS

    parse = _predict_parser()
    request = parse(raw)
    loaded = service.serving.get(model)
    schema = loaded.schema
    if request.WhichOneof("rows") == "dense":
        def to_matrix() -> Any:
            rows = convert.rows_from_pb(request)  # bytes read by dense_wire where it exists
            return schema.matrix_from_dense(rows.columns, rows.values)
    else:
        def to_matrix() -> Any:
            return schema.matrix_from_records(convert.records_from_pb(request.records))
    matrix = to_matrix()
    prediction = loaded.predict(matrix)
    response = servicer.Predict(request, ctx)
    pre = getattr(loaded, "_preprocess", None)
    booster = getattr(loaded, "_booster", None)
    x_model = pre.transform(matrix) if pre is not None else matrix

    def bound() -> None:
        with structlog.contextvars.bound_contextvars(model=model):
            pass

    def metrics() -> None:
        RPC_REQUESTS.labels("Predict", "OK").inc()
        RPC_LATENCY.labels("Predict").observe(0.001)
        PREDICT_ROWS.labels(model).inc(1)

    stages: list[tuple[str, Callable[[], object]]] = [
        ("whole: parse + servicer.Predict + serialize",
         lambda: servicer.Predict(parse(raw), ctx).SerializeToString()),
        ("servicer.Predict", lambda: servicer.Predict(request, ctx)),
        ("  parse request (as the daemon does)", lambda: parse(raw)),
        ("  pick_version + serving.get",
         lambda: (service.pick_version(model, 0, ""), service.serving.get(model))),
        ("  rows -> matrix (records_from_pb + schema)", to_matrix),
        ("  LoadedModel.predict", lambda: loaded.predict(matrix)),
        ("    preprocess.transform (nan: not used)", lambda: pre.transform(matrix)),
        ("    estimator / booster alone",
         (lambda: booster(x_model)) if booster is not None
         else (lambda: loaded._estimator.predict_proba(x_model))),
        ("    xgboost Booster.inplace_predict instead (nan: not xgboost)",
         lambda: loaded._estimator.get_booster().inplace_predict(x_model,
                                                                 validate_features=False)),
        ("  prediction_to_pb", lambda: convert.prediction_to_pb(model, 1, prediction)),
        ("  serialize response", response.SerializeToString),
        ("  status._count: log line + 2 metrics",
         lambda: status._count("Predict", grpc.StatusCode.OK, 0.0001)),
        ("    log line alone", lambda: status.log.info("rpc", method="Predict", code="OK",
                                                       duration_ms=0.5)),
        ("    3 prometheus metrics alone", metrics),
        ("  bound_contextvars(model=...)", bound),
    ]
    return stages


# ---- main -----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Predict latency, throughput, cold start and "
                                     "memory against in-process floors, on spambase.")
    parser.add_argument("--calls", type=int, default=2000,
                        help="timed calls per latency kind (default 2000)")
    parser.add_argument("--block", type=int, default=50,
                        help="calls per block when interleaving latency kinds (default 50)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="timed seconds per throughput phase, 0 skips them (default 4)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="untimed seconds before each throughput phase (default 1)")
    parser.add_argument("--callers", type=int, default=16, help="concurrent callers (default 16)")
    parser.add_argument("--caller-processes", type=int, default=4,
                        help="processes the callers are spread over (default 4)")
    parser.add_argument("--cold-starts", type=int, default=3,
                        help="daemon cold starts per model, 0 skips them (default 3)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds for a daemon's background warm-up (default 3)")
    parser.add_argument("--monitor-seconds", type=float, default=4.0,
                        help="seconds per monitoring-overhead throughput phase, 0 skips the "
                        "overhead measurement (default 4)")
    parser.add_argument("--rpc-threads", type=int, nargs="*", default=[],
                        help="also measure throughput with these --rpc-threads values")
    parser.add_argument("--algorithms", nargs="+", choices=sorted(MODELS), default=list(MODELS),
                        help="which models (default: both)")
    parser.add_argument("--profile", action="store_true",
                        help="add the in-process stage timings and cProfile of one Predict")
    parser.add_argument("--profile-calls", type=int, default=5000,
                        help="calls per profiled stage (default 5000)")
    parser.add_argument("--top", type=int, default=25, help="cProfile lines shown (default 25)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (daemon log, registry) and print it")
    peer = parser.add_argument_group(
        "peer", "--peer mlserver runs only the side-by-side table (serve_peer.py): modeld "
        "Predict and V2 against MLServer, same model, same client shape, interleaved rounds; "
        "--peer floor adds (or alone: runs beside modeld) three servers built as the daemon's "
        "answering 1-row Predict from a fixed reply with less and less of modeld's work "
        "(bench/floor_server.py)")
    peer.add_argument("--peer", choices=["mlserver", "floor"], action="append", default=[],
                      help="compare with this peer server, repeatable")
    peer.add_argument("--peer-python", type=lambda text: Path(text).absolute(),
                      default=".venv-mlserver/bin/python",
                      help="the python of a venv holding mlserver and mlserver-xgboost "
                      f"(made as: {MLSERVER_INSTALL})")
    peer.add_argument("--peer-workers", type=int, action="append", default=[],
                      help="MLServer parallel_workers, repeatable (default 0: predicts in its "
                      "main process, its best setting; 1 is its own default)")
    peer.add_argument("--peer-omp-threads", type=int, action="append", default=[],
                      help="OMP_NUM_THREADS for the peer, repeatable (default 0: unset, XGBoost "
                      "uses every CPU; 1 predicts single-threaded, as modeld does)")
    peer.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    peer.add_argument("--peer-calls", type=int, default=600,
                      help="latency calls per kind per round (default 600)")
    args = parser.parse_args(argv)
    args.peer_workers = args.peer_workers or [0]
    args.peer_omp_threads = args.peer_omp_threads or [0]
    if not (args.calls >= args.block >= 1 and args.callers >= args.caller_processes >= 1
            and args.callers % args.caller_processes == 0 and args.seconds >= 0
            and args.cold_starts >= 0):
        parser.error("need --calls >= --block >= 1, --callers a multiple of "
                     "--caller-processes, --seconds >= 0 and --cold-starts >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.peer:
        with scratch_folder("modeld-bench-serve-peer-", args.keep) as base:
            return serve_peer.run(base, args, lambda address: CallerPool(
                address, args.caller_processes, args.callers // args.caller_processes))
    import sklearn
    import xgboost

    print(f"modeld serving: spambase, {', '.join(args.algorithms)}; commit {git_commit()}")
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, grpcio "
          f"{grpc.__version__}, xgboost {xgboost.__version__}, scikit-learn {sklearn.__version__}")
    print(f"before: {load_note()}", flush=True)
    with scratch_folder("modeld-bench-serve-", args.keep) as base:
        (base / "data").mkdir()
        shutil.copy(SPAMBASE, base / "data" / "spambase.csv")
        runs, throughput = run_all(base, args)
        print(f"after: {load_note()}")
        report(runs, throughput, args)
        if args.profile:
            profile(base / "registry", base, runs, args.profile_calls, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
