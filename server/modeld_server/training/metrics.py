"""Metrics computed from real predictions on held-out rows, per task."""

from __future__ import annotations

import numpy as np

from modeld_server.types import MetricSummary


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, n_classes: int
) -> dict[str, float]:
    """Metrics of one fold; labels are encoded 0..n_classes-1, proba is (rows, n_classes).

    Binary metrics score class 1 (the second class in sorted order) as positive;
    multiclass ones report macro and weighted averages.
    """
    from sklearn import metrics as m

    labels = np.arange(n_classes)
    out: dict[str, float] = {"accuracy": m.accuracy_score(y_true, y_pred)}
    if n_classes == 2:
        positive = proba[:, 1]
        # One call gives the three values precision_score, recall_score and f1_score would.
        out["precision"], out["recall"], out["f1"], _ = m.precision_recall_fscore_support(
            y_true, y_pred, average="binary", zero_division=0)
        out["roc_auc"] = m.roc_auc_score(y_true, positive)
        out["average_precision"] = m.average_precision_score(y_true, positive)
        out["brier"] = m.brier_score_loss(y_true, positive)
    else:
        for avg in ("macro", "weighted"):
            (out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"],
             _) = m.precision_recall_fscore_support(y_true, y_pred, average=avg, labels=labels,
                                                    zero_division=0)
        out["roc_auc"] = m.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)
        onehot = np.eye(n_classes)[y_true]
        out["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    out["log_loss"] = m.log_loss(y_true, proba, labels=labels)
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of one fold."""
    from sklearn import metrics as m

    return {
        "rmse": float(m.root_mean_squared_error(y_true, y_pred)),
        "mae": float(m.mean_absolute_error(y_true, y_pred)),
        "r2": float(m.r2_score(y_true, y_pred)),
    }


def detection_metrics(is_anomaly: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """ROC AUC and average precision of anomaly scores against an evaluation-only label."""
    from sklearn import metrics as m

    return {
        "roc_auc": float(m.roc_auc_score(is_anomaly, scores)),
        "average_precision": float(m.average_precision_score(is_anomaly, scores)),
    }


def summarize(per_fold: list[dict[str, float]]) -> dict[str, MetricSummary]:
    """Mean and population std (ddof=0, as numpy and the reference figures) of each metric."""
    if not per_fold:
        return {}
    summary = {}
    for name in per_fold[0]:
        values = np.array([fold[name] for fold in per_fold], dtype=np.float64)
        summary[name] = MetricSummary(
            float(values.mean()), float(values.std()), tuple(float(v) for v in values)
        )
    return summary


def score_distribution(scores: np.ndarray) -> dict[str, float]:
    """Summary of anomaly scores on the training rows."""
    q = np.quantile(scores, [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    names = ("min", "p05", "p25", "p50", "p75", "p95", "max")
    out = {name: float(v) for name, v in zip(names, q, strict=True)}
    out["mean"] = float(scores.mean())
    out["std"] = float(scores.std())
    return out


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """ECE: the confidence of the predicted class against its accuracy, over 10 equal-width bins."""
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)
