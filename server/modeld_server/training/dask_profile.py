"""The reference profile (monitoring/profile.py) of a Dask-trained version, made on the cluster.

The same bins as the local engine's, from two passes over the validated rows that send
the daemon only small arrays:

1. per partition, a bounded seeded sample of each numeric column's non-zero values
   (SAMPLE_ROWS rows in all, shared by the partitions in proportion to their rows) and
   each categorical column's exact value counts; the numeric quantile edges are those of
   the pooled sample (when the dataset has at most SAMPLE_ROWS rows, the sample is every
   row, and the edges equal the local engine's), the top categories those of the merged
   exact counts (ties by name, as np.unique orders them);
2. per partition, exact bin counts under those edges and categories, and exact
   count/mean/M2/min/max, merged here (Chan's pairwise variance).

So every count and summary is exact (a Dask reduction); only the numeric edges come from
a bounded sample. The model's output profile comes from the held-out predictions, which
the job holds already (small), as the local engine's does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeld_server.features import FeatureSchema
from modeld_server.monitoring import profile

SAMPLE_ROWS = 100_000


def feature_profiles(frame: Any, schema: FeatureSchema, rows: int, seed: int,
                     client: Any) -> dict[str, dict[str, Any]]:
    """Every feature's reference profile, from a Dask frame of the validated rows.

    Args:
        rows: the frame's row count (the sample's share of each partition follows it).
    """
    import dask

    delayed = dask.delayed  # type: ignore[attr-defined]
    parts = frame.to_delayed()
    share = min(1.0, SAMPLE_ROWS / rows) if rows else 1.0
    firsts = client.compute([delayed(_first_pass)(p, schema.to_json(), share, seed + i)
                             for i, p in enumerate(parts)], sync=True)
    edges = {name: _edges([f[0][name] for f in firsts]) for name in schema.numeric}
    categories = {name: _top([f[1][name] for f in firsts]) for name in schema.categorical}
    seconds = client.compute([delayed(_second_pass)(p, schema.to_json(), edges, categories)
                              for p in parts], sync=True)
    out: dict[str, dict[str, Any]] = {}
    for name in schema.numeric:
        counts = np.sum([s[name][0] for s in seconds], axis=0)
        out[name] = profile.numeric_from_counts(edges[name], counts,
                                                _merged([s[name][1] for s in seconds]))
    for name in schema.categorical:
        counts = np.sum([s[name] for s in seconds], axis=0)
        out[name] = profile.categorical_from_counts(categories[name], counts)
    return out


def _matrix(partition: Any, schema_json: dict[str, Any]) -> tuple[FeatureSchema, np.ndarray]:
    """The local engine's matrix of one partition. Dask reads text as pyarrow strings,
    whose missing values are pd.NA: they become None, as pandas' own reader gives."""
    schema = FeatureSchema.from_json(schema_json)
    if schema.categorical:
        partition = partition.copy()
        for name in schema.categorical:
            column = partition[name].astype(object)
            partition[name] = column.where(partition[name].notna(), None)
    return schema, schema.matrix_from_frame(partition)


def _first_pass(partition: Any, schema_json: dict[str, Any], share: float, seed: int
                ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, int]]]:
    """A seeded sample of each numeric column's non-zero values; categorical value counts."""
    schema, matrix = _matrix(partition, schema_json)
    n = len(matrix)
    keep = (np.arange(n) if share >= 1 else
            np.sort(np.random.default_rng(seed).choice(n, round(n * share), replace=False)))
    sample: dict[str, np.ndarray] = {}
    for j, name in enumerate(schema.numeric):
        values = matrix[keep, j].astype(np.float64)
        sample[name] = values[~np.isnan(values) & (values != 0)]
    counts: dict[str, dict[str, int]] = {}
    for j, name in enumerate(schema.categorical, start=len(schema.numeric)):
        column = matrix[:, j]
        present = column[[not profile.is_missing(v) for v in column]].astype(str)
        names, seen = np.unique(present, return_counts=True)
        counts[name] = dict(zip(names.tolist(), seen.tolist(), strict=True))
    return sample, counts


def _second_pass(partition: Any, schema_json: dict[str, Any], edges: dict[str, list[float]],
                 categories: dict[str, list[str]]) -> dict[str, Any]:
    """Exact bin counts and (count, mean, M2, min, max) of each feature in one partition."""
    schema, matrix = _matrix(partition, schema_json)
    out: dict[str, Any] = {}
    for j, name in enumerate(schema.numeric):
        values = matrix[:, j].astype(np.float64)
        present = values[~np.isnan(values)]
        moments = ((len(present), float(present.mean()),
                    float(((present - present.mean()) ** 2).sum()),
                    float(present.min()), float(present.max())) if len(present) else None)
        out[name] = (profile.numeric_counts(values, edges[name]), moments)
    for j, name in enumerate(schema.categorical, start=len(schema.numeric)):
        out[name] = profile.categorical_counts(matrix[:, j], categories[name])
    return out


def _edges(samples: list[np.ndarray]) -> list[float]:
    pooled = np.sort(np.concatenate(samples)) if samples else np.empty(0)
    return profile.quantile_edges(pooled)


def _top(counts: list[dict[str, int]]) -> list[str]:
    merged: dict[str, int] = {}
    for part in counts:
        for name, seen in part.items():
            merged[name] = merged.get(name, 0) + seen
    names = sorted(merged)
    order = np.argsort(-np.asarray([merged[n] for n in names], dtype=np.int64), kind="stable")
    return [names[i] for i in order[:profile.TOP_CATEGORIES]]


def _merged(moments: list[tuple[int, float, float, float, float] | None]
            ) -> dict[str, float | None]:
    """The summary (mean, population std, min, max) of partitions' moments."""
    n, mean, m2, low, high = 0, 0.0, 0.0, np.inf, -np.inf
    for got in moments:
        if got is None:
            continue
        count, part_mean, part_m2, part_low, part_high = got
        delta = part_mean - mean
        total = n + count
        mean += delta * count / total
        m2 += part_m2 + delta * delta * n * count / total
        n, low, high = total, min(low, part_low), max(high, part_high)
    if not n:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": mean, "std": float(np.sqrt(m2 / n)), "min": float(low), "max": float(high)}
