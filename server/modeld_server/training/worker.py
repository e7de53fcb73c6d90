"""Runs one training job inside a worker process.

The daemon forks workers from a forkserver that preloads this module, so the
heavy libraries below are imported once, before any job, and each job starts
warm. Everything a job does with data happens here, never in the daemon.
"""

from __future__ import annotations

import platform
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import xgboost
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from modeld_server import artifacts
from modeld_server.errors import InvalidArgument, ModeldError, ResourceExhausted
from modeld_server.features import FeatureSchema
from modeld_server.registry.fsio import sha256_file
from modeld_server.training import metrics as metric_fns
from modeld_server.training.datasets import load_frame, resolve_dataset
from modeld_server.training.estimators import build_estimator, build_preprocessor, get_algorithm
from modeld_server.types import Task, TrainSpec

Report = Callable[[str, float, str, dict[str, Any]], None]
"""report(phase, progress 0..1, message, partial metrics as JSON)."""


def run(spec_json: dict[str, Any], data_root: str, staging: str, conn: Any,
        max_rows: int = 10_000_000) -> None:
    """Process entry point: trains, saves into `staging`, and sends the outcome on `conn`."""
    def report(phase: str, progress: float, message: str, partial: dict[str, Any]) -> None:
        conn.send(("progress", phase, progress, message, partial))

    try:
        outcome: tuple[Any, ...] = (
            "result", train(TrainSpec.from_json(spec_json), Path(data_root), Path(staging), report,
                            max_rows))
    except (BrokenPipeError, ConnectionResetError):
        return  # the daemon is gone or cancelled us: nobody to tell
    except ModeldError as exc:
        outcome = ("error", type(exc).__name__, exc.message)
    except MemoryError:
        outcome = ("error", "ResourceExhausted", "training ran out of memory")
    except Exception as exc:  # any library failure fails this job, with its reason
        outcome = ("error", "Internal", "".join(traceback.format_exception_only(exc)).strip())
    try:
        conn.send(outcome)
        conn.close()
    except OSError:
        pass  # the daemon went away first


def train(spec: TrainSpec, data_root: Path, staging: Path, report: Report,
          max_rows: int = 10_000_000) -> dict[str, Any]:
    """Loads the dataset, cross-validates, fits on all rows and saves the artifacts.

    Returns:
        The manifest fields the training produced (metrics, schema, dataset facts...).
    """
    started = time.perf_counter()
    report("loading", 0.02, f"reading {spec.dataset.path}", {})
    path = resolve_dataset(data_root, spec.dataset.path)
    frame = load_frame(path, spec.dataset.path)
    if len(frame) > max_rows:
        raise ResourceExhausted(f"dataset {spec.dataset.path!r} has {len(frame)} rows, more than "
                                f"max_dataset_rows={max_rows}")
    dataset = {"path": spec.dataset.path, "sha256": sha256_file(path),
               "rows_read": len(frame), "columns": list(frame.columns)}
    report("validating", 0.08, f"{len(frame)} rows, {len(frame.columns)} columns", {})
    data = _prepare(spec, frame, dataset)
    algorithm = get_algorithm(spec.algorithm, spec.task)
    template = _Template(algorithm, spec, data.schema)

    t_cv = time.perf_counter()
    cv = _cross_validate(spec, template, data, report)
    cv_seconds = time.perf_counter() - t_cv

    report("final_fit", 0.88, f"fitting on all {len(data.x)} rows", cv["partial"])
    t_fit = time.perf_counter()
    fitted = template.fit(data.x, data.y)
    fit_seconds = time.perf_counter() - t_fit
    extra = _anomaly_facts(fitted, data.x) if spec.task is Task.ANOMALY_DETECTION else {}

    report("saving", 0.96, "writing artifacts", cv["partial"])
    fmt = artifacts.save(fitted, staging)
    return {
        "algorithm": spec.algorithm,
        "task": spec.task.value,
        "params": dict(spec.params),
        "cv_folds": spec.cv_folds,
        "seed": spec.seed,
        "format": fmt,
        "dataset": dataset,
        "schema": data.schema.to_json(),
        "features": data.features,
        "classes": data.classes,
        "sample_row": data.sample_row,
        "metrics": cv["metrics"],
        "confusion_matrix": cv.get("confusion_matrix"),
        **extra,
        "timings": {"cv_seconds": cv_seconds, "final_fit_seconds": fit_seconds,
                    "total_seconds": time.perf_counter() - started},
        "libraries": _library_versions(),
    }


class _Prepared:
    def __init__(self, schema: FeatureSchema, features: list[str], x: np.ndarray,
                 y: np.ndarray | None, classes: list[Any], sample_row: dict[str, Any]) -> None:
        self.schema, self.features, self.x, self.y = schema, features, x, y
        self.classes, self.sample_row = classes, sample_row
        self.eval_label: np.ndarray | None = None


def _prepare(spec: TrainSpec, frame: pd.DataFrame, dataset: dict[str, Any]) -> _Prepared:
    target, eval_label = spec.dataset.target, spec.dataset.eval_label
    for field, column in (("dataset.target", target), ("dataset.eval_label", eval_label)):
        if column and column not in frame.columns:
            raise InvalidArgument(
                f"{field} {column!r} is not a column of {spec.dataset.path!r} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
    if target:
        missing = frame[target].isna()
        dataset["rows_dropped_missing_target"] = int(missing.sum())
        frame = frame.loc[~missing].reset_index(drop=True)
    if len(frame) < spec.cv_folds:
        raise InvalidArgument(f"{spec.dataset.path!r} has {len(frame)} rows, fewer than "
                              f"cv_folds={spec.cv_folds}")
    features = [str(c) for c in frame.columns if c not in (target, eval_label)]
    if not features:
        raise InvalidArgument(f"{spec.dataset.path!r} has no feature columns")
    schema = FeatureSchema.infer(frame, features, target or eval_label)
    x = schema.matrix_from_frame(frame)
    sample = {name: _json_value(frame[name].iloc[0]) for name in features}
    y, classes = None, []
    if spec.task is Task.CLASSIFICATION:
        labels, y = np.unique(frame[target].to_numpy(), return_inverse=True)
        classes = [_json_value(v) for v in labels]
        _check_classes(spec, classes, np.bincount(y))
    elif spec.task is Task.REGRESSION:
        y = pd.to_numeric(frame[target], errors="raise").to_numpy(dtype=np.float64)
    dataset["rows"] = len(frame)
    prepared = _Prepared(schema, features, x, y, classes, sample)
    if eval_label:
        prepared.eval_label = frame[eval_label].astype(bool).to_numpy()
    return prepared


def _check_classes(spec: TrainSpec, classes: list[Any], counts: np.ndarray) -> None:
    if len(classes) < 2:
        raise InvalidArgument(
            f"dataset.target {spec.dataset.target!r} has a single class {classes!r}: "
            "classification needs at least two"
        )
    smallest = int(counts.min())
    if smallest < spec.cv_folds:
        label = classes[int(counts.argmin())]
        raise InvalidArgument(f"class {label!r} has {smallest} rows, fewer than "
                              f"cv_folds={spec.cv_folds}")


class _Template:
    """Builds fresh, unfitted preprocessor + estimator pairs for each fold and the final fit."""

    def __init__(self, algorithm: Any, spec: TrainSpec, schema: FeatureSchema) -> None:
        n = len(schema.numeric)
        numeric, categorical = list(range(n)), list(range(n, len(schema.columns)))
        self.preprocess = build_preprocessor(algorithm, numeric, categorical)
        self.estimator = build_estimator(algorithm, spec.task, spec.params, spec.seed)

    def fit(self, x: np.ndarray, y: np.ndarray | None) -> artifacts.Fitted:
        preprocess, estimator = clone(self.preprocess), clone(self.estimator)
        matrix = preprocess.fit_transform(x)
        estimator.fit(matrix, y)
        return artifacts.Fitted(preprocess, estimator)


def _cross_validate(spec: TrainSpec, template: _Template, data: _Prepared,
                    report: Report) -> dict[str, Any]:
    task, k = spec.task, spec.cv_folds
    if task is Task.ANOMALY_DETECTION and data.eval_label is None:
        return {"metrics": {}, "partial": {}}
    stratify = data.y if task is Task.CLASSIFICATION else data.eval_label
    splitter: Any = (StratifiedKFold if stratify is not None else KFold)(
        n_splits=k, shuffle=True, random_state=spec.seed)
    n_classes = len(data.classes)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    per_fold: list[dict[str, float]] = []
    partial: dict[str, Any] = {}
    for i, (train_idx, test_idx) in enumerate(splitter.split(data.x, stratify)):
        report("cross_validation", 0.1 + 0.75 * i / k, f"fold {i + 1}/{k}", partial)
        y_train = None if data.y is None else data.y[train_idx]
        fitted = template.fit(data.x[train_idx], y_train)
        matrix = fitted.preprocess.transform(data.x[test_idx])
        per_fold.append(_fold_metrics(task, fitted, matrix, data, test_idx, n_classes, confusion))
        partial = {name: s.to_json() for name, s in metric_fns.summarize(per_fold).items()}
    out: dict[str, Any] = {"metrics": partial, "partial": partial}
    if task is Task.CLASSIFICATION:
        out["confusion_matrix"] = {"labels": [str(c) for c in data.classes],
                                   "counts": confusion.ravel().tolist()}
    return out


def _fold_metrics(task: Task, fitted: artifacts.Fitted, matrix: np.ndarray, data: _Prepared,
                  test_idx: np.ndarray, n_classes: int, confusion: np.ndarray) -> dict[str, float]:
    est = fitted.estimator
    if task is Task.CLASSIFICATION:
        assert data.y is not None
        y_true = data.y[test_idx]
        y_pred = np.asarray(est.predict(matrix)).astype(np.int64)
        np.add.at(confusion, (y_true, y_pred), 1)
        return metric_fns.classification_metrics(y_true, y_pred, est.predict_proba(matrix),
                                                 n_classes)
    if task is Task.REGRESSION:
        assert data.y is not None
        return metric_fns.regression_metrics(data.y[test_idx], est.predict(matrix))
    assert data.eval_label is not None
    return metric_fns.detection_metrics(data.eval_label[test_idx], -est.score_samples(matrix))


def _anomaly_facts(fitted: artifacts.Fitted, x: np.ndarray) -> dict[str, Any]:
    est = fitted.estimator
    scores = -est.score_samples(fitted.preprocess.transform(x))
    threshold = float(-est.offset_)
    return {"anomaly": {
        "contamination": est.contamination,
        "threshold": threshold,
        "fraction_flagged": float(np.mean(scores > threshold)),
        "score_distribution": metric_fns.score_distribution(scores),
    }}


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
            "xgboost": xgboost.__version__}
