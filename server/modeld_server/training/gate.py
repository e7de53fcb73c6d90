"""The quality gate: a challenger must not be worse than the champion on the same rows.

The champion (the active version when the job started) is compared in the job,
on one set of rows, with neither side having trained on them:

* rows the champion never saw (every version keeps hashes of its training rows):
  the deployed champion predicts them, the challenger's held-out cross-validation
  predictions score them;
* when the dataset holds too few such rows (retraining on the same data), the
  champion's recipe (algorithm, params, seed) is refitted in the challenger's very
  folds, and both are scored on their held-out predictions over all rows;
* unless the labels of the known rows changed (more than 5% of them): refitting
  the recipe on changed labels would judge nothing, so the deployed champion is
  scored on all rows against the new labels. This favours the champion, which
  saw those rows, and catches a damaged label column.

Scores are pooled over the row set, not averaged over folds, so both sides see
exactly the same rows. Thresholds check the challenger's cross-validated means.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modeld_server import artifacts, fastpaths
from modeld_server.errors import IntegrityError, InvalidArgument, quoted
from modeld_server.features import FeatureSchema
from modeld_server.registry.manifest import Manifest
from modeld_server.training import metrics as metric_fns
from modeld_server.types import Task

LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier", "ece"})
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
DEFAULT_TOLERANCE = 0.01
MAX_AGE_LIMIT = 100 * 365 * 86400.0
"""The largest policy.max_age, in seconds (100 years)."""


@dataclass(frozen=True)
class Policy:
    """A model's promotion policy, as stored in <model>/policy.json."""

    primary_metric: str = ""
    tolerance: float = DEFAULT_TOLERANCE
    _: KW_ONLY
    thresholds: tuple[tuple[str, str, float], ...] = ()
    disabled: bool = False
    max_age_seconds: float = 0.0
    """Freshness (GetStatus warnings, not the gate): 0 for no limit."""
    min_training_rows: int = 0
    """Freshness: 0 for no minimum."""
    drift: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """Drift thresholds (psi_warn, psi_alert, js_alert, share_alert); 0 for the default."""
    monitor_sample: float | None = None
    """The model's drift sampling rate; None for the daemon's --monitor-sample."""
    dask_above_bytes: int = 0
    """Engine auto: datasets of more bytes than this train on Dask (cluster.py); 0: never."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"primary_metric": self.primary_metric,
                                "tolerance": self.tolerance,
                                "thresholds": [list(t) for t in self.thresholds],
                                "disabled": self.disabled}
        # Only when set: a policy without freshness reads (and logs) as it always has.
        if self.max_age_seconds:
            data["max_age_seconds"] = self.max_age_seconds
        if self.min_training_rows:
            data["min_training_rows"] = self.min_training_rows
        if any(self.drift):
            data["drift"] = list(self.drift)
        if self.monitor_sample is not None:
            data["monitor_sample"] = self.monitor_sample
        if self.dask_above_bytes:
            data["dask_above_bytes"] = self.dask_above_bytes
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Policy:
        if not data:
            return cls()
        return cls(data.get("primary_metric", ""), float(data.get("tolerance", DEFAULT_TOLERANCE)),
                   thresholds=tuple((m, op, float(v))
                                    for m, op, v in data.get("thresholds", ())),
                   disabled=bool(data.get("disabled", False)),
                   max_age_seconds=float(data.get("max_age_seconds", 0.0)),
                   min_training_rows=int(data.get("min_training_rows", 0)),
                   drift=_drift_json(data.get("drift")),
                   monitor_sample=None if data.get("monitor_sample") is None
                   else float(data["monitor_sample"]),
                   dask_above_bytes=int(data.get("dask_above_bytes", 0)))

    def validated(self) -> Policy:
        """Raises InvalidArgument naming the bad field."""
        if not 0 <= self.tolerance <= 1e6 or self.tolerance != self.tolerance:
            raise InvalidArgument(f"policy.tolerance must be >= 0, got {self.tolerance}")
        if self.primary_metric and not self.primary_metric.replace("_", "").isalnum():
            raise InvalidArgument(f"policy.primary_metric {quoted(self.primary_metric)} is not a "
                                  "metric name")
        for metric, op, value in self.thresholds:
            if op not in OPERATORS:
                raise InvalidArgument(f"policy.thresholds: operator {quoted(op)} for "
                                      f"{quoted(metric)} is not one of {', '.join(OPERATORS)}")
            if not metric or value != value:
                raise InvalidArgument(f"policy.thresholds: {quoted(metric)} {op} {value} is not a "
                                      "valid bound")
        if not 0 <= self.max_age_seconds < MAX_AGE_LIMIT:  # NaN fails too
            raise InvalidArgument(f"policy.max_age must be between 0 and {MAX_AGE_LIMIT:.0f} "
                                  f"seconds (100 years), got {self.max_age_seconds:g} seconds")
        if self.min_training_rows < 0:
            raise InvalidArgument(
                f"policy.min_training_rows must be >= 0, got {self.min_training_rows}")
        if self.dask_above_bytes < 0:
            raise InvalidArgument(
                f"policy.dask_above_bytes must be >= 0, got {self.dask_above_bytes}")
        self._check_drift()
        return self

    def _check_drift(self) -> None:
        limits = (10.0, 10.0, 1.0, 1.0)
        for name, value, limit in zip(DRIFT_FIELDS, self.drift, limits, strict=True):
            if not 0 <= value <= limit:  # NaN fails too
                raise InvalidArgument(f"policy.{name} must be between 0 (the default) and "
                                      f"{limit:g}, got {value:g}")
        if self.monitor_sample is not None and not 0 <= self.monitor_sample <= 1:
            raise InvalidArgument(f"policy.monitor_sample must be between 0 and 1, got "
                                  f"{self.monitor_sample:g}")
        warn, alert = self.drift[0] or DRIFT_DEFAULTS[0], self.drift[1] or DRIFT_DEFAULTS[1]
        if warn > alert:
            raise InvalidArgument(f"policy.drift_psi_warn {warn:g} is above "
                                  f"policy.drift_psi_alert {alert:g}")

    def drift_thresholds(self) -> tuple[float, float, float, float]:
        """(psi_warn, psi_alert, js_alert, share_alert), defaults filled in."""
        return tuple(v or d for v, d in zip(self.drift, DRIFT_DEFAULTS, strict=True))  # type: ignore[return-value]


DRIFT_FIELDS = ("drift_psi_warn", "drift_psi_alert", "drift_js_alert", "drift_share_alert")
DRIFT_DEFAULTS = (0.1, 0.25, 0.1, 0.5)


def _drift_json(value: Any) -> tuple[float, float, float, float]:
    if not value:
        return (0.0, 0.0, 0.0, 0.0)
    a, b, c, d = (float(v) for v in value)
    return (a, b, c, d)


def primary_metric(policy: Policy, task: Task, n_classes: int) -> str:
    if policy.primary_metric:
        return policy.primary_metric
    if task is Task.CLASSIFICATION:
        return "f1" if n_classes == 2 else "f1_macro"
    if task is Task.REGRESSION:
        return "rmse"
    return "roc_auc"


@dataclass(kw_only=True)
class Decision:
    passed: bool
    metric: str
    challenger: float | None = None
    champion: float | None = None
    champion_version: int = 0
    rows: int = 0
    how: str = ""
    reasons: list[str] = field(default_factory=list)
    thresholds: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def decide(policy: Policy, task: Task, n_classes: int, cv_metrics: dict[str, Any],
           champion: tuple[int, Comparison | None, str] | None) -> Decision:
    """Applies the policy.

    Args:
        cv_metrics: the challenger's cross-validated metrics (mean/std/folds).
        champion: (version, the comparison on one row set or None, why not comparable).
    """
    metric = primary_metric(policy, task, n_classes)
    decision = Decision(passed=True, metric=metric)
    for name, op, bound in policy.thresholds:
        value = (cv_metrics.get(name) or {}).get("mean")
        ok = value is not None and OPERATORS[op](value, bound)
        decision.thresholds.append({"metric": name, "op": op, "bound": bound, "value": value,
                                    "passed": ok})
        shown = "missing" if value is None else f"{value:.4f}"
        decision.reasons.append(f"{name} {shown} {op} {bound:g}: {'ok' if ok else 'FAILED'}")
        decision.passed &= ok
    if champion is None:
        decision.reasons.append("no champion: first version, thresholds only")
        return decision
    version, comparison, why = champion
    decision.champion_version = version
    if (comparison is None or comparison.champion is None or comparison.challenger is None
            or metric not in comparison.champion):
        decision.reasons.append(f"champion v{version} not comparable ({why}); thresholds only")
        return decision
    decision.champion = comparison.champion[metric]
    decision.challenger = comparison.challenger[metric]
    decision.rows, decision.how = comparison.rows, comparison.how
    rows = comparison.rows
    lower = metric in LOWER_IS_BETTER
    margin = policy.tolerance
    ok = (decision.challenger <= decision.champion + margin if lower
          else decision.challenger >= decision.champion - margin)
    decision.reasons.append(
        f"{metric} challenger {decision.challenger:.4f} vs champion v{version} "
        f"{decision.champion:.4f} on the same {rows} rows, {comparison.how} "
        f"(tolerance {margin:g}): "
        f"{'ok' if ok else 'WORSE'}")
    decision.passed &= ok
    return decision


def pooled_metrics(task: Task, y: np.ndarray | None, pred: np.ndarray,
                   proba: np.ndarray | None, n_classes: int,
                   eval_label: np.ndarray | None = None) -> dict[str, float]:
    """Metrics over all rows at once (not a mean of folds)."""
    if task is Task.CLASSIFICATION:
        assert y is not None and proba is not None
        return metric_fns.classification_metrics(y, pred.astype(np.int64), proba, n_classes)
    if task is Task.REGRESSION:
        assert y is not None
        return metric_fns.regression_metrics(y, pred)
    assert eval_label is not None
    return metric_fns.detection_metrics(eval_label, pred)


ROWS_FILE = "train_rows.npy"
LABELED_ROWS_FILE = "train_rows_labeled.npy"
MIN_UNSEEN = 30
LABEL_DRIFT = 0.05  # known rows whose label changed, above which the labels are suspect


def row_hashes(frame: Any, columns: list[str]) -> np.ndarray:
    """A 64-bit hash of each row's values in `columns` (index ignored): the values of
    pandas.util.hash_pandas_object(frame[columns], index=False)."""
    return hashes_of_rows(frame, [columns])[0]


def hashes_of_rows(frame: Any, column_sets: list[list[str]]) -> list[np.ndarray]:
    """row_hashes for several column lists, hashing each column once.

    hash_pandas_object hashes each column and then mixes the columns' hashes in order;
    the mixing is repeated here (pandas' combine_hash_arrays), so the features-alone and
    the with-label hashes share the costly part. The stored hashes stay the ones pandas
    gives (a test checks), so row files of older versions still compare.
    """
    import pandas as pd

    if not fastpaths.enabled():
        return [np.asarray(pd.util.hash_pandas_object(frame[columns], index=False),
                           dtype=np.uint64) if columns else _combine([], len(frame))
                for columns in column_sets]
    names = {name for columns in column_sets for name in columns}
    column_hashes = {name: np.asarray(pd.util.hash_pandas_object(frame[name], index=False),
                                      dtype=np.uint64) for name in names}
    return [_combine([column_hashes[name] for name in columns], len(frame))
            for columns in column_sets]


def _combine(arrays: list[np.ndarray], rows: int) -> np.ndarray:
    """pandas.core.util.hashing.combine_hash_arrays, as hash_pandas_object applies it."""
    if not arrays:
        return np.zeros(rows, dtype=np.uint64)
    mult = np.uint64(1000003)
    out = np.zeros(rows, dtype=np.uint64) + np.uint64(0x345678)
    count = len(arrays)
    for i, values in enumerate(arrays):
        inverse = count - i
        out ^= values
        out *= mult
        mult += np.uint64(82520 + inverse + inverse)
    out += np.uint64(97531)
    return out


def save_row_hashes(folder: Path, frame: Any, features: list[str], label: str) -> None:
    """Stores which rows a version was trained on (features alone, and with the label), so a
    later gate can find the rows it never saw and the known rows whose label changed."""
    sets = [features, [*features, label]] if label else [features]
    hashes = hashes_of_rows(frame, sets)
    np.save(folder / ROWS_FILE, _sorted_unique(hashes[0]), allow_pickle=False)
    if label:
        np.save(folder / LABELED_ROWS_FILE, _sorted_unique(hashes[1]), allow_pickle=False)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique(values), by sorting: NumPy 2.4's hash-based unique takes 0.35 s for 500k
    64-bit hashes, a sort 8 ms."""
    ranked = np.sort(values)
    return ranked[np.concatenate(([True], ranked[1:] != ranked[:-1]))] if len(ranked) else ranked


@dataclass
class Comparison:
    """The champion's and challenger's pooled metrics on one row set, and how it was chosen."""

    champion: dict[str, float] | None
    challenger: dict[str, float] | None
    rows: int
    how: str


@dataclass(frozen=True)
class Overlap:
    """How the challenger's rows relate to the champion's training rows."""

    unseen: np.ndarray
    """Mask of rows whose features the champion never trained on."""
    relabeled: float
    """Fraction of the known rows whose label differs from the champion's."""


def overlap(kept: np.ndarray, kept_labeled: np.ndarray | None, manifest: Manifest,
            frame: Any) -> Overlap:
    """Which of `frame`'s rows the champion never saw, and the share of those it saw whose
    label changed, from its row hashes (champion.read_champion: of its feature columns,
    and of those with its label)."""
    features = list(manifest.features)
    unseen = ~np.isin(row_hashes(frame, features), kept)
    label = _schema(manifest).target
    relabeled = 0.0
    known = int((~unseen).sum())
    if label and known and label in frame.columns and kept_labeled is not None:
        same = np.isin(row_hashes(frame, [*features, label]), kept_labeled)
        relabeled = float(((~unseen) & ~same).sum() / known)
    return Overlap(unseen, relabeled)


def not_comparable(manifest: Manifest, frame: Any, task: Task,
                   classes: list[Any]) -> str:
    """Why the champion cannot be scored on this dataset, or ''."""
    if manifest.task != task.value:
        return f"it does {manifest.task or None}"
    schema = _schema(manifest)
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        return f"this dataset lacks its columns {missing[:5]}"
    champion_classes = [str(c) for c in manifest.classes]
    if task is Task.CLASSIFICATION and sorted(champion_classes) != sorted(map(str, classes)):
        return "its classes differ"
    return ""


def score_artifact(folder: Path, manifest: Manifest, frame: Any, task: Task,
                   classes: list[Any], y: np.ndarray | None,
                   eval_label: np.ndarray | None) -> dict[str, float]:
    """The deployed champion's pooled metrics on `frame`'s rows."""
    schema = _schema(manifest)
    champion_classes = [str(c) for c in manifest.classes]
    fitted = artifacts.load(folder, manifest.format, manifest.algorithm, manifest.task)
    matrix = fitted.preprocess.transform(schema.matrix_from_frame(frame))
    est = fitted.estimator
    if task is Task.CLASSIFICATION:
        raw = np.asarray(est.predict_proba(matrix), dtype=np.float64)
        proba = raw[:, [champion_classes.index(str(c)) for c in classes]]
        return pooled_metrics(task, y, proba.argmax(axis=1), proba, len(classes))
    if task is Task.REGRESSION:
        return pooled_metrics(task, y, np.asarray(est.predict(matrix)), None, 0)
    return pooled_metrics(task, None, -est.score_samples(matrix), None, 0, eval_label)


def _schema(manifest: Manifest) -> FeatureSchema:
    """The champion's feature schema (a manifest without one cannot be scored)."""
    if manifest.schema is None:
        raise IntegrityError(f"manifest of {manifest.model!r} v{manifest.version} has no schema")
    return FeatureSchema.from_json(manifest.schema)
