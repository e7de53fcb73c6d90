"""Feature importance in the user's column names, for the manifest (modelctl show, GetVersion).

Two views: the estimator's own (tree ensembles' feature_importances_, a linear model's
|coefficient| on standardized inputs), and permutation importance on held-out rows: the
first cross-validation fold's model scores its own held-out rows with one column shuffled
at a time. Both are summed back from one-hot columns to their categorical column.

Bounded: at most PERMUTATION_ROWS held-out rows, and repeats cut so that no more than
PERMUTATION_PREDICTS predictions of those rows run (at least one per feature).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeld_server.errors import FailedPrecondition
from modeld_server.features import FeatureSchema
from modeld_server.serving.explain import source_columns
from modeld_server.types import Task

PERMUTATION_ROWS = 1000
PERMUTATION_REPEATS = 3
PERMUTATION_PREDICTS = 600


def own_importance(preprocess: Any, estimator: Any, schema: FeatureSchema
                   ) -> dict[str, float] | None:
    """The estimator's own importances, normalized to sum 1; None when it has none."""
    if hasattr(estimator, "feature_importances_"):
        raw = np.asarray(estimator.feature_importances_, dtype=np.float64)
    elif hasattr(estimator, "coef_"):
        coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
        raw = np.abs(coef).sum(axis=0)
    else:
        return None
    try:
        owner = source_columns(preprocess, schema, len(raw))
    except FailedPrecondition:
        return None
    summed = np.zeros(len(schema.columns))
    np.add.at(summed, owner, raw)
    total = summed.sum()
    if not np.isfinite(total) or total <= 0:
        return None
    return {name: float(v / total) for name, v in zip(schema.columns, summed, strict=True)}


def permutation_importance(task: Task, preprocess: Any, estimator: Any, schema: FeatureSchema,
                           x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any] | None:
    """The drop in accuracy (classification) or R^2 (regression) when each column of the
    held-out rows `x` is shuffled, averaged over repeats; None for anomaly detection."""
    if task is Task.ANOMALY_DETECTION or len(x) < 2:
        return None
    rng = np.random.default_rng(seed)
    if len(x) > PERMUTATION_ROWS:
        keep = rng.choice(len(x), PERMUTATION_ROWS, replace=False)
        x, y = x[keep], y[keep]
    columns = len(schema.columns)
    repeats = max(1, min(PERMUTATION_REPEATS, PERMUTATION_PREDICTS // max(columns, 1)))

    def score(matrix: np.ndarray) -> float:
        pred = estimator.predict(preprocess.transform(matrix))
        if task is Task.CLASSIFICATION:
            return float(np.mean(np.asarray(pred).astype(np.int64) == y))
        residual = float(np.sum((y - pred) ** 2))
        spread = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - residual / spread if spread else 0.0

    baseline = score(x)
    drops = {}
    for j, name in enumerate(schema.columns):
        shuffled = x.copy()
        losses = []
        for _ in range(repeats):
            shuffled[:, j] = x[rng.permutation(len(x)), j]
            losses.append(baseline - score(shuffled))
        drops[name] = float(np.mean(losses))
    return {"metric": "accuracy" if task is Task.CLASSIFICATION else "r2",
            "baseline": baseline, "rows": len(x), "repeats": repeats, "drop": drops}
