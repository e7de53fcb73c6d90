"""modelctl predict --explain against a scripted daemon: what it sends and prints."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from modeld import Explanation
from modeld.cli import app
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Running, running_fake

runner = CliRunner()
REPLY = pb.PredictResponse(
    model="spam", version=2, task=pb.TASK_CLASSIFICATION, labels=["1", "0"],
    classes=["0", "1"], probabilities=[0.1, 0.9, 0.8, 0.2],
    explanations=[
        pb.Explanation(class_label="1", margin=2.0, base_value=-0.5,
                       contributions={"a": 0.25, "zip": 2.5, "b": -0.25}),
        pb.Explanation(class_label="1", margin=-1.0, base_value=-0.5,
                       contributions={"a": -0.75, "zip": 0.0, "b": 0.25}),
    ])


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        live = running
        live.fake.on("GetVersion", pb.Version(model="spam", version=2))
        yield live


class TestPredictExplain:
    def test_explain_asks_for_explanations_and_prints_the_top_ones(self, live: Running) -> None:
        """--explain sets PredictRequest.explain; each row lists its largest contributions
        first, signed, after the predictions table."""
        live.fake.on("Predict", REPLY)
        result = runner.invoke(app, ["--address", live.address, "predict", "spam", "-",
                                     "--explain"], input='[{"a": 1.0, "b": 2.0}, '
                                                         '{"a": 2.0, "b": 1.0}]')
        assert result.exit_code == 0, result.output
        assert live.fake.requests("Predict")[0].explain is True
        lines = [line.split() for line in result.stdout.splitlines()]
        assert lines[-3][:4] == ["ROW", "CLASS", "MARGIN", "BASE"]
        assert lines[-2] == ["0", "1", "2.0000", "-0.5000", "zip", "+2.5000,", "a", "+0.2500,",
                             "b", "-0.2500"]
        assert lines[-1] == ["1", "1", "-1.0000", "-0.5000", "a", "-0.7500,", "b", "+0.2500,",
                             "zip", "+0.0000"]

    def test_without_explain_nothing_is_asked(self, live: Running) -> None:
        plain = pb.PredictResponse()
        plain.CopyFrom(REPLY)
        plain.ClearField("explanations")
        live.fake.on("Predict", plain)
        result = runner.invoke(app, ["--address", live.address, "predict", "spam", "-"],
                               input='[{"a": 1.0, "b": 2.0}]')
        assert result.exit_code == 0, result.output
        assert live.fake.requests("Predict")[0].explain is False
        assert "CLASS" not in result.stdout

    def test_json_puts_each_explanation_beside_its_prediction(self, live: Running) -> None:
        live.fake.on("Predict", REPLY)
        result = runner.invoke(app, ["--address", live.address, "--json", "predict", "spam",
                                     "-", "--explain"], input='[{"a": 1.0}, {"a": 2.0}]')
        data = json.loads(result.stdout)
        assert data["predictions"][0]["explanation"] == {
            "class_label": "1", "margin": 2.0, "base_value": -0.5,
            "contributions": {"a": 0.25, "zip": 2.5, "b": -0.25}}
        assert data["predictions"][1]["explanation"]["margin"] == -1.0


class TestExplanation:
    def test_top_orders_by_absolute_value_then_name(self) -> None:
        e = Explanation("1", 0.0, 0.0, {"b": -3.0, "a": 3.0, "c": 0.5, "d": -0.1})
        assert e.top(3) == [("a", 3.0), ("b", -3.0), ("c", 0.5)]
