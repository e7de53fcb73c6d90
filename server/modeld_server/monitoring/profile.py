"""The reference profile a version carries in its manifest, and the same bins for live rows.

A numeric column is binned by quantile edges of its non-zero training values, with a
bin of its own for zero and one for missing: on spambase most word frequencies are zero,
their quantile edges over all rows collapse, and a shift of the non-zero values would move
no row between naive bins. A categorical column keeps its most frequent categories plus
"other" and "missing". The model's output gets the same treatment: a binary classifier's
probability of its second class in ten equal bins, a multiclass classifier's predicted
classes as categories, a regressor's values and a detector's scores as numbers.

Pure numpy, so the daemon bins live rows without pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

QUANTILE_BINS = 20
"""Bins over a numeric column's non-zero values (fewer when it has fewer distinct values)."""
TOP_CATEGORIES = 20
PROBABILITY_EDGES = [round(0.1 * i, 1) for i in range(1, 10)]
OTHER, MISSING = "__other__", "__missing__"


def numeric_profile(values: np.ndarray, edges: Sequence[float] | None = None) -> dict[str, Any]:
    """A numeric column's bins (missing, zero, then one per interval between `edges`), their
    counts and its summary; edges are quantiles of the non-zero values unless given."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    # Sorted once, the non-zero values give their quantiles (the same values: a quantile
    # depends on the values, not their order) and each bin's count from the edges'
    # places among them, at a seventh of the cost (500k rows: 14 ms against 100).
    nonzero = np.sort(present[present != 0])
    if edges is None:
        edges = _quantile_edges(nonzero)
    return {"kind": "numeric", "edges": list(edges),
            "counts": _sorted_counts(values, len(present), nonzero, edges).tolist(),
            "missing_share": _share(len(values) - len(present), len(values)),
            "zero_share": _share(len(present) - len(nonzero), len(values)),
            **_summary(present)}


def numeric_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts of [missing, zero, non-zero below edges[0], ..., non-zero at or above edges[-1]]."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    zero = values == 0
    rest = values[~missing & ~zero]
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), rest, side="right")
    counts = np.zeros(len(edges) + 3, dtype=np.int64)
    counts[0], counts[1] = int(missing.sum()), int(zero.sum())
    counts[2:] = np.bincount(bins, minlength=len(edges) + 1)
    return counts


def _sorted_counts(values: np.ndarray, present: int, nonzero: np.ndarray,
                   edges: Sequence[float]) -> np.ndarray:
    """numeric_counts(values, edges), given how many values are present and the non-zero
    ones sorted: a value falls in bin b when b edges are at or below it, so the bins
    between two edges hold the values below the upper one less those below the lower."""
    bounds = np.asarray(edges, dtype=np.float64)
    if len(bounds) > 1 and not bool(np.all(bounds[1:] >= bounds[:-1])):
        return numeric_counts(values, edges)
    counts = np.zeros(len(bounds) + 3, dtype=np.int64)
    counts[0], counts[1] = len(values) - present, present - len(nonzero)
    below = np.searchsorted(nonzero, bounds, side="left")
    counts[2:] = np.diff(below, prepend=0, append=len(nonzero))
    return counts


def categorical_profile(values: Sequence[Any] | np.ndarray) -> dict[str, Any]:
    """A categorical column's top categories, "other" and "missing", with counts."""
    column = np.asarray(values, dtype=object)
    missing = np.array([_is_missing(v) for v in column], dtype=bool)
    names, counts = np.unique(column[~missing].astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:TOP_CATEGORIES]
    categories = [str(names[i]) for i in order]
    profile = {"kind": "categorical", "categories": categories,
               "counts": categorical_counts(column, categories).tolist(),
               "missing_share": _share(int(missing.sum()), len(column))}
    return profile


def categorical_counts(values: Sequence[Any] | np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """Counts of [each of `categories`, other, missing]."""
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 2, dtype=np.int64)
    for value in values:
        if _is_missing(value):
            counts[-1] += 1
        else:
            counts[index.get(str(value), len(categories))] += 1
    return counts


def counts_like(profile: dict[str, Any], values: Any) -> np.ndarray:
    """Live values binned as `profile` bins its reference."""
    if profile["kind"] == "numeric":
        return numeric_counts(values, profile["edges"])
    return categorical_counts(values, profile["categories"])


def feature_profiles(numeric: Sequence[str], categorical: Sequence[str],
                     matrix: np.ndarray) -> dict[str, dict[str, Any]]:
    """Every feature's profile, from the model's matrix (numeric columns first)."""
    out: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(numeric):
        out[name] = numeric_profile(matrix[:, j].astype(np.float64))
    for j, name in enumerate(categorical, start=len(numeric)):
        out[name] = categorical_profile(matrix[:, j])
    return out


def output_values(task: str, classes: Sequence[str], probabilities: np.ndarray | None,
                  values: np.ndarray | None) -> np.ndarray | list[str]:
    """What the output profile bins: a binary classifier's probability of classes[1], a
    multiclass one's predicted labels, else the values (regression) or scores (anomaly)."""
    if task == "classification":
        assert probabilities is not None
        if len(classes) == 2:
            return np.asarray(probabilities[:, 1], dtype=np.float64)
        return [classes[i] for i in np.asarray(probabilities).argmax(axis=1)]
    assert values is not None
    return np.asarray(values, dtype=np.float64)


def output_profile(task: str, classes: Sequence[str], probabilities: np.ndarray | None,
                   values: np.ndarray | None) -> dict[str, Any]:
    """The model's output profile, with the predicted-class shares of a classifier."""
    seen = output_values(task, classes, probabilities, values)
    if task == "classification" and len(classes) == 2:
        profile = numeric_profile(np.asarray(seen), PROBABILITY_EDGES)
        profile["what"] = f"probability of class {classes[1]}"
    elif task == "classification":
        profile = categorical_profile(seen)
        profile["what"] = "predicted class"
    else:
        profile = numeric_profile(np.asarray(seen))
        profile["what"] = "predicted value" if task == "regression" else "anomaly score"
    if task == "classification" and probabilities is not None:
        predicted = np.asarray(probabilities).argmax(axis=1)
        shares = np.bincount(predicted, minlength=len(classes)) / max(len(predicted), 1)
        profile["class_shares"] = {str(c): float(s) for c, s in zip(classes, shares, strict=True)}
    return profile


def numeric_from_counts(edges: Sequence[float], counts: np.ndarray,
                        summary: dict[str, float | None]) -> dict[str, Any]:
    """A numeric profile from its bin counts (numeric_counts, summed over parts) and
    summary: the Dask engine's entry point (training/dask_profile.py)."""
    total = int(counts.sum())
    return {"kind": "numeric", "edges": list(edges), "counts": counts.tolist(),
            "missing_share": _share(int(counts[0]), total),
            "zero_share": _share(int(counts[1]), total), **summary}


def categorical_from_counts(categories: Sequence[str], counts: np.ndarray) -> dict[str, Any]:
    """A categorical profile from categorical_counts summed over parts (Dask entry point)."""
    return {"kind": "categorical", "categories": list(categories), "counts": counts.tolist(),
            "missing_share": _share(int(counts[-1]), int(counts.sum()))}


def quantile_edges(nonzero: np.ndarray) -> list[float]:
    """The bin edges of a numeric column from its non-zero values."""
    return _quantile_edges(nonzero)


def is_missing(value: Any) -> bool:
    """None or NaN: what the profiles count as missing."""
    return _is_missing(value)


def _quantile_edges(nonzero: np.ndarray) -> list[float]:
    if len(nonzero) == 0:
        return []
    qs = np.quantile(nonzero, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1])
    return [float(e) for e in np.unique(qs)]


def _summary(present: np.ndarray) -> dict[str, float | None]:
    if len(present) == 0:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": float(present.mean()), "std": float(present.std()),
            "min": float(present.min()), "max": float(present.max())}


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
