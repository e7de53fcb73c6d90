"""Metric children are remembered, and stay the ones Prometheus exports."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from modeld_server.telemetry import Counter, Histogram


def test_labels_returns_the_same_child_each_time() -> None:
    registry = CollectorRegistry()
    counter = Counter("t_calls", "calls", ["method", "code"], registry=registry)
    first = counter.labels("Predict", "OK")
    assert counter.labels("Predict", "OK") is first
    assert counter.labels(method="Predict", code="OK") is first
    first.inc(2)
    counter.labels("Predict", "OK").inc()
    assert b't_calls_total{code="OK",method="Predict"} 3.0' in generate_latest(registry)


def test_histogram_children_observe_into_the_export() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("t_seconds", "latency", ["method"], buckets=(0.1, 1), registry=registry)
    for _ in range(3):
        histogram.labels("Predict").observe(0.05)
    assert b't_seconds_count{method="Predict"} 3.0' in generate_latest(registry)
