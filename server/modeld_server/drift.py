"""What drift monitoring asks of the registry: the thresholds in a model's policy, and what
a crossing into alert does (the drift_alert event, then the on_drift schedule). The
service builds the monitor (monitoring/) with these as its callbacks."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from modeld_server.monitoring.report import DriftReport, Thresholds
from modeld_server.registry.meta import ModelMeta
from modeld_server.training.gate import Policy

log = structlog.get_logger(__name__)


class DriftHooks:
    """The monitor's callbacks."""

    def __init__(self, meta: ModelMeta, policy_of: Callable[..., Policy],
                 on_drift: Callable[[str, str], object]) -> None:
        """Args:
            policy_of: the model's policy (called with must_exist=False).
            on_drift: starts the model's on_drift schedule run, given why.
        """
        self._meta = meta
        self._policy_of = policy_of
        self._on_drift = on_drift

    def thresholds(self, model: str) -> Thresholds:
        return Thresholds(*self._policy_of(model, must_exist=False).drift_thresholds())

    def alert(self, report: DriftReport) -> None:
        """Called once per crossing into alert: the event, then the on_drift schedule."""
        fields = {"version": report.version, "replica": report.replica,
                  "features": report.alerting, "drifted_share": report.drifted_share,
                  "prediction": report.prediction.status if report.prediction else ""}
        self._meta.event(report.model, "drift_alert", **fields)
        log.warning("drift_alert", model=report.model, **fields)
        self._on_drift(report.model, _drift_reason(report))


def _drift_reason(report: DriftReport) -> str:
    alerting = report.alerting
    if report.prediction is not None and report.prediction.status == "alert":
        alerting = [*alerting, "prediction"]
    named = ", ".join(alerting[:5]) + (f" and {len(alerting) - 5} more" if len(alerting) > 5
                                       else "")
    return f"drift alert on version {report.version} ({named or 'drifted share'})"
