"""Drift monitoring's side of the service facade: GetDrift, the status GetStatus shows, the
thresholds the monitor reads, and what a crossing into alert does (the drift_alert event,
the on_drift schedule). ModelService inherits it and builds the monitor (monitoring/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from modeld_server.errors import NotFound
from modeld_server.monitoring.report import DriftReport, Thresholds

if TYPE_CHECKING:
    from modeld_server.service import ModelService

log = structlog.get_logger(__name__)


class DriftMixin:
    """GetDrift and the monitor's callbacks; mixed into ModelService."""

    def get_drift(self: ModelService, model: str) -> DriftReport:
        """This replica's drift of the model's serving version.

        Raises:
            NotFound: the model, or no version of it is loaded.
        """
        view = self.server.view(self._known(model))
        if not view.loaded:
            raise NotFound(f"model {model!r} has no loaded version to monitor")
        return self.monitor.report(model, view.loaded)

    def drift_status(self: ModelService, model: str, loaded: int) -> str:
        """For GetStatus: the serving version's drift status ("" when none is loaded)."""
        return self.monitor.status(model, loaded) if loaded else ""

    def _drift_thresholds(self: ModelService, model: str) -> Thresholds:
        return Thresholds(*self.get_policy(model, must_exist=False).drift_thresholds())

    def _drift_alert(self: ModelService, report: DriftReport) -> None:
        """Called once per crossing into alert: the event, then the on_drift schedule."""
        fields = {"version": report.version, "replica": report.replica,
                  "features": report.alerting, "drifted_share": report.drifted_share,
                  "prediction": report.prediction.status if report.prediction else ""}
        self.meta.event(report.model, "drift_alert", **fields)
        log.warning("drift_alert", model=report.model, **fields)
        self.scheduler.on_drift(report.model, _drift_reason(report))


def _drift_reason(report: DriftReport) -> str:
    alerting = report.alerting
    if report.prediction is not None and report.prediction.status == "alert":
        alerting = [*alerting, "prediction"]
    named = ", ".join(alerting[:5]) + (f" and {len(alerting) - 5} more" if len(alerting) > 5
                                       else "")
    return f"drift alert on version {report.version} ({named or 'drifted share'})"
