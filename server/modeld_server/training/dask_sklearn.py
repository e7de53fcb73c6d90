"""TrainRequest.engine=dask for the scikit-learn algorithms: each fit is a Dask task.

None of them trains distributed: a fit needs all its rows in one process. So one Dask
worker reads and validates the dataset exactly as the local engine does (prepare.py, on
the cluster, from the shared data path), the prepared data is copied to every worker,
and each cross-validation fold and the final fit is a task (client.submit) that fits
there and sends back only what is small: the fold's held-out predictions and scores, or
the fitted pipeline. The folds are the local engine's (evaluate.splitter), so the
metrics equal the local engine's on the same data.

The job's worker process (which connects the client) never holds the dataset. A dataset
whose in-memory size would not leave a worker room for a fit's copies is refused with
FailedPrecondition naming the algorithms that train distributed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeld_server import artifacts
from modeld_server.errors import FailedPrecondition, quoted
from modeld_server.training import dask_gate
from modeld_server.training import metrics as metric_fns
from modeld_server.training.cluster import DISTRIBUTED
from modeld_server.training.dask_read import GZIP_RATIO
from modeld_server.training.datasets import DatasetFiles, is_parquet
from modeld_server.types import Task, TrainSpec

Report = Callable[[str, float, str, dict[str, Any]], None]


COPIES_PER_FIT = 3
"""A fit holds the prepared matrix, its preprocessed copy and the estimator's own copy."""



@dataclass(frozen=True, kw_only=True)
class FoldOutcome:
    """One fold's answer from the worker: small, whatever the dataset's size."""

    index: int
    test_idx: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None
    scores: dict[str, float]
    worker: str
    y_true: np.ndarray | None = None
    permutation: dict[str, Any] | None = None


def memory_bytes(files: list[Path]) -> int:
    """The dataset's approximate size once read: Parquet row groups' uncompressed sizes
    (from the footers), a CSV file's size, a gzipped one's times GZIP_RATIO."""
    total = 0
    for path in files:
        if is_parquet(path):
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        else:
            size = path.stat().st_size
            total += size * GZIP_RATIO if path.name.lower().endswith(".gz") else size
    return total


def check_fits_a_worker(algorithm: str, shown: str, size: int, limits: list[int]) -> None:
    """Refuses a dataset that one worker cannot hold COPIES_PER_FIT times.

    Args:
        size: memory_bytes of the dataset.
        limits: the workers' memory_limit in bytes (0: unlimited).

    Raises:
        FailedPrecondition: naming the dataset's size, the smallest worker's limit, and the
            algorithms that train distributed.
    """
    bounded = [m for m in limits if m]
    if not bounded:
        return
    smallest = min(bounded)
    if size * COPIES_PER_FIT > smallest:
        raise FailedPrecondition(
            f"dataset.path {quoted(shown)} holds about {size} bytes in memory; algorithm "
            f"{quoted(algorithm)} fits in one Dask worker, which needs {COPIES_PER_FIT} times "
            f"that, more than the smallest worker's memory_limit={smallest} bytes: use an "
            f"algorithm that trains distributed ({', '.join(DISTRIBUTED)}), or workers with "
            "more memory")


def train(spec: TrainSpec, data: Path | DatasetFiles, client: Any, report: Report,
          max_rows: int, max_bytes: int) -> dict[str, Any]:
    """Prepares the data on a worker, fits the folds and the final fit as Dask tasks.

    Args:
        data: the dataset's file, or files (resolved under the data root, which the
            workers share).

    Returns:
        The manifest fields of the training, and "fitted": the final artifacts.Fitted.
    """
    from distributed import as_completed

    token = uuid.uuid4().hex[:12]
    workers = client.scheduler_info(n_workers=-1)["workers"]
    limits = [int(w.get("memory_limit") or 0) for w in workers.values()]
    files = [data] if isinstance(data, Path) else data.files
    check_fits_a_worker(spec.algorithm, spec.dataset.path, memory_bytes(files), limits)
    report("loading", 0.05, f"reading {spec.dataset.path} on a Dask worker", {})
    prepared = client.submit(_prepare, spec, data, max_rows, max_bytes,
                             key=f"modeld-prepare-{token}")
    summary = client.submit(_summary, prepared, spec,
                            key=f"modeld-summary-{token}").result()
    report("validating", 0.08, f"{summary['dataset']['rows']} usable rows of "
           f"{summary['validation']['rows_read']}", {})
    # Every worker gets its copy: the folds then run wherever a thread is free.
    client.replicate([prepared])
    k = spec.cv_folds if summary["folds"] else 0
    final = client.submit(_final, prepared, spec, key=f"modeld-final-{token}")
    folds = [client.submit(_fold, prepared, spec, i, key=f"modeld-fold-{i}-{token}")
             for i in range(k)]
    t_cv = time.perf_counter()
    outcomes: dict[int, FoldOutcome] = {}
    metrics: dict[str, Any] = {}
    if k:
        report("cross_validation", 0.1, f"cross validation fold 1/{k} on Dask", metrics)
    for future in as_completed(folds):  # type: ignore[no-untyped-call]
        outcome: FoldOutcome = future.result()
        outcomes[outcome.index] = outcome
        metrics = {name: s.to_json() for name, s in metric_fns.summarize(
            [outcomes[i].scores for i in sorted(outcomes)]).items()}
        if len(outcomes) < k:
            report("cross_validation", 0.1 + 0.75 * len(outcomes) / k,
                   f"cross validation: {len(outcomes)} of {k} folds done on Dask", metrics)
    cv_seconds = time.perf_counter() - t_cv
    report("final_fit", 0.88, f"fitting on all {summary['dataset']['rows']} rows on Dask",
           metrics)
    fitted, final_worker = final.result()
    fit_seconds = time.perf_counter() - t_cv - cv_seconds
    # The held-out predictions (one number or one row of probabilities a row) are small.
    ordered = [outcomes[i] for i in sorted(outcomes)]
    pred, proba = _held_out(ordered)
    # The local engine's reference profile, made where the prepared rows are.
    reference = client.submit(_reference, prepared, spec, final, pred, proba,
                              key=f"modeld-profile-{token}").result()
    anomaly = (client.submit(_anomaly, prepared, final, key=f"modeld-anomaly-{token}").result()
               if spec.task is Task.ANOMALY_DETECTION else None)
    held = None
    if pred is not None and ordered[0].y_true is not None:
        y = np.zeros(len(pred), dtype=np.asarray(ordered[0].y_true).dtype)
        for o in ordered:
            y[o.test_idx] = o.y_true
        held = dask_gate.Held(y, pred, proba)
    return {**summary, "metrics": metrics, "fitted": fitted, "profile": reference,
            "anomaly": anomaly, "oof": (pred, proba),
            "held": held, "prepared": prepared,
            "confusion_matrix": _confusion(spec, summary["classes"], ordered),
            "permutation": next((o.permutation for o in ordered if o.permutation), None),
            "fold_workers": [o.worker for o in ordered], "final_worker": final_worker,
            "workers": sorted(workers),
            "timings": {"cv_seconds": cv_seconds, "final_fit_seconds": fit_seconds}}


def refit(client: Any, prepared: Any, spec: TrainSpec, manifest: Any,
          y: np.ndarray) -> dask_gate.Held:
    """The champion's recipe cross-validated in the challenger's (the local engine's)
    folds, as one task on a worker holding the prepared rows (worker._refit_champion)."""
    pred, proba = client.submit(_refit_champion, prepared, spec, manifest,
                                pure=False).result()
    return dask_gate.Held(y, pred, proba)


def _refit_champion(data: Any, spec: TrainSpec, manifest: Any
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    from modeld_server.training.worker import _refit_champion as local_refit

    result: tuple[np.ndarray, np.ndarray | None] = local_refit(spec, data, manifest, 1)
    return result


def _held_out(outcomes: list[FoldOutcome]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The folds' held-out predictions in row order (evaluate.CVResult's oof arrays)."""
    if not outcomes:
        return None, None
    n = sum(len(o.test_idx) for o in outcomes)
    pred = np.zeros(n)
    first = outcomes[0].proba
    proba = None if first is None else np.zeros((n, np.asarray(first).shape[1]))
    for o in outcomes:
        pred[o.test_idx] = o.pred
        if proba is not None:
            proba[o.test_idx] = o.proba
    return pred, proba


def _confusion(spec: TrainSpec, classes: list[str],
               outcomes: list[FoldOutcome]) -> dict[str, Any] | None:
    if spec.task is not Task.CLASSIFICATION or not outcomes:
        return None
    n = len(classes)
    confusion = np.zeros((n, n), dtype=np.int64)
    for o in outcomes:
        assert o.y_true is not None
        np.add.at(confusion, (o.y_true, o.pred.astype(np.int64)), 1)
    return {"labels": classes, "counts": confusion.ravel().tolist()}


# ---- what runs on the Dask workers ---------------------------------------------------------

def _prepare(spec: TrainSpec, path: Path | DatasetFiles, max_rows: int, max_bytes: int) -> Any:
    """The local engine's prepare, on a worker: the Prepared stays in its memory."""
    from modeld_server.training.prepare import prepare

    return prepare(spec, path, max_rows, max_bytes)


def _splits(spec: TrainSpec, data: Any) -> list[Any]:
    from modeld_server.training.evaluate import splitter

    if spec.task is Task.ANOMALY_DETECTION and data.eval_label is None:
        return []
    split, stratify = splitter(spec, data)
    return list(split.split(data.x, stratify))


def _summary(data: Any, spec: TrainSpec) -> dict[str, Any]:
    """What the job records of the prepared data: no rows but the sample row; and the
    key of its folds, the local engine's (the same folds: a local version's stored
    predictions serve a Dask challenger's gate, and the other way round)."""
    from modeld_server.training.worker import _fold_key

    return {"fold_key": _fold_key(spec, data), "dataset": data.dataset,
            "validation": data.report.to_json(),
            "schema": data.schema.to_json(), "features": data.features,
            "classes": [str(c) for c in data.classes], "sample_row": data.sample_row,
            "folds": data.y is not None or data.eval_label is not None}


def _template(spec: TrainSpec, data: Any) -> Any:
    """The local engine's preprocessor and estimator for this spec (worker._template)."""
    from modeld_server.training.estimators import (
        build_estimator,
        build_preprocessor,
        get_algorithm,
    )
    from modeld_server.training.evaluate import Template

    algorithm = get_algorithm(spec.algorithm, spec.task)
    n = len(data.schema.numeric)
    return Template(
        build_preprocessor(algorithm, list(range(n)), list(range(n, len(data.schema.columns)))),
        build_estimator(algorithm, spec.task, spec.params, spec.seed,
                        data.classes if spec.task is Task.CLASSIFICATION else None))


def _where() -> str:
    from distributed import get_worker

    return f"{get_worker().address} pid {os.getpid()}"


def _reference(data: Any, spec: TrainSpec, final: tuple[artifacts.Fitted, str],
               pred: np.ndarray | None, proba: np.ndarray | None) -> dict[str, Any]:
    """worker._reference_profile on the worker holding the prepared rows."""
    from modeld_server.training.evaluate import CVResult
    from modeld_server.training.worker import _reference_profile

    return _reference_profile(spec, data, CVResult(oof_pred=pred, oof_proba=proba), final[0])


def _anomaly(data: Any, final: tuple[artifacts.Fitted, str]) -> dict[str, Any]:
    """The local engine's facts of a detector (its threshold, the share of training rows
    flagged, the scores' distribution), on the worker holding the prepared rows."""
    from modeld_server.training.worker import _anomaly_facts

    facts: dict[str, Any] = _anomaly_facts(final[0], data.x)["anomaly"]
    return facts


def _final(data: Any, spec: TrainSpec) -> tuple[artifacts.Fitted, str]:
    return _template(spec, data).fit(data.x, data.y), _where()


def _fold(data: Any, spec: TrainSpec, index: int) -> FoldOutcome:
    """Fold `index` of the local engine's splits: fitted on the rest, scored on it."""
    from modeld_server.training.importance import permutation_importance

    train_idx, test_idx = _splits(spec, data)[index]
    fitted = _template(spec, data).fit(data.x[train_idx],
                                       None if data.y is None else data.y[train_idx])
    matrix = fitted.preprocess.transform(data.x[test_idx])
    est = fitted.estimator
    proba = y_true = None
    if spec.task is Task.CLASSIFICATION:
        y_true = data.y[test_idx]
        pred = np.asarray(est.predict(matrix)).astype(np.int64)
        proba = est.predict_proba(matrix)
        scores = metric_fns.classification_metrics(y_true, pred, proba, len(data.classes))
        scores["ece"] = metric_fns.expected_calibration_error(y_true, proba)
    elif spec.task is Task.REGRESSION:
        pred = est.predict(matrix)
        y_true = data.y[test_idx]
        scores = metric_fns.regression_metrics(y_true, pred)
    else:
        pred = -est.score_samples(matrix)
        scores = metric_fns.detection_metrics(data.eval_label[test_idx], pred)
    permutation = None
    if index == 0 and data.y is not None:
        permutation = permutation_importance(spec.task, fitted.preprocess, est, data.schema,
                                             data.x[test_idx], data.y[test_idx], spec.seed)
    return FoldOutcome(index=index, test_idx=test_idx, pred=pred, proba=proba, scores=scores,
                       worker=_where(), y_true=y_true, permutation=permutation)
