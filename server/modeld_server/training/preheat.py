"""Importing this module runs one tiny training job, so every forked worker starts warm.

The training forkserver preloads it after the worker module. A job forked from a
cold server paid about 120 ms on its first `worker.train`: lazy imports inside
scikit-learn and pandas, the first `read_csv`, the first metrics. Paying them once
here, in the server, makes each job's process start with them done.

Only code that is safe to fork after is run: pandas, NumPy/BLAS, scikit-learn's
logistic regression and metrics, joblib. Nothing that starts an OpenMP thread pool
(XGBoost, HistGradientBoosting): GNU libgomp does not survive a fork once its
threads exist, so those stay cold until a job uses them.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from modeld_server.training import parallel, worker
from modeld_server.types import DatasetSpec, Task, TrainSpec


def _rows(n: int = 80) -> pd.DataFrame:
    """A small, learnable classification table with a numeric, a text and a missing value."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["colour"] = np.where(x[:, 0] > 0, "red", "blue")
    frame.loc[0, "b"] = np.nan
    frame["label"] = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    return frame


def preheat() -> None:
    """Trains logistic regression on `_rows` with two folds, through the real worker code."""
    with tempfile.TemporaryDirectory(prefix="modeld-preheat-") as tmp:
        root = Path(tmp)
        _rows().to_csv(root / "rows.csv", index=False)
        (root / "staging").mkdir()
        spec = TrainSpec(model="preheat", dataset=DatasetSpec("rows.csv", target="label"),
                         algorithm="logistic_regression", task=Task.CLASSIFICATION, cv_folds=2)
        # One process: a pool forked here would leave threads in the forkserver.
        worker.train(spec, root, root / "staging", lambda *args: None, cpus=1)


# A failed preheat only means colder jobs; the job that hits the same fault reports it.
with contextlib.suppress(Exception):
    preheat()
    parallel.blas_controller()
