"""The quality gate for engine=dask XGBoost: the champion scored in the challenger's folds.

The local engine's gate (gate.py, worker._compare) first looks for rows the champion
never saw, using the row hashes every local version keeps. A Dask-trained version keeps
no row hashes (they are the size of the dataset, which the daemon never holds), so the
Dask gate takes the local engine's same-data path, as the local engine does for a
champion without row hashes: the champion's recipe in the challenger's very folds.

* When the champion was trained on Dask with the same fold key (oof.fold_key: the same
  rows, selection, validation, task, fold count and seed, and the same libraries, plus
  the Dask fold rule), its stored out-of-fold predictions (oof.npz) are those folds'
  held-out predictions already, in the same order (fold by fold, rows in dataset order):
  they are reused with no refit.
* Otherwise the champion's recipe (algorithm, params, seed) is cross-validated again on
  the cluster in the challenger's folds, by the code path of the challenger's own CV.

Both sides are scored pooled over all rows (float32 predictions, oof.as_stored), and the
record words `how` exactly as the local engine does. Folds on Dask are a function of
the row position (dask_engine.fold_of), so "the same folds" needs no stored index.

The key's "dataset_sha256" here is a fingerprint of the encoded rows (features, label
and row position) computed on the cluster: per partition a SHA-256 of pandas' 64-bit row
hashes, then a SHA-256 of those digests in partition order; the daemon receives only the
digests (32 bytes a partition).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from modeld_server.registry.manifest import Manifest
from modeld_server.training import gate, oof, worker
from modeld_server.training.cluster import DISTRIBUTED
from modeld_server.types import Task, TrainSpec

FOLD_RULE = "splitmix64(seed, row position) mod cv_folds"


@dataclass
class Held:
    """Held-out predictions of a cross-validation, fold after fold (rows in dataset order)."""

    y: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None


def fingerprint(frame: Any, columns: list[str], client: Any) -> str:
    """A SHA-256 of the rows' values in `columns`, computed on the cluster.

    Returns:
        Hex digest of the per-partition digests (each over hash_pandas_object's values).
    """
    import dask

    parts = [dask.delayed(_partition_digest)(p, columns)  # type: ignore[attr-defined]
             for p in frame.to_delayed()]
    digests = client.compute(parts, sync=True)
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _partition_digest(partition: Any, columns: list[str]) -> str:
    import pandas as pd

    values = np.asarray(pd.util.hash_pandas_object(partition[columns], index=False),
                        dtype=np.uint64)
    return hashlib.sha256(values.tobytes()).hexdigest()


def fold_key(spec: TrainSpec, sha256: str, rows: int,
             libraries: dict[str, str]) -> dict[str, Any]:
    """oof.fold_key plus the Dask fold rule (a local version's key never matches it)."""
    return oof.fold_key(spec, sha256, rows, libraries) | {"folds": FOLD_RULE}


def decide(spec: TrainSpec, context: dict[str, Any], classes: list[str], columns: list[str],
           metrics: dict[str, Any], held: Held, key: dict[str, Any],
           refit: Callable[[TrainSpec, Manifest], Held],
           refittable: Callable[[Manifest], str] | None = None) -> gate.Decision | None:
    """The policy applied with the champion compared in the challenger's folds.

    Args:
        columns: the dataset's columns (the champion's must all be there).
        held: the challenger's held-out predictions.
        key: the challenger's fold key (fold_key).
        refit: cross-validates a recipe (the champion's manifest beside it) in the
            challenger's folds on the cluster.
        refittable: why a champion cannot be refitted, or '' (default: XGBoost only).

    Returns:
        None without a policy (the gate is disabled), else the decision.
    """
    if "policy" not in context:
        return None
    policy = gate.Policy.from_json(context["policy"])
    champion = None
    if context.get("champion"):
        info = context["champion"]
        manifest, folder = worker.read_champion(info)
        why = (gate.not_comparable(manifest, SimpleNamespace(columns=columns), spec.task,
                                   classes) or (refittable or _not_refittable)(manifest))
        comparison = None if why else _compare(spec, held, key, folder, manifest, refit,
                                               len(classes))
        champion = (info["version"], comparison, why)
    return gate.decide(policy, spec.task, len(classes), metrics, champion)


def _not_refittable(manifest: Manifest) -> str:
    if manifest.algorithm not in DISTRIBUTED:
        return (f"its algorithm {manifest.algorithm} does not train distributed: the Dask "
                f"gate refits only {', '.join(sorted(DISTRIBUTED))}")
    return ""


def _compare(spec: TrainSpec, held: Held, key: dict[str, Any], folder: Path,
             manifest: Manifest, refit: Callable[[TrainSpec, Manifest], Held],
             n_classes: int) -> gate.Comparison:
    challenger = _pooled(spec.task, held.y, *oof.as_stored(held.pred, held.proba), n_classes)
    stored, why_not = oof.reusable(folder, manifest, key)
    if stored is not None and len(stored[0]) == len(held.y):
        return gate.Comparison(
            _pooled(spec.task, held.y, *stored, n_classes), challenger, len(held.y),
            "champion's out-of-fold predictions from its own training, in the same folds "
            "(no refit)")
    recipe = TrainSpec(model=spec.model, dataset=spec.dataset, algorithm=manifest.algorithm,
                       task=spec.task, params=dict(manifest.params), cv_folds=spec.cv_folds,
                       seed=spec.seed if manifest.seed is None else manifest.seed,
                       engine=spec.engine)
    again = refit(recipe, manifest)
    return gate.Comparison(
        _pooled(spec.task, held.y, *oof.as_stored(again.pred, again.proba), n_classes),
        challenger, len(held.y), "champion's recipe refitted in the same folds "
        f"(stored predictions not reusable: {why_not or 'their row count differs'})")


def _pooled(task: Task, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
            n_classes: int) -> dict[str, float]:
    return gate.pooled_metrics(task, y, pred, proba, n_classes)
