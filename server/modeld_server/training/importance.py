"""Feature importance in the user's column names, for the manifest (modelctl show, GetVersion).

Two views: the estimator's own (tree ensembles' feature_importances_, a linear model's
|coefficient| on standardized inputs), and permutation importance on held-out rows: the
first cross-validation fold's model scores its own held-out rows with one column shuffled
at a time. Both are summed back from one-hot columns to their categorical column.

Bounded: at most PERMUTATION_ROWS held-out rows (fewer with many features), and repeats
cut so that no more than PERMUTATION_BUDGET rows are scored in all (at least one shuffle
per feature).
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
PERMUTATION_BUDGET = 60_000
"""The most rows scored in all (held-out rows x features x repeats), in one predict call."""


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
    held-out rows `x` is shuffled, averaged over repeats; None for anomaly detection.

    Every shuffled copy is stacked into one matrix and predicted in one call: per-call
    overhead (a forest's thread pool, a booster's DMatrix) would otherwise dominate.
    """
    if task is Task.ANOMALY_DETECTION or len(x) < 2:
        return None
    rng = np.random.default_rng(seed)
    columns = max(len(schema.columns), 1)
    rows = min(len(x), PERMUTATION_ROWS, max(100, PERMUTATION_BUDGET // columns))
    if len(x) > rows:
        keep = rng.choice(len(x), rows, replace=False)
        x, y = x[keep], y[keep]
    repeats = max(1, min(PERMUTATION_REPEATS, PERMUTATION_BUDGET // (len(x) * columns)))
    copies = [x]
    for j in range(len(schema.columns)):
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, j] = x[rng.permutation(len(x)), j]
            copies.append(shuffled)
    pred = np.asarray(estimator.predict(preprocess.transform(np.concatenate(copies))))
    scores = [_score(task, part, y) for part in np.split(pred, len(copies))]
    baseline = scores[0]
    drops = {name: float(baseline - np.mean(scores[1 + j * repeats: 1 + (j + 1) * repeats]))
             for j, name in enumerate(schema.columns)}
    return {"metric": "accuracy" if task is Task.CLASSIFICATION else "r2",
            "baseline": baseline, "rows": len(x), "repeats": repeats, "drop": drops}


def _score(task: Task, pred: np.ndarray, y: np.ndarray) -> float:
    if task is Task.CLASSIFICATION:
        return float(np.mean(pred.astype(np.int64) == y))
    residual = float(np.sum((y - pred) ** 2))
    spread = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - residual / spread if spread else 0.0
