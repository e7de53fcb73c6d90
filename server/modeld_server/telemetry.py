"""Prometheus metrics. Counters and histograms are process-wide; gauges are read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from modeld_server import fastpaths


class _RememberedLabels:
    """labels() answered from a dict once a combination has been seen.

    prometheus_client checks and converts the values and takes a lock on every labels()
    call, 3-4 us each; Predict makes three. Children are never removed here, so a
    remembered child is the one the metric keeps.
    """

    _seen: dict[tuple[Any, ...], Any]

    def labels(self, *values: Any, **by_name: Any) -> Any:
        if by_name or not fastpaths.enabled():
            return super().labels(*values, **by_name)  # type: ignore[misc]
        try:
            return self._seen[values]
        except AttributeError:
            self._seen = {}
        except KeyError:
            pass
        child = super().labels(*values)  # type: ignore[misc]
        self._seen[values] = child
        return child


class Counter(_RememberedLabels, prometheus_client.Counter):
    pass


class Histogram(_RememberedLabels, prometheus_client.Histogram):
    pass


RPC_REQUESTS = Counter("modeld_rpc_requests", "RPCs answered, by method and status code.",
                       ["method", "code"])
RPC_STARTED = prometheus_client.Counter(
    "modeld_rpc_started", "RPCs taken from the network, of every service, before they run.")
RPC_LATENCY = Histogram(
    "modeld_rpc_duration_seconds", "RPC latency in seconds, by method.", ["method"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
             10, 30),
)
PREDICT_ROWS = Counter("modeld_predict_rows", "Rows predicted, by model.", ["model"])
JOBS_FINISHED = Counter("modeld_training_jobs", "Training jobs that ended, by final state.",
                        ["state"])
JOB_DURATION = Histogram("modeld_training_job_duration_seconds",
                         "Wall time of training jobs from start to end.",
                         buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
RELOADS = Counter("modeld_reloads", "Model version loads, by outcome (ok, failed).",
                  ["model", "outcome"])
RELOAD_LATENCY = Histogram("modeld_reload_duration_seconds",
                           "Verify + load + warm-up time of a version.",
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class StateCollector:
    """Gauges computed from the daemon's state when Prometheus scrapes."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        state = self._read()
        active = GaugeMetricFamily("modeld_active_version", "Active version on disk.",
                                   labels=["model"])
        loaded = GaugeMetricFamily("modeld_loaded_version", "Version answering Predict.",
                                   labels=["model"])
        for model, (active_version, loaded_version) in state["models"].items():
            active.add_metric([model], active_version)
            loaded.add_metric([model], loaded_version)
        yield active
        yield loaded
        yield from _drift_gauges(state.get("drift") or {})
        yield GaugeMetricFamily("modeld_jobs_queued", "Jobs waiting for a slot.",
                                value=state["queued"])
        yield GaugeMetricFamily("modeld_jobs_running", "Jobs training now.",
                                value=state["running"])


def _drift_gauges(reports: dict[str, Any]) -> Iterator[Metric]:
    """The last drift window of each model this replica serves (monitoring/monitor.py)."""
    feature = GaugeMetricFamily(
        "modeld_feature_drift", "Drift of a feature in the last window: PSI (numbers) or "
        "Jensen-Shannon distance (categories).", labels=["model", "feature"])
    prediction = GaugeMetricFamily(
        "modeld_prediction_drift", "PSI (or JS distance) of the model's output in the last "
        "window.", labels=["model"])
    for model, report in reports.items():
        for f in report.features:
            feature.add_metric([model, f.feature], f.value)
        if report.prediction is not None:
            prediction.add_metric([model], report.prediction.value)
    yield feature
    yield prediction


class _Combined:
    """The process-wide metrics plus one daemon's gauges, for one HTTP endpoint."""

    def __init__(self, collector: StateCollector) -> None:
        self._collector = collector

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()
        yield from self._collector.collect()


def registry_for(read: Callable[[], dict[str, Any]]) -> CollectorRegistry:
    """A registry exposing every modeld metric with this daemon's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Combined(StateCollector(read)))
    return registry
