"""Whether the registry's read RPCs and start-up cost the same for 1 version and 10,000.

Daemons run in subprocesses, only on 127.0.0.1, with `--max-concurrent-jobs 2` (so two
jobs can run at once) and otherwise their defaults. Steps:

1. A daemon trains one real version: logistic_regression on spambase, cv_folds 2,
   model `scale-1`.
2. With the daemon stopped, that version folder is copied into `scale-1k` (1,000
   versions) and `scale-10k` (--versions, default 10,000): each copy gets the same
   artifacts (hard links: the same bytes, so the same sizes and sha256), and a manifest
   rewritten with its own number and model; events.jsonl gets a `published` line per
   version and ACTIVE names the newest, as publishing would leave them. The daemon must
   accept them: the script checks GetStatus counts them, the newest is served, and a
   Predict pinned to a version in the middle loads it (sha256 verified) and answers.
3. The daemon's own index (RegistryIndex) built in this process on both registries:
   build time, a re-scan that finds nothing new, objects the garbage collector tracks,
   and one full collection.
4. Start-up, alternating, --starts each: a registry holding only `scale-1`, then the full
   registry (the three models) with each daemon variant (its defaults, and `--watch
   false`): process start -> port file (models loaded) -> first Predict; resident memory
   and CPU while idle.
5. Per variant, on the full registry: latency, one call at a time, kinds interleaved in
   blocks: health Check (the bare gRPC round trip), GetStatus of `scale-1` / `scale-10k`,
   ListVersions first pages of 50, 100 and 1000 on `scale-1k` (the baseline) and
   `scale-10k`, and a page of 100 from the middle of `scale-10k` (its page_token got by
   paging); the handler's own time from the daemon's per-RPC log line.
6. Per variant: GetStatus of `scale-10k`, one call every --status-interval, for
   --train-seconds with no job, then for --train-seconds while two training jobs run
   (xgboost on spambase, 5 folds, models `train-a` and `train-b`, each resubmitted as soon
   as it ends). Only calls whose answer reports two jobs running count.

Targets (issue 7): ListVersions page of 100 on 10,000 versions p99 <= 20 ms; GetStatus
p99 <= 5 ms while two training jobs run.

Run:  .venv/bin/python bench/registry_scale.py [--versions 10000] [--starts 3] [--variants default]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from _common import (
    SPAMBASE,
    DaemonProcess,
    RpcLog,
    cpu_seconds,
    first_answer,
    git_commit,
    load_note,
    median,
    percentile,
    rss_mib,
    running_daemon,
    scratch_folder,
    train_and_wait,
    verdict,
)

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc

SMALL, MIDDLE, LARGE = "scale-1", "scale-1k", "scale-10k"
MIDDLE_COUNT = 1000
DAEMON_FLAGS = ["--max-concurrent-jobs", "2"]
# The daemon as configured by default, and without its file-system watch (an existing flag).
VARIANTS = {"default": [], "--watch false": ["--watch", "false"]}
OVERFLOW = b"Inotify queue overflowed"
HEALTH = "/grpc.health.v1.Health/Check"
GET_STATUS = "/modeld.v1.ModelManager/GetStatus"
LIST_VERSIONS = "/modeld.v1.ModelManager/ListVersions"
PREDICT = "/modeld.v1.ModelManager/Predict"
CALL_TIMEOUT = 30.0
MAX_IDLE_MS_PER_S = 200.0  # above this idle CPU rate, CPU per call is not attributed
TARGET_LIST_P99_MS, TARGET_STATUS_P99_MS = 20.0, 5.0


# ---- building the registry ----------------------------------------------------------------

def train_source(base: Path) -> None:
    """Trains version 1 of SMALL through a daemon on `base`."""
    with running_daemon(base, DAEMON_FLAGS) as daemon:
        job = train_and_wait(daemon.stub, pb.TrainRequest(
            model=SMALL, algorithm="logistic_regression", cv_folds=2,
            dataset=pb.Dataset(path="spambase.csv", target="is_spam")))
    if job.state != pb.JOB_STATE_SUCCEEDED or not job.activated or job.version != 1:
        raise RuntimeError(f"training failed: {pb.JobState.Name(job.state)} {job.error}")


def build_model(registry: Path, model: str, source: Path, count: int) -> None:
    """`count` versions of `model`, each a copy of the version folder `source`.

    Artifacts are hard links (copies where links are refused): the same bytes, so the
    manifest's sizes and sha256 stay true. Only the manifest is rewritten per version.
    """
    manifest = json.loads((source / "manifest.json").read_text())
    root = registry / model
    (root / "versions").mkdir(parents=True)
    events = []
    now = time.time()
    for number in range(1, count + 1):
        folder = root / "versions" / str(number)
        folder.mkdir()
        for name in manifest["artifacts"]:
            try:
                os.link(source / name, folder / name)
            except OSError:
                shutil.copyfile(source / name, folder / name)
        body = dict(manifest, model=model, version=number, job_id=f"bench-copy-{number}")
        (folder / "manifest.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        events.append({"event": "published", "job_id": body["job_id"], "time": now,
                       "version": number})
    events.append({"event": "activated", "job_id": f"bench-copy-{count}", "previous": count - 1,
                   "time": now, "version": count})
    (root / "events.jsonl").write_text(
        "".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
    (root / "ACTIVE").write_text(f"{count}\n")


def build_registries(base: Path, versions: int) -> tuple[Path, Path, float]:
    """Returns (small base, full base, seconds to build the copies)."""
    full, small = base / "full", base / "small"
    for folder in (full, small):
        (folder / "data").mkdir(parents=True)
        shutil.copy(SPAMBASE, folder / "data" / "spambase.csv")
    train_source(full)
    shutil.copytree(full / "registry" / SMALL, small / "registry" / SMALL)
    source = full / "registry" / SMALL / "versions" / "1"
    started = time.perf_counter()
    build_model(full / "registry", MIDDLE, source, MIDDLE_COUNT)
    build_model(full / "registry", LARGE, source, versions)
    return small, full, time.perf_counter() - started


# ---- requests -------------------------------------------------------------------------------

def predict_request(model: str, version: int = 0) -> pb.PredictRequest:
    import pandas as pd

    row = pd.read_csv(SPAMBASE, nrows=1).drop(columns="is_spam")
    return pb.PredictRequest(model=model, version=version, dense=pb.DenseRows(
        columns=list(row.columns), values=row.to_numpy(dtype=float).ravel().tolist()))


def status_bytes(model: str) -> bytes:
    return pb.GetStatusRequest(model=model).SerializeToString()


def list_bytes(model: str, size: int, token: str = "") -> bytes:
    return pb.ListVersionsRequest(model=model, page_size=size,
                                  page_token=token).SerializeToString()


def middle_token(stub: pb_grpc.ModelManagerStub, versions: int) -> tuple[str, int]:
    """A page_token from paging down to the middle of LARGE, and the version it starts below."""
    token, below = "", versions + 1
    size = min(1000, max(1, versions // 10))
    while below > versions // 2 + 1:
        page = stub.ListVersions(pb.ListVersionsRequest(model=LARGE, page_size=size,
                                                        page_token=token), timeout=CALL_TIMEOUT)
        token, below = page.next_page_token, page.versions[-1].version
    return token, below


# ---- (2) the copies are valid ----------------------------------------------------------------

def check_copies(daemon: DaemonProcess, versions: int) -> str:
    """Raises unless the daemon counts, serves and loads the copies; returns what it saw."""
    status = daemon.stub.GetStatus(pb.GetStatusRequest(model=LARGE), timeout=CALL_TIMEOUT)
    m = status.models[0]
    if (m.version_count, m.active_version, m.loaded_version) != (versions, versions, versions) \
            or m.state != pb.LOAD_STATE_READY:
        raise RuntimeError(f"{LARGE}: GetStatus says {m.version_count} versions, active "
                           f"{m.active_version}, loaded {m.loaded_version}, "
                           f"{pb.LoadState.Name(m.state)} {m.last_error}")
    pinned = max(1, versions // 2)
    answer = daemon.stub.Predict(predict_request(LARGE, pinned), timeout=CALL_TIMEOUT)
    if answer.version != pinned:
        raise RuntimeError(f"{LARGE}: a Predict pinned to v{pinned} answered v{answer.version}")
    return (f"{LARGE}: {m.version_count} versions, v{m.loaded_version} READY; a Predict pinned "
            f"to v{pinned} loaded it (sha256 verified) and answered")


# ---- (3) start-up ----------------------------------------------------------------------------

@dataclass
class Startup:
    serving: float  # process start -> port file
    first_predict: float  # process start -> first Predict answered
    rss: float  # MiB after --settle seconds
    idle_cpu: float  # ms of CPU per second, measured after --settle


def start_once(base: Path, flags: list[str], settle: float, idle: float) -> Startup:
    request = predict_request(SMALL).SerializeToString()
    with running_daemon(base, DAEMON_FLAGS + flags, start_timeout=300) as daemon:
        first = first_answer(daemon.channel.unary_unary(PREDICT), request, CALL_TIMEOUT, 300)
        time.sleep(settle)
        return Startup(daemon.serving_at - daemon.spawned_at, first - daemon.spawned_at,
                       rss_mib(daemon.pid)[0], idle_cpu(daemon.pid, idle))


def measure_startups(small: Path, full: Path, args: argparse.Namespace
                     ) -> dict[str, list[Startup]]:
    """Alternates: one version (defaults), then the full registry in each variant."""
    out: dict[str, list[Startup]] = {}
    for _ in range(args.starts):
        out.setdefault(f"{SMALL} only (1 version), default", []).append(
            start_once(small, [], args.settle, args.idle_seconds))
        for variant in args.variants:
            out.setdefault(f"full ({args.versions + MIDDLE_COUNT + 1:,} versions), {variant}",
                           []).append(start_once(full, VARIANTS[variant], args.settle,
                                                 args.idle_seconds))
    return out


@dataclass
class IndexCost:
    """The daemon's own index, built in this process: what start-up and every GC pay for it."""

    build: float  # seconds for RegistryIndex.refresh() from nothing
    rescan: float  # seconds for a refresh that finds nothing new (the watcher's 2 s re-scan)
    objects: int  # objects the garbage collector tracks, with the index alive
    full_gc: float  # seconds for one full collection, with the index alive


def index_cost(registry: Path) -> IndexCost:
    import gc

    from modeld_server.registry.index import RegistryIndex
    from modeld_server.registry.store import RegistryStore

    started = time.perf_counter()
    index = RegistryIndex(RegistryStore(registry))
    index.refresh()
    build = time.perf_counter() - started
    started = time.perf_counter()
    index.refresh()
    rescan = time.perf_counter() - started
    gcs = []
    for _ in range(3):
        started = time.perf_counter()
        gc.collect()
        gcs.append(time.perf_counter() - started)
    out = IndexCost(build, rescan, len(gc.get_objects()), min(gcs))
    del index
    gc.collect()
    return out


def idle_cpu(pid: int, seconds: float) -> float:
    """The daemon's CPU milliseconds per second while nobody calls it."""
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return 1000 * (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)


# ---- (4) latency ---------------------------------------------------------------------------

@dataclass
class Kind:
    name: str
    method: str
    payload: bytes
    calls: int
    seconds: list[float] = field(default_factory=list)
    daemon_cpu: float = 0.0
    handler_ms: list[float] = field(default_factory=list)  # from the daemon's rpc log lines

    def ms(self, q: float) -> float:
        return 1000 * percentile(self.seconds, q)


def latency_kinds(versions: int, token: str, below: int, calls: int,
                  large_calls: int) -> list[Kind]:
    kinds = [
        Kind("gRPC round trip: health Check", HEALTH, b"", calls),
        Kind(f"GetStatus {SMALL}", GET_STATUS, status_bytes(SMALL), calls),
        Kind(f"GetStatus {LARGE}", GET_STATUS, status_bytes(LARGE), calls),
        Kind("GetStatus, all models", GET_STATUS, status_bytes(""), calls),
    ]
    for size in (50, 100, 1000):
        n = large_calls if size == 1000 else calls
        kinds.append(Kind(f"ListVersions {MIDDLE} page {size}", LIST_VERSIONS,
                          list_bytes(MIDDLE, size), n))
        kinds.append(Kind(f"ListVersions {LARGE} page {size}", LIST_VERSIONS,
                          list_bytes(LARGE, size), n))
    kinds.append(Kind(f"ListVersions {LARGE} page 100 below v{below}", LIST_VERSIONS,
                      list_bytes(LARGE, 100, token), calls))
    return kinds


def measure_latency(channel: grpc.Channel, kinds: list[Kind], block: int, pid: int,
                    idle_ms_per_s: float, log: RpcLog) -> None:
    """Each kind's calls in rotating blocks (fewer per block for kinds with fewer calls).

    The daemon's CPU per call has its idle rate (the periodic re-scan) taken out.
    """
    calls = {k.name: channel.unary_unary(k.method) for k in kinds}
    for kind in kinds:
        calls[kind.name](kind.payload, timeout=CALL_TIMEOUT)  # one untimed call each
    log.durations_ms()
    most = max(k.calls for k in kinds)
    for start in range(0, most, block):
        for kind in kinds:
            n = min(kind.calls, (start + block) * kind.calls // most) - start * kind.calls // most
            cpu0, began = cpu_seconds(pid), time.perf_counter()
            for _ in range(n):
                t0 = time.perf_counter()
                calls[kind.name](kind.payload, timeout=CALL_TIMEOUT)
                kind.seconds.append(time.perf_counter() - t0)
            # a unary call's line is written just after its response is sent: its CPU too
            kind.handler_ms.extend(log.wait_for(kind.method.rsplit("/", 1)[-1], n))
            idle = idle_ms_per_s / 1000 * (time.perf_counter() - began)
            kind.daemon_cpu += cpu_seconds(pid) - cpu0 - idle


# ---- (5) GetStatus while training -------------------------------------------------------------

@dataclass
class StatusSamples:
    seconds: list[float] = field(default_factory=list)
    other: int = 0  # calls answered while not exactly `want` jobs ran
    jobs_done: int = 0
    jobs_failed: int = 0


class Trainer(threading.Thread):
    """Keeps one training job of `model` running until stopped; then cancels the last one."""

    def __init__(self, daemon: DaemonProcess, model: str, stop: threading.Event,
                 samples: StatusSamples, lock: threading.Lock) -> None:
        super().__init__(daemon=True)
        self.stub = pb_grpc.ModelManagerStub(daemon.new_channel())
        self.model, self.stop, self.samples, self.lock = model, stop, samples, lock
        self.job_id = ""

    def run(self) -> None:
        request = pb.TrainRequest(model=self.model, algorithm="xgboost", cv_folds=5,
                                  dataset=pb.Dataset(path="spambase.csv", target="is_spam"))
        while not self.stop.is_set():
            job = self.stub.Train(request, timeout=CALL_TIMEOUT)
            self.job_id = job.id
            for event in self.stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=900):
                job = event.job
            if self.stop.is_set():
                return  # cancelled by the end of the phase: not an outcome
            with self.lock:
                self.samples.jobs_done += 1
                self.samples.jobs_failed += job.state != pb.JOB_STATE_SUCCEEDED

    def cancel(self) -> None:
        if self.job_id:
            with contextlib.suppress(grpc.RpcError):
                self.stub.CancelJob(pb.CancelJobRequest(job_id=self.job_id), timeout=CALL_TIMEOUT)


def sample_status(stub: pb_grpc.ModelManagerStub, seconds: float, interval: float,
                  want_jobs: int, out: StatusSamples) -> None:
    """GetStatus of LARGE every `interval` for `seconds`; keeps calls that saw `want_jobs`."""
    request = pb.GetStatusRequest(model=LARGE)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        answer = stub.GetStatus(request, timeout=CALL_TIMEOUT)
        elapsed = time.perf_counter() - t0
        if answer.daemon.jobs_running == want_jobs:
            out.seconds.append(elapsed)
        else:
            out.other += 1
        time.sleep(max(0.0, interval - (time.perf_counter() - t0)))


def measure_under_training(daemon: DaemonProcess, seconds: float,
                           interval: float) -> tuple[StatusSamples, StatusSamples]:
    idle = StatusSamples()
    sample_status(daemon.stub, seconds, interval, 0, idle)
    busy, stop, lock = StatusSamples(), threading.Event(), threading.Lock()
    trainers = [Trainer(daemon, name, stop, busy, lock) for name in ("train-a", "train-b")]
    for trainer in trainers:
        trainer.start()
    try:
        deadline = time.perf_counter() + 120  # until both jobs run (the first fork is slow)
        while time.perf_counter() < deadline:
            status = daemon.stub.GetStatus(pb.GetStatusRequest(model=LARGE), timeout=CALL_TIMEOUT)
            if status.daemon.jobs_running == 2:
                break
            time.sleep(0.05)
        sample_status(daemon.stub, seconds, interval, 2, busy)
    finally:
        stop.set()
        for trainer in trainers:
            trainer.cancel()
        for trainer in trainers:
            trainer.join(timeout=120)
    return idle, busy


# ---- report ----------------------------------------------------------------------------------

def report_startups(startups: dict[str, list[Startup]]) -> None:
    labels = list(startups)
    base = median([s.first_predict for s in startups[labels[0]]])
    print()
    print(f"start-up, medians of {len(startups[labels[0]])} starts each, alternating (full: "
          f"{SMALL} + {MIDDLE} + {LARGE}):")
    width = max(len(label) for label in labels)
    print(f"  {'registry, daemon':<{width}} {'-> port file':>12} {'-> 1st Predict':>15} "
          f"{'x baseline':>10} {'RSS MiB':>8} {'idle CPU ms/s':>14}")
    for label, runs in startups.items():
        first = median([s.first_predict for s in runs])
        print(f"  {label:<{width}} {median([s.serving for s in runs]):>10.3f} s "
              f"{first:>13.3f} s {first / base:>10.2f} {median([s.rss for s in runs]):>8.0f} "
              f"{median([s.idle_cpu for s in runs]):>14.1f}")
    print("  (idle CPU: the daemon's CPU while nobody calls it, after --settle; read in 10 ms "
          "ticks)")


def report_index(cost: dict[str, IndexCost]) -> None:
    small, full = cost["small"], cost["full"]
    print()
    print("the daemon's registry index, built in this process (RegistryIndex.refresh):")
    print(f"  {'registry':<22} {'build s':>8} {'re-scan ms':>11} {'GC objects':>11} "
          f"{'full GC ms':>11}")
    for label, c in (("one version", small), ("full", full)):
        print(f"  {label:<22} {c.build:>8.3f} {1000 * c.rescan:>11.1f} {c.objects:>11,} "
              f"{1000 * c.full_gc:>11.1f}")
    print(f"  ratio full / one version: build {full.build / small.build:.0f}, full GC pass "
          f"{full.full_gc / small.full_gc:.1f} (a full collection stops every thread)")


def report_latency(label: str, kinds: list[Kind], block: int, idle_ms_per_s: float) -> None:
    by_name = {k.name: k for k in kinds}
    floor = by_name["gRPC round trip: health Check"]
    print()
    print(f"latency, daemon {label}, one call at a time, kinds interleaved in blocks (up to "
          f"{block} calls):")
    print(f"  {'kind':<44} {'calls':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'x health p50':>13} {'x baseline p50':>15} {'daemon CPU ms/call':>19} "
          f"{'handler p50 ms':>15}")
    for k in kinds:
        baseline = ""
        if LARGE in k.name and "below" not in k.name:
            other = by_name.get(k.name.replace(LARGE, MIDDLE if "ListVersions" in k.name
                                               else SMALL))
            baseline = f"{k.ms(50) / other.ms(50):.2f}" if other else ""
        elif "below" in k.name:
            baseline = f"{k.ms(50) / by_name[f'ListVersions {LARGE} page 100'].ms(50):.2f}"
        handler = f"{median(k.handler_ms):.2f}" if k.handler_ms else ""
        # A daemon already busy while idle leaves nothing to attribute to the calls.
        cpu = (f"{1000 * k.daemon_cpu / max(1, len(k.seconds)):.3f}"
               if idle_ms_per_s < MAX_IDLE_MS_PER_S else "n/a")
        print(f"  {k.name:<44} {len(k.seconds):>6} {k.ms(50):>8.2f} {k.ms(99):>8.2f} "
              f"{1000 * max(k.seconds):>8.2f} {k.ms(50) / floor.ms(50):>13.2f} {baseline:>15} "
              f"{cpu:>19} {handler:>15}")
    print(f"  (x baseline: {LARGE} against {MIDDLE} for ListVersions, against {SMALL} for "
          "GetStatus; the middle page against the first page. Daemon CPU per call: its idle "
          f"rate, {idle_ms_per_s:.1f} ms/s, taken out. Handler: the daemon's own duration_ms "
          "from its per-RPC log line)")
    middle = next(k.name for k in kinds if "below" in k.name)
    for name in (f"ListVersions {LARGE} page 100", middle):
        p99 = by_name[name].ms(99)
        print(f"  target {name} p99 <= {TARGET_LIST_P99_MS:.0f} ms: {p99:.2f} ms "
              f"{verdict(p99 <= TARGET_LIST_P99_MS)}")


def report_training(label: str, idle: StatusSamples, busy: StatusSamples,
                    interval: float) -> None:
    print()
    print(f"GetStatus {LARGE}, daemon {label}, one call every {1000 * interval:.0f} ms:")
    for label, s in (("no job running", idle), ("two training jobs running", busy)):
        print(f"  {label:<28} {len(s.seconds):>5} calls: p50 {1000 * percentile(s.seconds, 50):.2f}"
              f" ms, p99 {1000 * percentile(s.seconds, 99):.2f} ms, max "
              f"{1000 * max(s.seconds, default=float('nan')):.2f} ms")
    p99_idle, p99_busy = percentile(idle.seconds, 99), percentile(busy.seconds, 99)
    print(f"  ratio p99 busy / idle {p99_busy / p99_idle:.2f}; {busy.jobs_done} jobs ended "
          f"({busy.jobs_failed} failed); {busy.other} calls left out (fewer than 2 jobs running "
          f"at that moment)")
    print(f"  target GetStatus p99 <= {TARGET_STATUS_P99_MS:.0f} ms with two jobs running: "
          f"{1000 * p99_busy:.2f} ms {verdict(1000 * p99_busy <= TARGET_STATUS_P99_MS)}")


# ---- main -----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="ListVersions, GetStatus and start-up on a registry of 10,000 versions.")
    parser.add_argument("--versions", type=int, default=10_000,
                        help=f"versions of {LARGE} (default 10000)")
    parser.add_argument("--calls", type=int, default=300,
                        help="timed calls per latency kind (default 300)")
    parser.add_argument("--large-calls", type=int, default=60,
                        help="timed calls for the pages of 1000 (default 60)")
    parser.add_argument("--block", type=int, default=25,
                        help="calls per block when interleaving kinds (default 25)")
    parser.add_argument("--starts", type=int, default=3,
                        help="daemon starts per registry, 0 skips them (default 3)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds for a daemon's background warm-up (default 3)")
    parser.add_argument("--idle-seconds", type=float, default=4.0,
                        help="seconds the daemon's idle CPU is measured over (default 4)")
    parser.add_argument("--train-seconds", type=float, default=15.0,
                        help="seconds of GetStatus with no job, then with two (default 15; "
                        "0 skips)")
    parser.add_argument("--status-interval", type=float, default=0.01,
                        help="seconds between GetStatus calls in that phase (default 0.01)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="daemon settings to measure on the full registry (default: both)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (daemon log, registry) and print it")
    args = parser.parse_args(argv)
    if not (args.versions >= 2 and args.calls >= args.block >= 1 and args.large_calls >= 1
            and args.starts >= 0 and args.train_seconds >= 0):
        parser.error("need --versions >= 2, --calls >= --block >= 1, --large-calls >= 1, "
                     "--starts >= 0 and --train-seconds >= 0")
    return args


@dataclass
class VariantRun:
    """One daemon on the full registry: its latency table, GetStatus while training, and
    how often watchdog said it lost events."""

    kinds: list[Kind]
    idle: float
    trained: tuple[StatusSamples, StatusSamples] | None
    overflows: int


def run_variant(full: Path, variant: str, args: argparse.Namespace) -> VariantRun:
    with running_daemon(full, DAEMON_FLAGS + VARIANTS[variant], start_timeout=300) as daemon:
        log = RpcLog(daemon.log_path)
        time.sleep(args.settle)
        print(f"{variant}: {check_copies(daemon, args.versions)}", flush=True)
        token, below = middle_token(daemon.stub, args.versions)
        kinds = latency_kinds(args.versions, token, below, args.calls, args.large_calls)
        idle = idle_cpu(daemon.pid, args.idle_seconds)
        measure_latency(daemon.channel, kinds, args.block, daemon.pid, idle, log)
        trained = (measure_under_training(daemon, args.train_seconds, args.status_interval)
                   if args.train_seconds else None)
        overflows = daemon.log_path.read_bytes().count(OVERFLOW)
    return VariantRun(kinds, idle, trained, overflows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"modeld registry scale: {args.versions:,} versions of one model; commit {git_commit()}; "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, grpcio {grpc.__version__}")
    print(f"before: {load_note()}", flush=True)
    with scratch_folder("modeld-bench-registry-", args.keep) as base:
        small, full, build_s = build_registries(base, args.versions)
        print(f"built {args.versions + MIDDLE_COUNT:,} version folders in {build_s:.1f} s "
              "(artifacts hard-linked, manifests rewritten)", flush=True)
        cost = {"small": index_cost(small / "registry"), "full": index_cost(full / "registry")}
        startups = measure_startups(small, full, args) if args.starts else {}
        runs = {variant: run_variant(full, variant, args) for variant in args.variants}
        print(f"after: {load_note()}")
        if startups:
            report_startups(startups)
        report_index(cost)
        for variant, run in runs.items():
            print()
            print(f"daemon {variant}: idle CPU {run.idle:.1f} ms/s; watchdog logged "
                  f"{run.overflows} inotify queue overflows (each one re-walks and re-watches "
                  "every folder under the registry)")
            report_latency(variant, run.kinds, args.block, run.idle)
            if run.trained:
                report_training(variant, *run.trained, args.status_interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
