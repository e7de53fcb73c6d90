"""What training through the daemon costs over doing the same work with the plain libraries.

Measured, in one run, on spambase (4601 rows, 57 features):

* daemon: from the Train call until WatchJob delivers the job's final state. That
  covers validation, queueing, the worker process, reading the CSV, 5-fold
  stratified CV (shuffled, seed 42) with metrics from predict + predict_proba per
  fold, the final fit on all rows, saving, publishing the version and loading it
  for serving. The daemon runs in a subprocess (`python -m modeld_server serve`),
  so its threads never share this script's GIL.
* plain: the same work in this process: pandas.read_csv, StratifiedKFold(5,
  shuffle=True, random_state=42), per fold fit + predict + predict_proba and the
  same eight metrics, a final fit on all rows, and saving the model to a file.

Both are warmed up first (the daemon's first job may still pay for its forkserver),
then runs alternate daemon / plain. Each timed daemon run trains a new model name,
so the quality gate has no champion to compare with and the job does the plain
work; a few retrains of an existing name (gate on) are timed apart, as an extra.
It prints medians and minima, the ratio daemon / plain (target <= 1.10), where the
daemon's time goes, and lines ready for the README. The load average is printed
before and after: other work on the machine makes the figures meaningless.

Algorithms: xgboost with defaults (XGBClassifier(random_state=42)) and logistic_regression
(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))).

A row-count sweep (`--sweep 100000 300000 ...`) does the same on synthetic binary data of
`--columns` numeric columns (generated into a temporary CSV, not timed) with XGBoost and
`--folds` folds, one size after the other, daemon and plain interleaved at each size. It
prints daemon s, plain s, their ratio and the manifest's phase timings (prepare, CV, final
fit, save, profile), each with the 1-minute load average just before the run.

Run:  .venv/bin/python bench/train_overhead.py [--repeats 5]
      .venv/bin/python bench/train_overhead.py --sweep 100000 300000 500000 1000000 2000000 \
          --columns 20 --folds 3 [--repeats 2]   # 1 repeat from 1M rows
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
import xgboost
from _common import SPAMBASE, load_note, median, running_daemon, scratch_folder, verdict
from sklearn import metrics as m
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc

TARGET = "is_spam"
SYNTH_TARGET = "label"
FOLDS = 5
SEED = 42
TARGET_RATIO = 1.10
ALGORITHMS: dict[str, Callable[[], Any]] = {
    "xgboost": lambda: XGBClassifier(random_state=SEED),
    "logistic_regression": lambda: make_pipeline(StandardScaler(),
                                                 LogisticRegression(max_iter=2000)),
}


@dataclass(frozen=True)
class Workload:
    """What both sides train on: a CSV under the daemon's data root, its target, the folds."""

    name: str
    """The file's name in the data root."""
    target: str = TARGET
    folds: int = FOLDS


SPAMBASE_WORK = Workload("spambase.csv")


@dataclass
class Run:
    """One timed run: its wall time, the parts of it, and the CV accuracy it reported."""

    seconds: float
    accuracy: float
    parts: dict[str, float] = field(default_factory=dict)
    load: float = 0.0
    """The 1-minute load average just before the run."""
    gate_how: str = ""
    """The gate's record of how the champion was scored (a retrain), else empty."""


# ---- the plain libraries, in this process ---------------------------------------------------

def plain_run(algorithm: str, csv: Path, out_dir: Path, work: Workload = SPAMBASE_WORK) -> Run:
    """The daemon's work done by hand: read, k-fold CV with metrics, final fit, save."""
    make = ALGORITHMS[algorithm]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    frame = pd.read_csv(csv)
    x = frame.drop(columns=work.target).to_numpy(dtype=np.float64)
    y = frame[work.target].to_numpy()
    t_read = time.perf_counter()
    folds = []
    splitter = StratifiedKFold(n_splits=work.folds, shuffle=True, random_state=SEED)
    for train_idx, test_idx in splitter.split(x, y):
        estimator = make().fit(x[train_idx], y[train_idx])
        folds.append(fold_metrics(y[test_idx], estimator.predict(x[test_idx]),
                                  estimator.predict_proba(x[test_idx])))
    t_cv = time.perf_counter()
    final = make().fit(x, y)
    t_fit = time.perf_counter()
    save(final, out_dir / f"{algorithm}-model")
    t_end = time.perf_counter()
    parts = {"read": t_read - t0, "cv": t_cv - t_read, "final_fit": t_fit - t_cv,
             "save": t_end - t_fit}
    return Run(t_end - t0, float(np.mean([f["accuracy"] for f in folds])), parts, load)


def fold_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The eight binary metrics the daemon reports per fold (class 1 positive)."""
    positive = proba[:, 1]
    return {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "precision": m.precision_score(y_true, y_pred, zero_division=0),
        "recall": m.recall_score(y_true, y_pred, zero_division=0),
        "f1": m.f1_score(y_true, y_pred, zero_division=0),
        "roc_auc": m.roc_auc_score(y_true, positive),
        "average_precision": m.average_precision_score(y_true, positive),
        "brier": m.brier_score_loss(y_true, positive),
        "log_loss": m.log_loss(y_true, proba, labels=[0, 1]),
    }


def save(estimator: Any, stem: Path) -> None:
    """XGBoost in its own format (as the daemon stores it); anything else with joblib."""
    if isinstance(estimator, XGBClassifier):
        estimator.save_model(stem.with_suffix(".ubj"))
    else:
        joblib.dump(estimator, stem.with_suffix(".joblib"))


# ---- the daemon --------------------------------------------------------------------------

def daemon_run(stub: pb_grpc.ModelManagerStub, algorithm: str, model: str,
               work: Workload = SPAMBASE_WORK) -> Run:
    """Train -> final WatchJob event, timed; the parts come from the job and its manifest.

    A new model name has no champion, so the quality gate has nothing to compare with and
    the job does exactly the plain work; retraining a name does more (see measure()).
    """
    request = pb.TrainRequest(model=model,
                              dataset=pb.Dataset(path=work.name, target=work.target),
                              algorithm=algorithm, cv_folds=work.folds, seed=SEED)
    load = os.getloadavg()[0]
    wall0, t0 = time.time(), time.perf_counter()
    job = stub.Train(request, timeout=60)
    t_rpc = time.perf_counter()
    final = job
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=600):
        final = event.job
    seconds = time.perf_counter() - t0
    if final.state != pb.JOB_STATE_SUCCEEDED:
        raise RuntimeError(f"daemon job {final.id} ended {pb.JobState.Name(final.state)}: "
                           f"{final.error}")
    manifest = json.loads(stub.GetVersion(
        pb.GetVersionRequest(model=final.model, version=final.version),
        timeout=10).manifest_json)
    return Run(seconds, final.metrics["accuracy"].mean,
               daemon_parts(manifest, final, wall0, t_rpc - t0, seconds), load,
               ((manifest.get("gate") or {}).get("how") or ""))


def daemon_parts(manifest: dict[str, Any], job: pb.Job, wall0: float, rpc: float,
                 total: float) -> dict[str, float]:
    """Splits a daemon run using the job's server-side timestamps and the worker's timings.

    train_rpc: the Train call; to_worker_start: Train accepted -> worker process started;
    worker_*: inside the worker, from its own timings in the manifest (worker_prepare:
    reading and validating the data; worker_save: writing the artifacts and row hashes;
    worker_other: the rest, such as the quality gate; for a single-threaded estimator the
    folds and the final fit run side by side in forked processes, so worker_final_fit is 0
    and its time is inside worker_cv); after_worker: the rest of
    started -> finished (process start-up, result hand-off, publish, loading for serving);
    watch_tail: finished -> this script saw the final event. Client and daemon share one
    machine and one wall clock, so their timestamps compare.
    """
    timings = manifest["timings"]
    worker = timings["total_seconds"]
    created = job.created_at.ToNanoseconds() / 1e9
    started = job.started_at.ToNanoseconds() / 1e9
    finished = job.finished_at.ToNanoseconds() / 1e9
    return {
        "train_rpc": rpc,
        "to_worker_start": started - created,
        "worker_prepare": timings["prepare_seconds"],
        "worker_save": timings["save_seconds"],
        "worker_profile": timings.get("profile_seconds", 0.0),
        "worker_other": worker - timings["cv_seconds"] - timings["final_fit_seconds"]
        - timings["prepare_seconds"] - timings["save_seconds"]
        - timings.get("profile_seconds", 0.0),
        "worker_cv": timings["cv_seconds"],
        "worker_final_fit": timings["final_fit_seconds"],
        "after_worker": finished - started - worker,
        "watch_tail": (wall0 + total) - finished,
    }


# ---- the benchmark -----------------------------------------------------------------------

@dataclass
class Result:
    """One algorithm's runs: daemon and plain alternating, then daemon retrains."""

    daemon: list[Run]
    plain: list[Run]
    retrain: list[Run]


REUSED = "out-of-fold predictions from its own training"
"""What the gate's record (manifest gate.how) says when it reused stored predictions."""
TARGET_RETRAIN = 1.25
"""A retrain on the same data, same recipe, against a first training (gate included): the
gate reuses the champion's stored out-of-fold predictions instead of refitting them."""


def measure(stub: pb_grpc.ModelManagerStub, algorithm: str, csv: Path, out_dir: Path,
            args: argparse.Namespace) -> Result:
    """Warms both sides up, then alternates daemon / plain; then times daemon retrains.

    Each timed daemon run trains a new model name, so no quality gate comparison runs. The
    retrains (one after each first training) train the first of those names again: with the
    default policy the gate then
    compares against the champion in the same folds (from its stored out-of-fold
    predictions, training/oof.py), so they are reported apart and not in the ratio.
    """
    stem = f"bench-{algorithm.replace('_', '-')}"
    for i in range(args.warmup):
        daemon_run(stub, algorithm, f"{stem}-warmup-{i}")
        plain_run(algorithm, csv, out_dir)
    result = Result([], [], [])
    for i in range(max(args.repeats, args.retrains)):
        # A retrain follows each first training, so both run under the same load.
        if i < args.repeats:
            result.daemon.append(daemon_run(stub, algorithm, f"{stem}-{i}"))
            result.plain.append(plain_run(algorithm, csv, out_dir))
        if i < args.retrains:
            result.retrain.append(daemon_run(stub, algorithm, f"{stem}-0"))
        print(f"  {algorithm} round {i + 1}: "
              + (f"daemon {result.daemon[i].seconds:.3f} s, plain {result.plain[i].seconds:.3f} s"
                 f" (load {result.daemon[i].load:.1f})" if i < args.repeats else "")
              + (f", retrain {result.retrain[i].seconds:.3f} s" if i < args.retrains else ""),
              flush=True)
    return result


def report(results: dict[str, Result], repeats: int) -> None:
    print()
    print(f"{'algorithm':<20} {'daemon med':>11} {'daemon min':>11} {'plain med':>10} "
          f"{'plain min':>10} {'ratio med':>10} {'ratio min':>10}  target <= {TARGET_RATIO:.2f}")
    for algorithm, r in results.items():
        d_med, d_min = median([x.seconds for x in r.daemon]), min(x.seconds for x in r.daemon)
        p_med, p_min = median([x.seconds for x in r.plain]), min(x.seconds for x in r.plain)
        ratio = d_med / p_med
        print(f"{algorithm:<20} {d_med:>9.3f} s {d_min:>9.3f} s {p_med:>8.3f} s {p_min:>8.3f} s "
              f"{ratio:>10.3f} {d_min / p_min:>10.3f}  {verdict(ratio <= TARGET_RATIO)}")
    print()
    print("where the time goes (medians over the repeats, ms):")
    for algorithm, r in results.items():
        print(f"  {algorithm} daemon: " + parts_line(r.daemon))
        print(f"  {algorithm} plain:  " + parts_line(r.plain))
    if any(r.retrain for r in results.values()):
        print()
        print("extra, not in the ratio: retraining a model that has an active version (the "
              "default quality gate compares with it):")
        for algorithm, r in results.items():
            if r.retrain:
                again = median([x.seconds for x in r.retrain])
                first = median([x.seconds for x in r.daemon])
                pairs = [a.seconds / f.seconds for a, f in zip(r.retrain, r.daemon, strict=False)]
                print(f"  {algorithm}: retrain / the first training just before it, per round: "
                      + ", ".join(f"{x:.2f}" for x in pairs)
                      + f" (median {median(pairs):.2f})")
                print(f"  {algorithm}: retrain / first training = {again:.3f} / {first:.3f} s "
                      f"(medians of {len(r.retrain)} / {len(r.daemon)}) = {again / first:.2f}x "
                      f"(target <= {TARGET_RETRAIN:.2f}: "
                      f"{verdict(again / first <= TARGET_RETRAIN)}); " + parts_line(r.retrain))
                reused = sum(REUSED in x.gate_how for x in r.retrain)
                print(f"    gate reused the champion's stored out-of-fold predictions in "
                      f"{reused} of {len(r.retrain)} retrains; record: {r.retrain[-1].gate_how!r}")
    print()
    print(f"CV accuracy (mean of {FOLDS} folds), daemon vs plain:")
    for algorithm, r in results.items():
        d, p = r.daemon[-1].accuracy, r.plain[-1].accuracy
        same = "equal" if abs(d - p) < 1e-12 else f"DIFFER by {abs(d - p):.2e}"
        print(f"  {algorithm}: {d:.4f} vs {p:.4f} ({same})")
    print()
    print("README lines:")
    for algorithm, r in results.items():
        d_med = median([x.seconds for x in r.daemon])
        p_med = median([x.seconds for x in r.plain])
        print(f"- `{algorithm}` on spambase, {FOLDS}-fold CV + final fit: daemon {d_med:.2f} s, "
              f"plain libraries {p_med:.2f} s (medians of {repeats}), ratio {d_med / p_med:.2f} "
              f"(target <= {TARGET_RATIO:.2f})")


def parts_line(runs: list[Run]) -> str:
    names = list(runs[0].parts)
    return ", ".join(f"{name} {1000 * median([r.parts[name] for r in runs]):.1f}"
                     for name in names)


# ---- the row-count sweep -----------------------------------------------------------------

SWEEP_SINGLE_FROM = 1_000_000
"""From this many rows each size is timed once per side (a 2M-row XGBoost job takes minutes
on 2 busy CPUs)."""


def write_synthetic(path: Path, rows: int, columns: int) -> None:
    """Binary classification data: `columns` standard-normal features, a label from a
    noisy linear score with one interaction, written at full float precision (500k x 20
    is about 197 MB, the size the issue measured)."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((rows, columns))
    score = x @ (0.5 * rng.standard_normal(columns)) + 0.3 * np.sin(3 * x[:, 0]) * x[:, 1]
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(columns)])
    frame[SYNTH_TARGET] = (score + rng.logistic(size=rows) > 0).astype(np.int64)
    frame.to_csv(path, index=False)


@dataclass
class SweepPoint:
    rows: int
    megabytes: float
    daemon: list[Run]
    plain: list[Run]
    other: list[Run] = field(default_factory=list)
    """--compare-tree: the daemon of the other source tree, interleaved with these."""


def sweep(stub: pb_grpc.ModelManagerStub, base: Path, out_dir: Path,
          args: argparse.Namespace, other: Any = None) -> list[SweepPoint]:
    """Each size: write the CSV (untimed), then daemon / plain alternating, XGBoost; with
    `other` (a daemon of --compare-tree, whose data root holds a hard link of the same
    CSV) that daemon too, in an order that changes from one repeat to the next."""
    points = []
    for rows in args.sweep:
        work = Workload(f"synthetic-{rows}.csv", SYNTH_TARGET, args.folds)
        csv = base / "data" / work.name
        write_synthetic(csv, rows, args.columns)
        if other is not None:
            (other.data_root / work.name).unlink(missing_ok=True)
            os.link(csv, other.data_root / work.name)
        repeats = 1 if rows >= SWEEP_SINGLE_FROM else args.repeats
        point = SweepPoint(rows, csv.stat().st_size / 1e6, [], [])
        sides = ["daemon", "other", "plain"] if other is not None else ["daemon", "plain"]
        for i in range(repeats):
            for side in sides[i % len(sides):] + sides[:i % len(sides)]:
                if side == "plain":
                    point.plain.append(plain_run("xgboost", csv, out_dir, work))
                else:
                    runs, on = (point.daemon, stub) if side == "daemon" else (point.other,
                                                                              other.stub)
                    runs.append(daemon_run(on, "xgboost", f"sweep-{rows}-{i}", work))
            d, pl = point.daemon[-1], point.plain[-1]
            print(f"  {rows} rows run {i + 1}/{repeats}: daemon {d.seconds:.2f} s (load "
                  f"{d.load:.1f}), plain {pl.seconds:.2f} s (load {pl.load:.1f}), ratio "
                  f"{d.seconds / pl.seconds:.2f}"
                  + (f"; other tree {point.other[-1].seconds:.2f} s (load "
                     f"{point.other[-1].load:.1f}), ratio "
                     f"{point.other[-1].seconds / pl.seconds:.2f}" if point.other else ""),
                  flush=True)
        csv.unlink()
        if other is not None:
            (other.data_root / work.name).unlink()
        points.append(point)
    return points


def sweep_report(points: list[SweepPoint], args: argparse.Namespace) -> None:
    print()
    print(f"xgboost, {args.columns} numeric columns, {args.folds}-fold stratified CV + final "
          f"fit; medians (load: 1-minute load average before each run, min-max)")
    print(f"{'rows':>9} {'CSV MB':>7} {'daemon s':>9} {'load':>9} {'plain s':>8} {'load':>9} "
          f"{'ratio':>6}  {'prepare':>7} {'cv':>6} {'final':>6} {'profile':>7} {'save':>5} "
          f"{'other':>5} | {'p.read':>6} {'p.cv':>6} {'p.final':>7}  target <= {TARGET_RATIO:.2f}")
    for p in points:
        sweep_row(p, p.daemon, "")
        if p.other:
            sweep_row(p, p.other, f"  ^ the same size, {args.compare_tree}:")
    for p in points:
        d, pl = p.daemon[-1].accuracy, p.plain[-1].accuracy
        if abs(d - pl) >= 1e-12:
            print(f"  {p.rows} rows: CV accuracy DIFFERS, daemon {d!r} vs plain {pl!r}")


def sweep_row(p: SweepPoint, runs: list[Run], title: str) -> None:
    """One size's line of the sweep table for `runs` (this tree's daemon, or the other's)."""
    d_med = median([x.seconds for x in runs])
    p_med = median([x.seconds for x in p.plain])
    ratio = d_med / p_med

    def part(of: list[Run], name: str) -> float:
        return median([x.parts[name] for x in of])

    other = d_med - sum(part(runs, n) for n in (
        "worker_prepare", "worker_cv", "worker_final_fit", "worker_profile", "worker_save"))
    if title:
        print(title)
    print(f"{p.rows:>9} {p.megabytes:>7.0f} {d_med:>9.2f} {load_range(runs):>9} "
          f"{p_med:>8.2f} {load_range(p.plain):>9} {ratio:>6.2f}  "
          f"{part(runs, 'worker_prepare'):>7.2f} {part(runs, 'worker_cv'):>6.2f} "
          f"{part(runs, 'worker_final_fit'):>6.2f} "
          f"{part(runs, 'worker_profile'):>7.2f} {part(runs, 'worker_save'):>5.2f} "
          f"{other:>5.2f} | {part(p.plain, 'read'):>6.2f} {part(p.plain, 'cv'):>6.2f} "
          f"{part(p.plain, 'final_fit'):>7.2f}  {verdict(ratio <= TARGET_RATIO)}")


def load_range(runs: list[Run]) -> str:
    loads = [x.load for x in runs]
    return f"{min(loads):.1f}" if len(loads) == 1 else f"{min(loads):.1f}-{max(loads):.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Daemon Train vs the plain libraries on spambase.")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed runs per side before timing (default 1)")
    parser.add_argument("--retrains", type=int, default=3,
                        help="extra daemon retrains of an existing model, 0 skips (default 3)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to let the daemon's background warm-up finish (default 3)")
    parser.add_argument("--algorithms", nargs="+", choices=sorted(ALGORITHMS),
                        default=list(ALGORITHMS), help="which algorithms (default: both)")
    parser.add_argument("--sweep", type=int, nargs="+", metavar="ROWS", default=[],
                        help="instead of spambase: synthetic data of these row counts, xgboost")
    parser.add_argument("--columns", type=int, default=20,
                        help="--sweep: numeric feature columns (default 20)")
    parser.add_argument("--folds", type=int, default=3, help="--sweep: CV folds (default 3)")
    parser.add_argument("--compare-tree", metavar="DIR", default="",
                        help="--sweep: also time a daemon run from this source tree (its "
                             "server/ and client/ first on PYTHONPATH), interleaved")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (daemon log, registry) and print it")
    args = parser.parse_args(argv)
    if not (1 <= args.repeats <= 100 and 0 <= args.warmup <= 10 and 0 <= args.retrains <= 100):
        parser.error("--repeats must be 1..100, --warmup 0..10 and --retrains 0..100")
    if args.sweep and not (all(100 <= r <= 10_000_000 for r in args.sweep)
                           and 1 <= args.columns <= 1000 and 2 <= args.folds <= 20):
        parser.error("--sweep rows must be 100..10000000, --columns 1..1000, --folds 2..20")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sweep:
        return main_sweep(args)
    print(f"modeld train overhead: spambase, {FOLDS}-fold stratified CV (seed {SEED}) + final fit;"
          f" {args.repeats} timed runs per side, alternating, after {args.warmup} warm-up")
    with bench_daemon(args) as (base, out_dir, daemon):
        results = {}
        for algorithm in args.algorithms:
            results[algorithm] = measure(daemon.stub, algorithm,
                                         base / "data" / "spambase.csv", out_dir, args)
    print(f"after: {load_note()}")
    report(results, args.repeats)
    return 0


@contextlib.contextmanager
def bench_daemon(args: argparse.Namespace) -> Iterator[tuple[Path, Path, Any]]:
    """Prints the machine and the load, then yields a scratch folder (spambase in its data
    root), the plain side's output folder and a running daemon, settled."""
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, xgboost "
          f"{xgboost.__version__}, scikit-learn {sklearn.__version__}, pandas {pd.__version__}")
    print(f"before: {load_note()}", flush=True)
    with scratch_folder("modeld-bench-train-", args.keep) as base:
        (base / "data").mkdir()
        shutil.copy(SPAMBASE, base / "data" / "spambase.csv")
        out_dir = base / "plain"
        out_dir.mkdir()
        with running_daemon(base) as daemon:
            time.sleep(args.settle)
            yield base, out_dir, daemon


@contextlib.contextmanager
def other_daemon(args: argparse.Namespace, base: Path) -> Iterator[Any]:
    """With --compare-tree: a second daemon, started from that tree (PYTHONPATH, which the
    forkserver and its workers inherit), in folders of its own under `base`, spambase in
    its data root; else None."""
    if not args.compare_tree:
        yield None
        return
    tree = Path(args.compare_tree).resolve()
    folder = base / "other"
    (folder / "data").mkdir(parents=True)
    shutil.copy(SPAMBASE, folder / "data" / "spambase.csv")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(tree / "server"), str(tree / "client")] + ([saved] if saved else []))
    try:
        starting = running_daemon(folder)
        other = starting.__enter__()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        time.sleep(args.settle)
        yield other
    finally:
        starting.__exit__(None, None, None)


def main_sweep(args: argparse.Namespace) -> int:
    print(f"modeld train overhead sweep: {args.sweep} rows x {args.columns} columns, xgboost, "
          f"{args.folds}-fold CV + final fit; {args.repeats} run(s) per side below "
          f"{SWEEP_SINGLE_FROM} rows, 1 from there, alternating, after {args.warmup} warm-up "
          "on spambase")
    with bench_daemon(args) as (base, out_dir, daemon), other_daemon(args, base) as other:
        for i in range(args.warmup):
            daemon_run(daemon.stub, "xgboost", f"sweep-warmup-{i}")
            if other is not None:
                daemon_run(other.stub, "xgboost", f"sweep-warmup-{i}")
        points = sweep(daemon.stub, base, out_dir, args, other)
    print(f"after: {load_note()}")
    sweep_report(points, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
