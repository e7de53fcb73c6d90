"""Cross-validation with real held-out predictions, and probability calibration."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from modeld_server import artifacts, fastpaths
from modeld_server.training import metrics as metric_fns
from modeld_server.training.importance import permutation_importance
from modeld_server.training.parallel import SideWork, fork_map
from modeld_server.training.prepare import Prepared
from modeld_server.types import Task, TrainSpec

CALIBRATION_METHODS = ("sigmoid", "isotonic")


class Template:
    """Builds fresh, unfitted preprocessor + estimator pairs for each fold and the final fit."""

    def __init__(self, preprocess: Any, estimator: Any, calibration: str = "none") -> None:
        self.preprocess = preprocess
        self.estimator = estimator
        self.calibration = calibration

    def with_calibration(self, method: str) -> Template:
        return Template(self.preprocess, self.estimator, method)

    def fit(self, x: np.ndarray, y: np.ndarray | None) -> artifacts.Fitted:
        from sklearn.calibration import CalibratedClassifierCV

        preprocess, estimator = clone(self.preprocess), clone(self.estimator)
        if self.calibration in CALIBRATION_METHODS:
            estimator = CalibratedClassifierCV(estimator, method=self.calibration, cv=3)
        estimator.fit(preprocess.fit_transform(x), y)
        return artifacts.Fitted(preprocess, estimator)


@dataclass(kw_only=True)
class CVResult:
    metrics: dict[str, Any] = field(default_factory=dict)
    confusion_matrix: dict[str, Any] | None = None
    oof_pred: np.ndarray | None = None
    oof_proba: np.ndarray | None = None
    final: artifacts.Fitted | None = None
    """The fit on all rows, when it was asked for alongside the folds."""
    final_seconds: float = 0.0
    processes: int = 1
    """Processes the fits ran in (1: this one)."""
    permutation: dict[str, Any] | None = None
    """Permutation importance on the first fold's held-out rows (training/importance.py)."""


@dataclass(frozen=True)
class _FoldOutcome:
    """What one fold sends back (from a forked child, pickled): predictions and scores."""

    pred: np.ndarray
    proba: np.ndarray | None
    scores: dict[str, float]
    permutation: dict[str, Any] | None = None


_FINAL = None
"""The work item that stands for the fit on all rows."""


def splitter(spec: TrainSpec, data: Prepared) -> tuple[Any, np.ndarray | None]:
    stratify = data.y if spec.task is Task.CLASSIFICATION else data.eval_label
    cls = StratifiedKFold if stratify is not None else KFold
    return cls(n_splits=spec.cv_folds, shuffle=True, random_state=spec.seed), stratify


def cross_validate(spec: TrainSpec, template: Template, data: Prepared, progress: Any,
                   workers: int = 1, fit_final: bool = False,
                   importance: bool = False, side: SideWork[Any] | None = None) -> CVResult:
    """Fits on k-1 folds, predicts the held-out fold, k times; metrics come from those predictions.

    Args:
        progress: called as progress(folds_done, partial_metrics_json).
        workers: processes to fit in at once (see parallel.fork_map); 1 fits here, in order.
        fit_final: also fit on all rows, as one more piece of work beside the folds
            (result.final); it goes first, being the longest.
        importance: also compute permutation importance in the first fold
            (result.permutation).
        side: work for a thread while a fold's metrics are computed (parallel.SideWork),
            when the folds run here (one worker); else it is left for side.finish().
    """
    task, n = spec.task, len(data.x)
    k = len(data.classes)
    splits: list[Any] = []
    if task is not Task.ANOMALY_DETECTION or data.eval_label is not None:
        split, stratify = splitter(spec, data)
        splits = list(split.split(data.x, stratify))
    result = CVResult()
    if splits:
        result.oof_pred = np.zeros(n)
        result.oof_proba = np.zeros((n, k)) if k else None
    confusion = np.zeros((k, k), dtype=np.int64)
    per_fold: dict[int, dict[str, float]] = {}
    items: list[Any] = ([_FINAL] if fit_final else []) + splits

    def run(item: Any) -> Any:
        if item is _FINAL:
            started = time.perf_counter()
            return template.fit(data.x, data.y), time.perf_counter() - started
        train_idx, test_idx = item
        fitted = template.fit(data.x[train_idx], None if data.y is None else data.y[train_idx])
        outcome = _fold(task, fitted.estimator, fitted.preprocess.transform(data.x[test_idx]),
                        data, test_idx, here)
        if importance and item is splits[0] and data.y is not None:
            outcome = dataclasses.replace(outcome, permutation=permutation_importance(
                task, fitted.preprocess, fitted.estimator, data.schema, data.x[test_idx],
                data.y[test_idx], spec.seed))
        return outcome

    if splits:
        progress(0, result.metrics)
    result.processes = min(workers, len(items)) if workers > 1 and len(items) > 1 else 1
    here = side if result.processes == 1 else None  # no thread where fit processes fork
    for index, outcome in fork_map(run, items, workers):
        if items[index] is _FINAL:
            result.final, result.final_seconds = outcome
            continue
        test_idx = items[index][1]
        _merge(outcome, test_idx, data, confusion, result)
        result.permutation = result.permutation or outcome.permutation
        per_fold[index] = outcome.scores
        result.metrics = {name: s.to_json() for name, s in
                          metric_fns.summarize([per_fold[i] for i in sorted(per_fold)]).items()}
        if len(per_fold) < len(splits):
            progress(len(per_fold), result.metrics)
    if task is Task.CLASSIFICATION and splits:
        result.confusion_matrix = {"labels": [str(c) for c in data.classes],
                                   "counts": confusion.ravel().tolist()}
    return result


def _fold(task: Task, est: Any, matrix: np.ndarray, data: Prepared,
          test_idx: np.ndarray, side: SideWork[Any] | None = None) -> _FoldOutcome:
    """One fold's held-out predictions and metrics (with a piece of `side` beside them)."""
    def scored(fn: Any) -> dict[str, float]:
        value: dict[str, float] = side.beside(fn) if side is not None else fn()
        return value

    if task is Task.CLASSIFICATION:
        assert data.y is not None
        y_true = data.y[test_idx]
        proba = est.predict_proba(matrix)  # float32 from XGBoost: metrics as the library's
        y_pred = _classes_from_proba(est, proba)
        if y_pred is None:
            y_pred = np.asarray(est.predict(matrix)).astype(np.int64)
        k = len(data.classes)

        def classification() -> dict[str, float]:
            scores = metric_fns.classification_metrics(y_true, y_pred, proba, k)
            scores["ece"] = metric_fns.expected_calibration_error(y_true, proba)
            return scores

        return _FoldOutcome(y_pred, proba, scored(classification))
    if task is Task.REGRESSION:
        assert data.y is not None
        pred = est.predict(matrix)
        y = data.y[test_idx]
        return _FoldOutcome(pred, None, scored(lambda: metric_fns.regression_metrics(y, pred)))
    assert data.eval_label is not None
    scores = -est.score_samples(matrix)
    flagged = data.eval_label[test_idx]
    return _FoldOutcome(scores, None,
                        scored(lambda: metric_fns.detection_metrics(flagged, scores)))


def _classes_from_proba(est: Any, proba: np.ndarray) -> np.ndarray | None:
    """XGBClassifier.predict's answer from its predict_proba, without predicting twice (a
    fast path, fastpaths.py): with the binary:logistic or multi:softprob objective,
    predict thresholds class 1's probability at > 0.5 (binary) or takes the most probable
    class, from the very probabilities predict_proba returns. None for anything else."""
    from xgboost import XGBClassifier

    if not fastpaths.enabled() or type(est) is not XGBClassifier:
        return None
    objective = est.get_params().get("objective")  # the fit sets the default's name
    answer: np.ndarray | None = None
    if proba.ndim == 2 and proba.shape[1] == 2 and objective == "binary:logistic":
        answer = (proba[:, 1] > 0.5).astype(np.int64)
    elif proba.ndim == 2 and proba.shape[1] > 2 and objective == "multi:softprob":
        answer = np.argmax(proba, axis=1).astype(np.int64)
    return answer


def _merge(outcome: _FoldOutcome, test_idx: np.ndarray, data: Prepared, confusion: np.ndarray,
           result: CVResult) -> None:
    """Puts one fold's held-out predictions in place, in the out-of-fold arrays."""
    assert result.oof_pred is not None
    result.oof_pred[test_idx] = outcome.pred
    if outcome.proba is not None:
        assert result.oof_proba is not None and data.y is not None
        result.oof_proba[test_idx] = outcome.proba
        np.add.at(confusion, (data.y[test_idx], outcome.pred.astype(np.int64)), 1)


def calibrate(spec: TrainSpec, template: Template, data: Prepared, base: CVResult,
              progress: Any, workers: int = 1) -> tuple[Template, CVResult, dict[str, Any]]:
    """Cross-validates calibrated variants; returns the chosen template, its CV and a report.

    The uncalibrated model is a candidate too, scored from the held-out predictions `base`
    already holds (nothing is refitted for it). `auto` ships a calibrator only when its
    cross-validated Brier score is below the uncalibrated one's: isotonic regression can
    overfit a model that is calibrated already, and a tie keeps the simpler model.

    Returns:
        The template to deploy, its cross-validation, and the report: the method chosen
        (auto may choose "none"), Brier score and ECE before and after, every candidate's,
        and the runner-up with the Brier margin the chosen method won by (negative when an
        explicitly requested method is not the best).
    """
    methods = CALIBRATION_METHODS if spec.calibration == "auto" else (spec.calibration,)
    candidates = {"none": base}
    candidates.update({m: cross_validate(spec, template.with_calibration(m), data, progress,
                                         workers) for m in methods})
    scores = {m: {"brier": r.metrics["brier"]["mean"], "ece": r.metrics["ece"]["mean"]}
              for m, r in candidates.items()}
    chosen = spec.calibration
    if chosen == "auto":  # min keeps the first of equals: "none" on a tie
        chosen = min(scores, key=lambda m: scores[m]["brier"])
    runner_up = min((m for m in scores if m != chosen), key=lambda m: scores[m]["brier"])
    report = {
        "method": chosen,
        "requested": spec.calibration,
        "before": scores["none"],
        "after": scores[chosen],
        "candidates": scores,
        "runner_up": runner_up,
        "won_by": scores[runner_up]["brier"] - scores[chosen]["brier"],
    }
    return template.with_calibration(chosen), candidates[chosen], report
