"""The quality gate for engine=dask: the champion compared on the same rows, as locally.

The local engine's gate (gate.py, worker._compare) first looks for rows the champion
never saw, using the row hashes every version keeps; the Dask engine keeps them too,
made on the cluster (dask_hashes.py), so the gate works whichever engine trained the
champion and the challenger:

* rows the champion never saw (at least gate.MIN_UNSEEN): the deployed champion predicts
  them on the cluster (on the partitions, or on the worker holding the prepared rows),
  and the challenger's held-out predictions score them;
* labels changed on more than gate.LABEL_DRIFT of the known rows: the deployed champion
  is scored on all rows, on the cluster;
* otherwise, the same data: the champion's recipe in the challenger's very folds.
  When the champion was trained on Dask with the same fold key (oof.fold_key: the same
  rows, selection, validation, task, fold count and seed, and the same libraries, plus
  the Dask fold rule), its stored out-of-fold predictions (oof.npz) are those folds'
  held-out predictions already, in the same order (fold by fold, rows in dataset
  order): they are reused with no refit. Otherwise the champion's recipe (algorithm,
  params, seed) is cross-validated again in the challenger's folds: XGBoost on the
  cluster by the code path of the challenger's own CV; a scikit-learn recipe as one
  task on one worker (refit_on_one_worker), when the dataset fits one worker by
  dask_sklearn's rule, else thresholds only, and the record says why.

A champion without row hashes (older versions, or damaged row files: champion.
read_champion) goes straight to the same-data path, and the record says so. Both sides
are scored pooled over the row set, and the record words `how` exactly as the local
engine does. Folds on Dask are a function of the row position (dask_engine.fold_of).

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
from modeld_server.training import dask_hashes, gate, oof
from modeld_server.training.champion import read_champion
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


@dataclass(frozen=True)
class Rows:
    """The challenger's rows as the gate needs them beyond its held-out predictions."""

    seen: dask_hashes.Seen
    outputs: dask_hashes.Outputs
    """The deployed champion's raw outputs on masked rows, computed on the cluster."""


@dataclass(frozen=True)
class OneWorker:
    """A scikit-learn champion's recipe refitted in an XGBoost challenger's folds."""

    refit: Callable[[TrainSpec, Manifest], Held]
    too_big: Callable[[], str]
    """Why the dataset does not fit one worker ('' when it does); asked only for a
    scikit-learn champion (it reads every Parquet file's footer)."""


def decide(spec: TrainSpec, context: dict[str, Any], classes: list[str], columns: list[str],
           metrics: dict[str, Any], held: Held, key: dict[str, Any],
           refit: Callable[[TrainSpec, Manifest], Held],
           refittable: Callable[[Manifest], str] | None = None, *,
           rows: Rows | None = None, one_worker: OneWorker | None = None
           ) -> gate.Decision | None:
    """The policy applied with the champion compared on the challenger's rows.

    Args:
        columns: the dataset's columns (the champion's must all be there).
        held: the challenger's held-out predictions.
        key: the challenger's fold key (fold_key).
        refit: cross-validates a recipe (the champion's manifest beside it) in the
            challenger's folds on the cluster.
        refittable: why a champion cannot be refitted by `refit`, or '' (default:
            XGBoost by `refit`, a scikit-learn recipe by `one_worker`).
        rows: the challenger's row hashes and the champion's outputs on the cluster
            (None: the same-data path only).
        one_worker: the refit of a scikit-learn recipe as one task on one worker.

    Returns:
        None without a policy (the gate is disabled), else the decision.
    """
    if "policy" not in context:
        return None
    policy = gate.Policy.from_json(context["policy"])
    champion = None
    note = ""
    if context.get("champion"):
        info = context["champion"]
        manifest, folder, kept, rows_why = read_champion(info)
        if kept is not None and rows is not None:
            kept, rows_why = _comparable_rows(manifest, kept, rows.seen)
        why = gate.not_comparable(manifest, SimpleNamespace(columns=columns), spec.task,
                                  classes)
        how = refit
        if not why and refittable is not None:
            why = refittable(manifest)
        elif not why:
            why, how = _refit_path(manifest, refit, one_worker)
        comparison = None
        if not why:
            comparison = _compare(spec, held, key, folder, manifest, how, classes,
                                  rows, kept)
            if kept is None and rows is not None:
                note = (f"champion v{info['version']}'s row hashes not used ({rows_why}): "
                        "rows it never saw and changed labels not looked for")
        champion = (info["version"], comparison, why)
    decision = gate.decide(policy, spec.task, len(classes), metrics, champion)
    if note:
        decision.reasons.append(note)
    return decision


def _comparable_rows(manifest: Manifest, kept: tuple[np.ndarray, np.ndarray | None],
                     seen: dask_hashes.Seen
                     ) -> tuple[tuple[np.ndarray, np.ndarray | None] | None, str]:
    """The champion's row hashes if they hash what the challenger's do (the same feature
    columns in the same order; the labeled ones only for the same label column)."""
    if tuple(manifest.features) != seen.columns:
        return None, "its feature columns differ from this job's"
    if manifest.schema is None or manifest.schema.get("target") != seen.label:
        return (kept[0], None), ""
    return kept, ""


def _refit_path(manifest: Manifest, refit: Callable[[TrainSpec, Manifest], Held],
                one_worker: OneWorker | None
                ) -> tuple[str, Callable[[TrainSpec, Manifest], Held]]:
    """How an XGBoost challenger refits the champion's recipe, or why it cannot."""
    if manifest.algorithm in DISTRIBUTED:
        return "", refit
    if one_worker is None:
        return (f"its algorithm {manifest.algorithm} does not train distributed: the Dask "
                f"gate refits only {', '.join(sorted(DISTRIBUTED))}"), refit
    too_big = one_worker.too_big()
    if too_big:
        return (f"its algorithm {manifest.algorithm} refits on one Dask worker, and "
                f"{too_big}"), refit
    return "", one_worker.refit


def _compare(spec: TrainSpec, held: Held, key: dict[str, Any], folder: Path,
             manifest: Manifest, refit: Callable[[TrainSpec, Manifest], Held],
             classes: list[str], rows: Rows | None,
             kept: tuple[np.ndarray, np.ndarray | None] | None) -> gate.Comparison:
    n_classes = len(classes)
    if rows is not None and kept is not None and len(rows.seen.order) == len(held.y):
        found = overlap(rows.seen, *kept)
        y, pred, proba = in_dataset_order(held, rows.seen.order)
        mask: np.ndarray | None = found.unseen
        how = "rows the champion never saw"
        if found.unseen.sum() < gate.MIN_UNSEEN:
            mask = np.ones(len(y), dtype=bool) if found.relabeled > gate.LABEL_DRIFT else None
            how = (f"labels changed on {found.relabeled:.0%} of the champion's rows: the "
                   "deployed champion scored on all rows")
        if mask is not None:
            challenger = gate.pooled_metrics(spec.task, y[mask], pred[mask],
                                             None if proba is None else proba[mask],
                                             n_classes)
            champion = _champion_metrics(spec.task, folder, manifest, classes, rows, mask,
                                         y[mask])
            return gate.Comparison(champion, challenger, int(mask.sum()), how)
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


def overlap(seen: dask_hashes.Seen, kept: np.ndarray, kept_labeled: np.ndarray | None
            ) -> gate.Overlap:
    """gate.overlap with the challenger's hashes made on the cluster."""
    unseen = ~np.isin(seen.features, kept)
    known = int((~unseen).sum())
    relabeled = 0.0
    if known and seen.labeled is not None and kept_labeled is not None:
        same = np.isin(seen.labeled, kept_labeled)
        relabeled = float(((~unseen) & ~same).sum() / known)
    return gate.Overlap(unseen, relabeled)


def in_dataset_order(held: Held, order: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The held-out labels and predictions rearranged so that row i is dataset row i."""
    def put(values: np.ndarray) -> np.ndarray:
        out = np.empty_like(values)
        out[order] = values
        return out

    return put(held.y), put(held.pred), None if held.proba is None else put(held.proba)


def _champion_metrics(task: Task, folder: Path, manifest: Manifest, classes: list[str],
                      rows: Rows, mask: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """gate.score_artifact, with the champion's outputs computed on the cluster."""
    from modeld_server import artifacts

    fitted = artifacts.load(folder, manifest.format, manifest.algorithm, manifest.task)
    raw = rows.outputs(fitted, gate._schema(manifest), mask)
    if task is Task.CLASSIFICATION:
        champion_classes = [str(c) for c in manifest.classes]
        proba = raw[:, [champion_classes.index(str(c)) for c in classes]]
        return _pooled(task, y, proba.argmax(axis=1), proba, len(classes))
    return _pooled(task, y, raw, None, 0)


def _pooled(task: Task, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
            n_classes: int) -> dict[str, float]:
    return gate.pooled_metrics(task, y, pred, proba, n_classes)


# ---- a scikit-learn champion's recipe on one worker ---------------------------------------

def refit_on_one_worker(frame: Any, schema: Any, classes: list[str], fold_seed: int,
                        size: Callable[[], int], client: Any) -> OneWorker:
    """The refit of a scikit-learn recipe in an XGBoost challenger's Dask folds, as one
    task: the validated partitions (features, label column, row position) go to one
    worker, which cross-validates the recipe there as the local engine would.

    Args:
        frame: the validated rows with the encoded label (dask_engine._Y) and the row
            position.
        fold_seed: the challenger's seed (its folds).
        size: dask_sklearn.memory_bytes of the dataset, when asked: the same size rule
            as the scikit-learn algorithms' fits on Dask (dask_sklearn.check_fits_a_worker).
    """
    import dask

    def too_big() -> str:
        from modeld_server.errors import FailedPrecondition
        from modeld_server.training import dask_sklearn

        workers = client.scheduler_info(n_workers=-1)["workers"]
        limits = [int(w.get("memory_limit") or 0) for w in workers.values()]
        needed = size()
        try:
            dask_sklearn.check_fits_a_worker("", "", needed, limits)
        except FailedPrecondition:
            return (f"the dataset (about {needed} bytes in memory, "
                    f"{dask_sklearn.COPIES_PER_FIT} copies for a fit) does not fit the "
                    f"smallest worker's memory_limit={min(m for m in limits if m)} bytes")
        return ""

    def refit(recipe: TrainSpec, manifest: Manifest) -> Held:
        method = (manifest.calibration or {}).get("method", "none")
        task = dask.delayed(_refit_task)(frame.to_delayed(), schema.to_json(), recipe,  # type: ignore[attr-defined]
                                         classes, fold_seed, method)
        y, pred, proba = client.compute(task, sync=True)
        return Held(y, pred, proba)

    return OneWorker(refit, too_big)


def _refit_task(parts: list[Any], schema_json: dict[str, Any], recipe: TrainSpec,
                classes: list[str], fold_seed: int, calibration: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """On a worker: the recipe cross-validated in the challenger's folds; the held-out
    labels and predictions fold after fold, rows in dataset order (as _cross_validate)."""
    import pandas as pd

    from modeld_server.features import FeatureSchema
    from modeld_server.training.dask_encode import _plain_objects
    from modeld_server.training.dask_engine import _POS, _Y, fold_of
    from modeld_server.training.estimators import (
        build_estimator,
        build_preprocessor,
        get_algorithm,
    )
    from modeld_server.training.evaluate import Template

    schema = FeatureSchema.from_json(schema_json)
    frame = pd.concat(parts, ignore_index=True)
    x = schema.matrix_from_frame(_plain_objects(frame, schema))
    y = frame[_Y].to_numpy()
    folds = fold_of(frame[_POS].to_numpy(), fold_seed, recipe.cv_folds)
    algorithm = get_algorithm(recipe.algorithm, recipe.task)
    n = len(schema.numeric)
    template = Template(
        build_preprocessor(algorithm, list(range(n)), list(range(n, len(schema.columns)))),
        build_estimator(algorithm, recipe.task, recipe.params, recipe.seed,
                        classes if recipe.task is Task.CLASSIFICATION else None),
    ).with_calibration(calibration)
    ys, preds, probas = [], [], []
    for i in range(recipe.cv_folds):
        test = folds == i
        fitted = template.fit(x[~test], y[~test])
        matrix = fitted.preprocess.transform(x[test])
        ys.append(y[test])
        preds.append(np.asarray(fitted.estimator.predict(matrix)))
        if recipe.task is Task.CLASSIFICATION:
            probas.append(np.asarray(fitted.estimator.predict_proba(matrix)))
    return (np.concatenate(ys), np.concatenate(preds),
            np.concatenate(probas) if probas else None)
