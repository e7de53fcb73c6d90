"""The V2 tests' daemon: one subprocess for the session, shared by gRPC and HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeld.v1 import model_manager_pb2 as pb
from tests.integration.oip_daemon import Served, serve


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """spam v1 (logistic regression) and v2 (xgboost, active), alias champion -> v1;
    mixed (categorical, missing values), diabetes (regression), blobs (anomalies).
    V2 over HTTP too. Tests that change it put it back."""
    daemon = serve(tmp_path_factory.mktemp("oip"), "--metrics-listen", "127.0.0.1:0",
                   http=True)
    try:
        daemon.train("spam", "spambase.csv", "is_spam", "logistic_regression")
        daemon.train("spam", "spambase.csv", "is_spam", "xgboost")
        daemon.stub.SetAlias(pb.SetAliasRequest(model="spam", alias="champion", version=1))
        daemon.train("mixed", "mixed.csv", "label", "xgboost")
        daemon.train("diabetes", "diabetes.csv", "target", "ridge")
        daemon.train("blobs", "anomalies.csv", "", "isolation_forest")
        yield daemon
    finally:
        daemon.stop()
