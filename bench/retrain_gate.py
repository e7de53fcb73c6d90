"""What a retrain's quality gate costs: the champion scored from its stored out-of-fold
predictions against its recipe refitted in the same folds, beside a first training.

In-process, through the worker's own functions (no daemon): the first training of the
champion (worker.train, 5 folds, seed 42: cross-validation, final fit, artifacts, stored
predictions), then, on the same data and folds, the gate's comparison both ways,
alternating. A retrain costs about a first training plus its gate's comparison, so the
printed ratios (first + gate) / first estimate retrain / first training for each path.

Run:  .venv/bin/python bench/retrain_gate.py [--algorithms xgboost] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import SPAMBASE, load_note, median

from modeld_server.registry.manifest import Manifest
from modeld_server.training import worker
from modeld_server.training.estimators import get_algorithm
from modeld_server.training.evaluate import cross_validate
from modeld_server.training.prepare import prepare
from modeld_server.types import DatasetSpec, Task, TrainSpec


def run(algorithm: str, root: Path, repeats: int) -> None:
    spec = TrainSpec(model="spam", dataset=DatasetSpec(SPAMBASE.name, target="is_spam"),
                     algorithm=algorithm, task=Task.CLASSIFICATION, cv_folds=5, seed=42)
    folder = root / algorithm
    folder.mkdir()
    started = time.perf_counter()
    fields = worker.train(spec, root, folder, lambda *a: None)
    first = time.perf_counter() - started
    data = prepare(spec, root / SPAMBASE.name, 10_000_000, 0)
    cv = cross_validate(spec, worker._template(spec, get_algorithm(algorithm, spec.task), data),
                        data, lambda *a: None)
    manifest = Manifest.from_json(fields | {"version": 1})
    legacy = Manifest.from_json({k: v for k, v in fields.items() if k != "oof"} | {"version": 1})
    times: dict[str, list[float]] = {"stored": [], "refitted": []}
    decisions = set()
    for _ in range(repeats):
        for how, champion in (("stored", manifest), ("refitted", legacy)):
            t = time.perf_counter()
            comparison = worker._compare(spec, data, cv, folder, champion, cpus=0)
            times[how].append(time.perf_counter() - t)
            assert comparison is not None and comparison.champion is not None
            decisions.add(tuple(sorted(comparison.champion.items())))
    print(f"{algorithm}: first training {first:.2f} s ({load_note()})")
    for how, values in times.items():
        gate = median(values)
        print(f"  gate from {how} predictions: {gate:.3f} s (median of {len(values)}); "
              f"retrain / first about {(first + gate) / first:.2f}")
    print(f"  champion metrics identical both ways: {len(decisions) == 1}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", nargs="+", default=["logistic_regression", "xgboost"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"retrain_gate.py; {load_note()}")
    root = Path(tempfile.mkdtemp(prefix="modeld-retrain-gate-"))
    try:
        shutil.copy(SPAMBASE, root / SPAMBASE.name)
        for algorithm in args.algorithms:
            run(algorithm, root, args.repeats)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
