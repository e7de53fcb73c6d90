"""--no-fast-paths: each fast path steps aside for the library's own, with the same answer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server import fastpaths
from modeld_server.config import load_settings
from modeld_server.features import FeatureSchema
from modeld_server.rpc.struct_rows import StructRows
from modeld_server.telemetry import Counter
from modeld_server.training import gate

SPAMBASE = Path(__file__).resolve().parents[2] / "data" / "spambase.csv"


@pytest.fixture
def off() -> Iterator[None]:
    fastpaths.set_enabled(False)
    yield
    fastpaths.set_enabled(True)


def _wire(rows: list[dict[str, float]]) -> bytes:
    message = pb.RecordRows()
    for row in rows:
        message.rows.add().update(row)
    return message.SerializeToString()


def test_the_setting_is_a_switch_on_by_default() -> None:
    assert load_settings([], env={}).fast_paths
    assert not load_settings(["--no-fast-paths"], env={}).fast_paths
    assert not load_settings([], env={"MODELD_FAST_PATHS": "false"}).fast_paths


def test_records_are_parsed_by_protobuf(off: None) -> None:
    """No hand-decoded view, so features take the dict path: the same matrix."""
    frame = pd.read_csv(SPAMBASE).drop(columns="is_spam").iloc[:20]
    rows = StructRows(_wire(frame.to_dict("records")))
    assert rows.uniform_numbers() is None
    assert len(rows) == 20
    schema = FeatureSchema(numeric=tuple(frame.columns), categorical=(), target="is_spam")
    fastpaths.set_enabled(True)
    fast = schema.matrix_from_records(StructRows(_wire(frame.to_dict("records"))))
    fastpaths.set_enabled(False)
    np.testing.assert_array_equal(schema.matrix_from_records(rows), fast)


def test_row_hashes_are_hash_pandas_object_itself(off: None) -> None:
    frame = pd.read_csv(SPAMBASE)
    features = [c for c in frame.columns if c != "is_spam"]
    alone, labeled, none = gate.hashes_of_rows(frame, [features, [*features, "is_spam"], []])
    fastpaths.set_enabled(True)
    expected = gate.hashes_of_rows(frame, [features, [*features, "is_spam"], []])
    for got, want in zip((alone, labeled, none), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_metric_children_come_from_prometheus_each_time(off: None) -> None:
    registry = CollectorRegistry()
    counter = Counter("t_off_calls", "calls", ["method"], registry=registry)
    counter.labels("Predict").inc()
    counter.labels("Predict").inc()
    assert not hasattr(counter, "_seen")
    assert b't_off_calls_total{method="Predict"} 2.0' in generate_latest(registry)


def test_log_lines_are_stamped_by_structlog_alike() -> None:
    """With the fast paths off, structlog's TimeStamper writes the same format, for our
    lines and the standard library's."""
    code = (
        "import logging, structlog\n"
        "from modeld_server import logging as modeld_logging\n"
        "modeld_logging.configure('json', 'info', fast_paths=False)\n"
        "structlog.get_logger('modeld').info('ours')\n"
        "logging.getLogger('grpc').warning('theirs')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [x["event"] for x in lines] == ["ours", "theirs"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", x["timestamp"])
               for x in lines)
