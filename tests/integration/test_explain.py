"""Predict with explain=True through a live daemon: contributions per row, by column name."""

from __future__ import annotations

import math

import grpc
import pandas as pd
import pytest

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import LiveDaemon


def records(model: str, rows: list[dict[str, object]]) -> pb.PredictRequest:
    request = pb.PredictRequest(model=model, explain=True)
    for row in rows:
        request.records.rows.add().update(row)
    return request


def mixed_rows(daemon: LiveDaemon, n: int = 20) -> list[dict[str, object]]:
    frame = pd.read_csv(daemon.data_root / "mixed.csv").drop(columns="label").iloc[:n]
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in frame.to_dict("records")]


class TestExplain:
    def test_xgboost_categorical_contributions_add_up_to_the_log_odds(
            self, daemon: LiveDaemon) -> None:
        """One explanation per row, keyed by the CSV's columns (color's one-hot summed);
        base + contributions = margin, and the margin is the log-odds Predict answers with."""
        job = daemon.train("mixed", path="mixed.csv", target="label", algorithm="xgboost",
                           cv_folds=2)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        response = daemon.stub.Predict(records("mixed", mixed_rows(daemon)))
        assert list(response.classes) == ["no", "yes"]
        assert len(response.explanations) == 20
        for i, e in enumerate(response.explanations):
            assert set(e.contributions) == {"color", "size [cm]", "weight"}
            assert e.class_label == "yes"
            assert e.base_value + sum(e.contributions.values()) == pytest.approx(
                e.margin, abs=1e-5)
            p_yes = response.probabilities[2 * i + 1]
            assert 1 / (1 + math.exp(-e.margin)) == pytest.approx(p_yes, abs=1e-6)
        assert max(abs(e.contributions["color"]) for e in response.explanations) > 0.1

    def test_ridge_dense_rows_add_up_to_the_prediction(self, daemon: LiveDaemon) -> None:
        """Dense rows explain too; without explain the response has no explanations."""
        job = daemon.train("diabetes", path="diabetes.csv", target="target", algorithm="ridge",
                           cv_folds=2)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        frame = pd.read_csv(daemon.data_root / "diabetes.csv").drop(columns="target").iloc[:5]
        dense = pb.DenseRows(columns=list(frame.columns),
                             values=frame.to_numpy(dtype=float).ravel().tolist())
        plain = daemon.stub.Predict(pb.PredictRequest(model="diabetes", dense=dense))
        assert not plain.explanations
        explained = daemon.stub.Predict(pb.PredictRequest(model="diabetes", dense=dense,
                                                          explain=True))
        assert list(explained.values) == list(plain.values)
        for value, e in zip(explained.values, explained.explanations, strict=True):
            assert e.class_label == ""
            assert set(e.contributions) == set(frame.columns)
            assert e.base_value + sum(e.contributions.values()) == pytest.approx(value, abs=1e-9)
            assert e.margin == pytest.approx(value, abs=1e-9)

    def test_random_forest_is_failed_precondition_naming_it(self, daemon: LiveDaemon) -> None:
        job = daemon.train("mixed", path="mixed.csv", target="label",
                           algorithm="random_forest", cv_folds=2)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Predict(records("mixed", mixed_rows(daemon, 2)))
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "explain is not available for algorithm 'random_forest' (version 1 of 'mixed'); "
            "it is for xgboost, logistic_regression, ridge")
