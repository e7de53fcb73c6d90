"""Cross-validation with real held-out predictions, and probability calibration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

from modeld_server import artifacts
from modeld_server.training import metrics as metric_fns
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


@dataclass
class CVResult:
    metrics: dict[str, Any] = field(default_factory=dict)
    confusion_matrix: dict[str, Any] | None = None
    oof_pred: np.ndarray | None = None
    oof_proba: np.ndarray | None = None


def splitter(spec: TrainSpec, data: Prepared) -> tuple[Any, np.ndarray | None]:
    stratify = data.y if spec.task is Task.CLASSIFICATION else data.eval_label
    cls = StratifiedKFold if stratify is not None else KFold
    return cls(n_splits=spec.cv_folds, shuffle=True, random_state=spec.seed), stratify


def cross_validate(spec: TrainSpec, template: Template, data: Prepared,
                   progress: Any) -> CVResult:
    """Fits on k-1 folds, predicts the held-out fold, k times; metrics come from those predictions.

    Args:
        progress: called as progress(fold_index, partial_metrics_json).
    """
    task, n = spec.task, len(data.x)
    if task is Task.ANOMALY_DETECTION and data.eval_label is None:
        return CVResult()
    split, stratify = splitter(spec, data)
    k = len(data.classes)
    result = CVResult(oof_pred=np.zeros(n), oof_proba=np.zeros((n, k)) if k else None)
    confusion = np.zeros((k, k), dtype=np.int64)
    per_fold: list[dict[str, float]] = []
    for i, (train_idx, test_idx) in enumerate(split.split(data.x, stratify)):
        progress(i, result.metrics)
        y_train = None if data.y is None else data.y[train_idx]
        fitted = template.fit(data.x[train_idx], y_train)
        matrix = fitted.preprocess.transform(data.x[test_idx])
        per_fold.append(_fold(task, fitted.estimator, matrix, data, test_idx, confusion, result))
        result.metrics = {name: s.to_json()
                          for name, s in metric_fns.summarize(per_fold).items()}
    if task is Task.CLASSIFICATION:
        result.confusion_matrix = {"labels": [str(c) for c in data.classes],
                                   "counts": confusion.ravel().tolist()}
    return result


def _fold(task: Task, est: Any, matrix: np.ndarray, data: Prepared, test_idx: np.ndarray,
          confusion: np.ndarray, result: CVResult) -> dict[str, float]:
    assert result.oof_pred is not None
    if task is Task.CLASSIFICATION:
        assert data.y is not None and result.oof_proba is not None
        y_true = data.y[test_idx]
        y_pred = np.asarray(est.predict(matrix)).astype(np.int64)
        proba = est.predict_proba(matrix)
        np.add.at(confusion, (y_true, y_pred), 1)
        result.oof_pred[test_idx] = y_pred
        result.oof_proba[test_idx] = proba
        scores = metric_fns.classification_metrics(y_true, y_pred, proba, len(data.classes))
        scores["ece"] = metric_fns.expected_calibration_error(y_true, proba)
        return scores
    if task is Task.REGRESSION:
        assert data.y is not None
        pred = est.predict(matrix)
        result.oof_pred[test_idx] = pred
        return metric_fns.regression_metrics(data.y[test_idx], pred)
    assert data.eval_label is not None
    scores = -est.score_samples(matrix)
    result.oof_pred[test_idx] = scores
    return metric_fns.detection_metrics(data.eval_label[test_idx], scores)


def calibrate(spec: TrainSpec, template: Template, data: Prepared, base: CVResult,
              progress: Any) -> tuple[Template, CVResult, dict[str, Any]]:
    """Cross-validates calibrated variants; returns the chosen template, its CV and a report.

    The report holds Brier score and ECE before (the uncalibrated model's held-out
    predictions) and after, and for `auto` each candidate's Brier score.
    """
    methods = CALIBRATION_METHODS if spec.calibration == "auto" else (spec.calibration,)
    candidates = {m: cross_validate(spec, template.with_calibration(m), data, progress)
                  for m in methods}
    chosen = min(candidates, key=lambda m: candidates[m].metrics["brier"]["mean"])
    after = candidates[chosen]
    report = {
        "method": chosen,
        "requested": spec.calibration,
        "before": {"brier": base.metrics["brier"]["mean"], "ece": base.metrics["ece"]["mean"]},
        "after": {"brier": after.metrics["brier"]["mean"], "ece": after.metrics["ece"]["mean"]},
        "candidates": {m: {"brier": r.metrics["brier"]["mean"], "ece": r.metrics["ece"]["mean"]}
                       for m, r in candidates.items()},
    }
    return template.with_calibration(chosen), after, report
