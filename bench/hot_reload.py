"""How fast a running daemon follows the registry on disk, and whether any call fails meanwhile.

A daemon runs in a subprocess with its default settings (file-system watch on,
safety-net re-scan every 2 s), only on 127.0.0.1. Through it this script trains
small versions of one model (iris, logistic_regression, cv_folds 2), then measures:

(a) reload: THIS process (not the daemon) rewrites <registry>/<model>/ACTIVE as an
    operator would (temp file in the same folder, fsync, os.replace), alternating
    versions 1 and 2; latency from the os.replace to the first Predict answered by
    the new version, polling Predict in a tight loop; more than 5 s is a miss.
    Targets: p50 <= 50 ms, p99 <= 200 ms.
(b) rollback: Rollback RPCs alternating to_version 1 / 2; latency from the call to
    the first Predict answered by the target (Rollback is meant to answer only once
    the target answers). Target: p99 <= 20 ms.
(c) zero failed calls: 16 threads, each with its own channel, call Predict in a
    loop while this process swaps the pointer 100 times, every 20 ms. Counts calls,
    failed calls (any RpcError) and answers from a version other than 1 or 2.
(d) extra, not a target: (a) again while the 16 callers keep the daemon busy.
(e) extra, not a target: swaps that need a real load. Four versions are cycled, so
    with the default keep_loaded=2 (three versions in memory) every target has been
    evicted and is verified, loaded and warmed up again.

Every loop is bounded in count and time; the script stops by itself.

Run:  .venv/bin/python bench/hot_reload.py [--swaps 100] [--rollbacks 100]
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from _common import (
    DaemonProcess,
    load_note,
    median,
    percentile,
    running_daemon,
    scratch_folder,
    train_and_wait,
    verdict,
    write_pointer,
)

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc

MODEL = "bench-iris"
GIVE_UP = 5.0  # seconds before a swap that is not served counts as a miss
CALL_TIMEOUT = 5.0
TARGET_RELOAD_P50_MS, TARGET_RELOAD_P99_MS = 50.0, 200.0
TARGET_ROLLBACK_P99_MS = 20.0


def write_iris(folder: Path) -> list[str]:
    """Writes iris.csv (species as strings) into the data root; returns the feature names."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns="target")
    frame["species"] = iris.target_names[iris.target]
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "iris.csv", index=False)
    return [str(c) for c in frame.columns if c != "species"]


def predict_request(features: list[str]) -> pb.PredictRequest:
    row = [5.9, 3.0, 5.1, 1.8][: len(features)]
    return pb.PredictRequest(model=MODEL, dense=pb.DenseRows(columns=features, values=row))


def train_versions(daemon: DaemonProcess, count: int) -> None:
    """Trains `count` more versions of MODEL (each becomes active when it succeeds)."""
    for _ in range(count):
        job = train_and_wait(daemon.stub, pb.TrainRequest(
            model=MODEL, dataset=pb.Dataset(path="iris.csv", target="species"),
            algorithm="logistic_regression", cv_folds=2))
        if job.state != pb.JOB_STATE_SUCCEEDED:
            raise RuntimeError(f"training failed: {pb.JobState.Name(job.state)} {job.error}")
        if not job.activated:
            # The quality gate kept it inactive; the phases below assume each new version is live.
            raise RuntimeError(f"v{job.version} was published but not activated: {job.message}")


@dataclass
class Waited:
    """How one wait for a version to answer ended."""

    seconds: float | None  # None: a miss
    errors: int = 0
    stale_answers: int = 0


def wait_for_version(stub: pb_grpc.ModelManagerStub, request: pb.PredictRequest, target: int,
                     started: float, give_up: float = GIVE_UP) -> Waited:
    """Polls Predict in a tight loop until `target` answers; times from `started`."""
    out = Waited(None)
    while True:
        try:
            answer = stub.Predict(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError:
            out.errors += 1
            answer = None
        now = time.perf_counter()
        if answer is not None and answer.version == target:
            out.seconds = now - started
            return out
        out.stale_answers += answer is not None
        if now - started > give_up:
            return out


# ---- (a) pointer rewritten by another process -----------------------------------------------

@dataclass
class Latencies:
    seconds: list[float] = field(default_factory=list)
    misses: int = 0
    errors: int = 0
    extra: list[float] = field(default_factory=list)


def measure_pointer_swaps(daemon: DaemonProcess, request: pb.PredictRequest,
                          versions: list[int], swaps: int, gap: float) -> Latencies:
    """Cycles the ACTIVE pointer through `versions`; each swap waits for the new one to answer."""
    pointer = daemon.registry / MODEL / "ACTIVE"
    current = int(pointer.read_text())
    out = Latencies()
    for i in range(swaps):
        target = versions[(versions.index(current) + 1) % len(versions)]
        started = write_pointer(pointer, target)
        waited = wait_for_version(daemon.stub, request, target, started)
        out.errors += waited.errors
        if waited.seconds is None:
            out.misses += 1
        else:
            out.seconds.append(waited.seconds)
        current = target
        if i + 1 < swaps:
            time.sleep(gap)
    return out


# ---- (b) Rollback ---------------------------------------------------------------------------

@dataclass
class RollbackFigures:
    rpc: list[float] = field(default_factory=list)
    first_answer: list[float] = field(default_factory=list)
    misses: int = 0
    errors: int = 0
    stale_after_return: int = 0


def measure_rollbacks(daemon: DaemonProcess, request: pb.PredictRequest, count: int,
                      gap: float) -> RollbackFigures:
    """Rolls back between versions 1 and 2 `count` times; times the RPC and the first answer."""
    out = RollbackFigures()
    current = daemon.stub.GetStatus(pb.GetStatusRequest(model=MODEL), timeout=10) \
        .models[0].active_version
    for i in range(count):
        target = 1 if current == 2 else 2
        started = time.perf_counter()
        try:
            daemon.stub.Rollback(pb.RollbackRequest(model=MODEL, to_version=target,
                                                    reason="bench"), timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            out.errors += 1
            print(f"  rollback to v{target} failed: {exc.code().name}: {exc.details()}")
            current = int((daemon.registry / MODEL / "ACTIVE").read_text())
            continue
        out.rpc.append(time.perf_counter() - started)
        waited = wait_for_version(daemon.stub, request, target, started)
        out.stale_after_return += waited.stale_answers
        out.errors += waited.errors
        if waited.seconds is None:
            out.misses += 1
        else:
            out.first_answer.append(waited.seconds)
        current = target
        if i + 1 < count:
            time.sleep(gap)
    return out


# ---- (c) concurrent callers during swaps ---------------------------------------------------

@dataclass
class LoadFigures:
    calls: int = 0
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    by_version: collections.Counter[int] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    swaps_seconds: float = 0.0
    converged: bool = False
    final_version: int = 0


class Caller(threading.Thread):
    """Calls Predict on its own channel until told to stop (or its own deadline/call cap)."""

    def __init__(self, daemon: DaemonProcess, request: pb.PredictRequest, stop: threading.Event,
                 deadline: float, max_calls: int) -> None:
        super().__init__(daemon=True)
        self.daemon_process, self.request, self.stop = daemon, request, stop
        self.deadline, self.max_calls = deadline, max_calls
        self.figures = LoadFigures()
        self.started_calling = threading.Event()

    def run(self) -> None:
        channel = self.daemon_process.new_channel()
        stub = pb_grpc.ModelManagerStub(channel)
        f = self.figures
        try:
            while (not self.stop.is_set() and f.calls < self.max_calls
                   and time.perf_counter() < self.deadline):
                started = time.perf_counter()
                try:
                    answer = stub.Predict(self.request, timeout=CALL_TIMEOUT)
                    f.by_version[answer.version] += 1
                except grpc.RpcError as exc:
                    f.failed[exc.code().name] += 1
                f.latencies.append(time.perf_counter() - started)
                f.calls += 1
                self.started_calling.set()
        finally:
            self.started_calling.set()
            channel.close()


class CallerPool:
    """`n` Caller threads, started together and stopped together; sums their figures."""

    def __init__(self, daemon: DaemonProcess, request: pb.PredictRequest, n: int,
                 max_seconds: float) -> None:
        self.stop_event = threading.Event()
        deadline = time.perf_counter() + max_seconds
        self.threads = [Caller(daemon, request, self.stop_event, deadline, max_calls=2_000_000)
                        for _ in range(n)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        for thread in self.threads:
            thread.started_calling.wait(timeout=30)

    def stop(self) -> LoadFigures:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)
        out = LoadFigures()
        for thread in self.threads:
            f = thread.figures
            out.calls += f.calls
            out.failed.update(f.failed)
            out.by_version.update(f.by_version)
            out.latencies.extend(f.latencies)
        return out


def measure_under_load(daemon: DaemonProcess, request: pb.PredictRequest, callers: int,
                       swaps: int, interval: float, tail: float) -> LoadFigures:
    """`callers` threads call Predict while the pointer flips 1 <-> 2 `swaps` times."""
    pool = CallerPool(daemon, request, callers, swaps * interval + tail + 60.0)
    pool.start()
    pointer = daemon.registry / MODEL / "ACTIVE"
    current = int(pointer.read_text())
    began = time.perf_counter()
    try:
        for i in range(swaps):
            current = 1 if current == 2 else 2
            write_pointer(pointer, current)
            pause = began + (i + 1) * interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        swaps_seconds = time.perf_counter() - began
        time.sleep(tail)
    finally:
        out = pool.stop()
    out.swaps_seconds, out.final_version = swaps_seconds, current
    # Not a latency (the tail already passed): only whether the last state on disk is served.
    out.converged = wait_for_version(daemon.stub, request, current,
                                     time.perf_counter()).seconds is not None
    return out


def measure_swaps_under_load(daemon: DaemonProcess, request: pb.PredictRequest, callers: int,
                             swaps: int, gap: float) -> tuple[Latencies, LoadFigures]:
    """(a) again, while `callers` threads keep the daemon busy with Predict calls."""
    pool = CallerPool(daemon, request, callers, swaps * (GIVE_UP + gap) + 60.0)
    pool.start()
    try:
        latencies = measure_pointer_swaps(daemon, request, [1, 2], swaps, gap)
    finally:
        load = pool.stop()
    return latencies, load


# ---- (e) swaps that need a load --------------------------------------------------------------

def measure_cold_swaps(daemon: DaemonProcess, request: pb.PredictRequest, swaps: int,
                       gap: float) -> Latencies:
    """Cycles four versions so every target was evicted; also collects the daemon's load time."""
    train_versions(daemon, 2)  # versions 3 and 4
    pointer = daemon.registry / MODEL / "ACTIVE"
    versions = [1, 2, 3, 4]
    current = int(pointer.read_text())
    out = Latencies()
    for i in range(swaps):
        target = versions[(versions.index(current) + 1) % len(versions)]
        started = write_pointer(pointer, target)
        waited = wait_for_version(daemon.stub, request, target, started)
        out.errors += waited.errors
        if waited.seconds is None:
            out.misses += 1
        else:
            out.seconds.append(waited.seconds)
            status = daemon.stub.GetStatus(pb.GetStatusRequest(model=MODEL), timeout=10)
            out.extra.append(status.models[0].last_reload_ms / 1000)
        current = target
        if i + 1 < swaps:
            time.sleep(gap)
    return out


# ---- report ---------------------------------------------------------------------------------

def ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f} ms"


def dist(values: list[float]) -> str:
    return (f"p50 {ms(percentile(values, 50))}, p99 {ms(percentile(values, 99))}, "
            f"max {ms(max(values)) if values else 'n/a'}")


def report(args: argparse.Namespace, swaps: Latencies, rollbacks: RollbackFigures,
           load: LoadFigures, cold: Latencies | None,
           busy: tuple[Latencies, LoadFigures] | None) -> bool:
    """Prints every figure with its target beside it; returns whether all targets were met."""
    r50, r99 = percentile(swaps.seconds, 50) * 1000, percentile(swaps.seconds, 99) * 1000
    rb99 = percentile(rollbacks.first_answer, 99) * 1000
    failed = sum(load.failed.values())
    other = sum(n for v, n in load.by_version.items() if v not in (1, 2))
    oks = {
        "reload_p50": r50 <= TARGET_RELOAD_P50_MS and swaps.misses == 0,
        "reload_p99": r99 <= TARGET_RELOAD_P99_MS and swaps.misses == 0,
        "rollback_p99": rb99 <= TARGET_ROLLBACK_P99_MS and rollbacks.misses == 0
        and not rollbacks.errors,
        "zero_failed": failed == 0 and other == 0 and load.converged,
    }
    print()
    print(f"(a) pointer rewritten by another process -> first Predict from the new version, "
          f"{len(swaps.seconds) + swaps.misses} swaps:")
    print(f"    p50 {r50:.1f} ms (target <= {TARGET_RELOAD_P50_MS:.0f} ms) "
          f"{verdict(oks['reload_p50'])}; p99 {r99:.1f} ms (target <= "
          f"{TARGET_RELOAD_P99_MS:.0f} ms) {verdict(oks['reload_p99'])}; max "
          f"{ms(max(swaps.seconds)) if swaps.seconds else 'n/a'}; misses (> {GIVE_UP:.0f} s) "
          f"{swaps.misses}; Predict errors while polling {swaps.errors}")
    print(f"(b) Rollback, {len(rollbacks.rpc) + rollbacks.errors} calls alternating v1/v2:")
    print(f"    call -> first Predict from the target: {dist(rollbacks.first_answer)} "
          f"(target p99 <= {TARGET_ROLLBACK_P99_MS:.0f} ms) {verdict(oks['rollback_p99'])}")
    print(f"    the Rollback RPC alone: {dist(rollbacks.rpc)}; failed rollbacks "
          f"{rollbacks.errors}; misses {rollbacks.misses}; answers from the old version after "
          f"Rollback returned {rollbacks.stale_after_return} (should be 0)")
    print(f"(c) {args.callers} concurrent callers during {args.load_swaps} pointer swaps every "
          f"{ms(args.interval)} (swapping took {load.swaps_seconds:.2f} s):")
    failures = ", ".join(f"{code} {n}" for code, n in load.failed.most_common()) or "none"
    print(f"    calls {load.calls}, failed {failed} (target 0) {verdict(oks['zero_failed'])} "
          f"[{failures}], answered by a version other than 1 or 2: {other}")
    versions = ", ".join(f"v{v} {n}" for v, n in sorted(load.by_version.items()))
    print(f"    answers by version: {versions}; Predict latency under load: {dist(load.latencies)}")
    converged = "yes" if load.converged else f"NO (not within {GIVE_UP:.0f} s)"
    print(f"    after the last swap the daemon serves the final pointer (v{load.final_version}): "
          f"{converged}")
    if busy is not None:
        lat, calls = busy
        busy_failed = sum(calls.failed.values())
        print(f"(d) extra, no target: (a) again while {args.callers} callers keep calling Predict, "
              f"{len(lat.seconds) + lat.misses} swaps:")
        print(f"    pointer -> first answer to this process: {dist(lat.seconds)}; misses "
              f"{lat.misses}; callers made {calls.calls} calls, {busy_failed} failed; their "
              f"latency {dist(calls.latencies)}")
    if cold is not None:
        print(f"(e) extra, no target: swaps that need a load (4 versions cycled, keep_loaded=2), "
              f"{len(cold.seconds) + cold.misses} swaps:")
        print(f"    pointer -> first answer: {dist(cold.seconds)}; misses {cold.misses}; "
              f"daemon-reported verify+load+warm-up median {ms(median(cold.extra))}")
    print()
    print("README lines:")
    print(f"- reload after another process replaces ACTIVE: p50 {r50:.1f} ms, p99 {r99:.1f} ms "
          f"over {len(swaps.seconds) + swaps.misses} swaps (targets 50 / 200 ms)")
    print(f"- Rollback to first answer from the target: p50 "
          f"{ms(percentile(rollbacks.first_answer, 50))}, p99 {rb99:.1f} ms over "
          f"{len(rollbacks.rpc) + rollbacks.errors} rollbacks (target p99 20 ms)")
    print(f"- {args.callers} concurrent callers during {args.load_swaps} swaps: {failed} failed "
          f"of {load.calls} Predict calls (target 0)")
    return all(oks.values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Hot reload latency and zero-failure check.")
    parser.add_argument("--swaps", type=int, default=100, help="(a) pointer swaps (default 100)")
    parser.add_argument("--rollbacks", type=int, default=100,
                        help="(b) Rollback calls (default 100)")
    parser.add_argument("--callers", type=int, default=16,
                        help="(c) concurrent Predict threads (default 16)")
    parser.add_argument("--load-swaps", type=int, default=100,
                        help="(c) swaps under load (default 100)")
    parser.add_argument("--interval", type=float, default=0.020,
                        help="(c) seconds between swaps under load (default 0.02)")
    parser.add_argument("--cold-swaps", type=int, default=20,
                        help="(e) swaps that need a load; 0 skips (default 20)")
    parser.add_argument("--busy-swaps", type=int, default=30,
                        help="(d) measured swaps while the callers run; 0 skips (default 30)")
    parser.add_argument("--gap", type=float, default=0.05,
                        help="(a, b, d, e) pause after each measured swap, seconds (default 0.05)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds for the daemon's background warm-up (default 3)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (daemon log, registry) and print it")
    args = parser.parse_args(argv)
    counts_ok = (1 <= args.swaps <= 10_000 and 1 <= args.rollbacks <= 10_000
                 and 1 <= args.callers <= 64 and 1 <= args.load_swaps <= 10_000
                 and 0 <= args.busy_swaps <= 1000 and 0 <= args.cold_swaps <= 1000)
    if not (counts_ok and 0.001 <= args.interval <= 1.0 and 0 <= args.gap <= 1.0):
        parser.error("a count or interval is out of its range (see --help)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"modeld hot reload: daemon with default settings (watch on, poll interval 2 s); "
          f"model {MODEL}: iris, logistic_regression, cv_folds 2")
    print(f"before: {load_note()}", flush=True)
    with scratch_folder("modeld-bench-reload-", args.keep) as base:
        features = write_iris(base / "data")
        with running_daemon(base) as daemon:
            time.sleep(args.settle)
            train_versions(daemon, 2)
            request = predict_request(features)
            first = wait_for_version(daemon.stub, request, 2, time.perf_counter(), 30.0)
            if first.seconds is None:
                raise RuntimeError("version 2 never answered after training:\n" + daemon.log_tail())
            print(f"  trained v1, v2; measuring (a) {args.swaps} swaps ...", flush=True)
            swaps = measure_pointer_swaps(daemon, request, [1, 2], args.swaps, args.gap)
            print(f"  (b) {args.rollbacks} rollbacks ...", flush=True)
            rollbacks = measure_rollbacks(daemon, request, args.rollbacks, args.gap)
            print(f"  (c) {args.callers} callers, {args.load_swaps} swaps ...", flush=True)
            load = measure_under_load(daemon, request, args.callers, args.load_swaps,
                                      args.interval, tail=0.5)
            busy = None
            if args.busy_swaps:
                print(f"  (d) {args.busy_swaps} swaps with {args.callers} callers ...", flush=True)
                busy = measure_swaps_under_load(daemon, request, args.callers, args.busy_swaps,
                                                args.gap)
            cold = None
            if args.cold_swaps:
                print(f"  (e) {args.cold_swaps} swaps that need a load ...", flush=True)
                cold = measure_cold_swaps(daemon, request, args.cold_swaps, args.gap)
        print(f"after: {load_note()}")
        met = report(args, swaps, rollbacks, load, cold, busy)
    print(f"all targets met: {'yes' if met else 'NO'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
