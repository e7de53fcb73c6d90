"""The model lifecycle's records: promotion policies, aliases and retraining schedules."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from modeld.options import TrainSpec
from modeld.types import from_timestamp
from modeld.v1 import model_manager_pb2 as pb

__all__ = ["Alias", "Policy", "Schedule", "Threshold"]

OPERATORS = (">=", ">", "<=", "<")


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A bound every new version must meet, e.g. ``Threshold("roc_auc", ">=", 0.95)``."""

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"op must be one of {' '.join(OPERATORS)}")

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Reads "roc_auc>=0.95" (spaces allowed).

        Args:
            text: metric, operator and number.

        Returns:
            The threshold. ValueError if the text is not of that form.
        """
        for op in OPERATORS:  # two-character operators first, so ">=" is not read as ">"
            metric, sep, value = text.partition(op)
            if sep:
                try:
                    return cls(metric.strip(), op, float(value))
                except ValueError:
                    break
        raise ValueError(f"{text!r} is not metric>=number (or >, <=, <)")

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclasses.dataclass(frozen=True)
class Policy:
    """How a new version earns activation (the quality gate)."""

    model: str
    primary_metric: str = ""
    _: dataclasses.KW_ONLY
    tolerance: float | None = None
    thresholds: tuple[Threshold, ...] = ()
    disabled: bool = False
    raw: pb.Policy | None = dataclasses.field(default=None, repr=False, compare=False)
    #: Freshness: GetStatus warns when the active version is older; 0 for no limit.
    max_age_seconds: float = 0.0
    #: Freshness: GetStatus warns when it was trained on fewer rows; 0 for no minimum.
    min_training_rows: int = 0
    #: Drift (GetDrift): a numeric feature's PSI that warns; 0 for the default 0.1.
    drift_psi_warn: float = 0.0
    #: Drift: the PSI that alerts; 0 for the default 0.25.
    drift_psi_alert: float = 0.0
    #: Drift: a categorical feature's Jensen-Shannon distance that alerts; 0 for 0.1.
    drift_js_alert: float = 0.0
    #: Drift: the share of drifted features at which the model alerts; 0 for 0.5.
    drift_share_alert: float = 0.0
    #: Drift: the share of this model's Predict rows sampled; None for the daemon's.
    monitor_sample: float | None = None
    #: Engine auto: datasets of more bytes than this train on the daemon's Dask
    #: cluster; 0: auto always trains locally.
    dask_above_bytes: int = 0

    def to_pb(self) -> pb.Policy:
        message = pb.Policy(model=self.model, primary_metric=self.primary_metric,
                            disabled=self.disabled,
                            thresholds=[pb.Threshold(metric=t.metric, op=t.op, value=t.value)
                                        for t in self.thresholds],
                            min_training_rows=self.min_training_rows,
                            drift_psi_warn=self.drift_psi_warn,
                            drift_psi_alert=self.drift_psi_alert,
                            drift_js_alert=self.drift_js_alert,
                            drift_share_alert=self.drift_share_alert,
                            dask_above_bytes=self.dask_above_bytes)
        if self.tolerance is not None:
            message.tolerance = self.tolerance
        if self.monitor_sample is not None:
            message.monitor_sample = self.monitor_sample
        if self.max_age_seconds:
            message.max_age.FromNanoseconds(round(self.max_age_seconds * 1e9))
        return message

    @classmethod
    def from_pb(cls, m: pb.Policy) -> Policy:
        return cls(m.model, m.primary_metric,
                   tolerance=m.tolerance if m.HasField("tolerance") else None,
                   thresholds=tuple(Threshold(t.metric, t.op, t.value) for t in m.thresholds
                                    if t.op in OPERATORS),
                   disabled=m.disabled, raw=m,
                   max_age_seconds=m.max_age.seconds + m.max_age.nanos / 1e9,
                   min_training_rows=m.min_training_rows,
                   drift_psi_warn=m.drift_psi_warn, drift_psi_alert=m.drift_psi_alert,
                   drift_js_alert=m.drift_js_alert, drift_share_alert=m.drift_share_alert,
                   monitor_sample=m.monitor_sample if m.HasField("monitor_sample") else None,
                   dask_above_bytes=m.dask_above_bytes)


@dataclasses.dataclass(frozen=True)
class Alias:
    """A named pointer to a version (version 0 after a delete)."""

    model: str
    alias: str
    version: int
    raw: pb.Alias = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_pb(cls, m: pb.Alias) -> Alias:
        return cls(m.model, m.alias, m.version, raw=m)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When a model retrains by itself, and what each run trains."""

    model: str
    train: TrainSpec
    _: dataclasses.KW_ONLY
    cron: str = ""
    interval_seconds: float = 0.0
    min_new_rows: int = 0
    min_interval_seconds: float = 0.0
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_outcome: str = ""
    on_drift: bool = False
    raw: pb.Schedule | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_pb(self) -> pb.Schedule:
        return pb.Schedule(model=self.model, cron=self.cron,
                           interval_seconds=self.interval_seconds,
                           min_new_rows=self.min_new_rows,
                           min_interval_seconds=self.min_interval_seconds,
                           train=self.train.to_pb(), on_drift=self.on_drift)

    @classmethod
    def from_pb(cls, m: pb.Schedule) -> Schedule:
        return cls(
            model=m.model, train=TrainSpec.from_pb(m.train), cron=m.cron,
            interval_seconds=m.interval_seconds, min_new_rows=m.min_new_rows,
            min_interval_seconds=m.min_interval_seconds,
            next_run_at=from_timestamp(m.next_run_at, m.HasField("next_run_at")),
            last_run_at=from_timestamp(m.last_run_at, m.HasField("last_run_at")),
            last_outcome=m.last_outcome, on_drift=m.on_drift, raw=m)


def thresholds(texts: Sequence[str]) -> tuple[Threshold, ...]:
    """Parses several "metric>=number" texts.

    Args:
        texts: One threshold each.

    Returns:
        The thresholds, in order. ValueError on the first malformed one.
    """
    return tuple(Threshold.parse(t) for t in texts)
