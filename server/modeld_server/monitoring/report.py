"""What the drift monitor reports: thresholds, per-feature drift, a model's status."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np

from modeld_server.monitoring import divergence
from modeld_server.monitoring import profile as profiles

OK, WARN, ALERT, PENDING = "ok", "warn", "alert", "pending"
NO_PROFILE = "no_profile"


@dataclass(frozen=True)
class Thresholds:
    """A model's drift thresholds (its policy's, these defaults otherwise)."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    js_alert: float = 0.1
    share_alert: float = 0.5


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or the output's) drift in the last full window."""

    feature: str
    metric: str  # "psi" or "js"
    value: float
    warn: float
    alert: float
    status: str


@dataclass
class DriftReport:
    """A model's drift as this replica sees it."""

    model: str
    version: int
    _: KW_ONLY
    replica: str
    status: str = PENDING
    window_size: int = 0
    """Rows in the last closed window (--monitor-window, fewer when closed by time)."""
    window_rows: int = 0
    """Sampled rows in the window being filled."""
    sampled: int = 0
    dropped: int = 0
    windows: int = 0
    computed_at: float | None = None
    features: list[FeatureDrift] = field(default_factory=list)
    prediction: FeatureDrift | None = None
    drifted_share: float = 0.0
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def alerting(self) -> list[str]:
        return [f.feature for f in self.features if f.status == ALERT]


def drift_of(name: str, reference: dict[str, Any], values: Any, t: Thresholds) -> FeatureDrift:
    """One feature's (or the output's) drift: `values` binned as `reference` bins, PSI for
    a numeric profile, Jensen-Shannon distance for a categorical one."""
    live = profiles.counts_like(reference, values)
    ref = np.asarray(reference["counts"])
    if reference["kind"] == "numeric":
        value = divergence.psi(ref, live)
        status = ALERT if value >= t.psi_alert else WARN if value >= t.psi_warn else OK
        return FeatureDrift(name, "psi", value, t.psi_warn, t.psi_alert, status)
    value = divergence.js_distance(ref, live)
    return FeatureDrift(name, "js", value, t.js_alert, t.js_alert,
                        ALERT if value >= t.js_alert else OK)


def model_status(report: DriftReport, t: Thresholds) -> str:
    """alert: a feature or the prediction alerts, or drifted features reach share_alert;
    warn: something warns; ok otherwise."""
    every = [*report.features, *([report.prediction] if report.prediction else [])]
    if any(f.status == ALERT for f in every) or (
            report.features and report.drifted_share >= t.share_alert):
        return ALERT
    return WARN if any(f.status == WARN for f in every) else OK
