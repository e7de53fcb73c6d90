"""predict: rows go dense when all numeric, else as records; predictions come back in order."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from google.protobuf import json_format

import modeld
from modeld._predict import encode_rows
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Running, running_fake


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


def records(message: pb.RecordRows) -> list[dict[str, Any]]:
    return [json_format.MessageToDict(row) for row in message.rows]


class TestEncodeRows:
    def test_all_numeric_dicts_go_dense_row_major(self) -> None:
        """Numbers only: DenseRows with the columns once and values row by row."""
        encoded = encode_rows([{"a": 1, "b": 2.5}, {"a": 3, "b": 4.0}])
        assert isinstance(encoded, pb.DenseRows)
        assert list(encoded.columns) == ["a", "b"]
        assert list(encoded.values) == [1.0, 2.5, 3.0, 4.0]

    def test_missing_numbers_go_dense_as_nan(self) -> None:
        """None and NaN are missing values: NaN in dense rows."""
        encoded = encode_rows([{"a": None, "b": float("nan")}])
        assert isinstance(encoded, pb.DenseRows)
        assert all(math.isnan(v) for v in encoded.values)

    def test_a_string_makes_records(self) -> None:
        """Any non-numeric value sends every row as a Struct record, values kept."""
        encoded = encode_rows([{"color": "red", "size": 1.5}, {"color": None, "size": 2}])
        assert isinstance(encoded, pb.RecordRows)
        assert records(encoded) == [{"color": "red", "size": 1.5}, {"color": None, "size": 2.0}]

    def test_bools_make_records(self) -> None:
        """A bool is not sent as 1.0: records keep it a bool."""
        encoded = encode_rows([{"flag": True}])
        assert isinstance(encoded, pb.RecordRows)
        assert records(encoded) == [{"flag": True}]

    def test_rows_with_different_columns_make_records(self) -> None:
        """Dense rows need the same columns in every row; otherwise records."""
        encoded = encode_rows([{"a": 1.0}, {"b": 2.0}])
        assert isinstance(encoded, pb.RecordRows)

    def test_unsupported_values_are_a_type_error_naming_the_column(self) -> None:
        """A value a Struct cannot hold fails before anything is sent."""
        with pytest.raises(TypeError, match="column 'when': cannot send a object"):
            encode_rows([{"when": object()}])

    def test_numeric_dataframe_goes_dense(self) -> None:
        """A DataFrame of numbers goes dense, NaN kept as missing."""
        frame = pd.DataFrame({"a": [1, 2], "b": [0.5, float("nan")]})
        encoded = encode_rows(frame)
        assert isinstance(encoded, pb.DenseRows)
        assert list(encoded.columns) == ["a", "b"]
        assert encoded.values[:3] == [1.0, 0.5, 2.0] and math.isnan(encoded.values[3])

    def test_mixed_dataframe_goes_as_records_with_nulls(self) -> None:
        """A DataFrame with strings goes as records; NaN and None become null."""
        frame = pd.DataFrame({"color": ["red", None], "size": [1.5, float("nan")]})
        encoded = encode_rows(frame)
        assert isinstance(encoded, pb.RecordRows)
        assert records(encoded) == [{"color": "red", "size": 1.5}, {"color": None, "size": None}]


class TestPredictions:
    def test_classification_keeps_row_order_and_reshapes_probabilities(
            self, live: Running) -> None:
        """Labels in row order; probabilities one tuple per row in the order of classes."""
        live.fake.on("Predict", pb.PredictResponse(
            model="spam", version=2, task=pb.TASK_CLASSIFICATION, labels=["1", "0", "1"],
            classes=["0", "1"], probabilities=[0.1, 0.9, 0.8, 0.2, 0.3, 0.7]))
        with modeld.Client(live.address) as client:
            result = client.predict("spam", [{"a": 1.0}, {"a": 2.0}, {"a": 3.0}])
        assert list(result) == ["1", "0", "1"]
        assert len(result) == 3 and result[1] == "0"
        assert result.probabilities == ((0.1, 0.9), (0.8, 0.2), (0.3, 0.7))
        assert result.records()[0] == {"prediction": "1", "probabilities": {"0": 0.1, "1": 0.9}}
        request = live.fake.requests("Predict")[0]
        assert request.WhichOneof("rows") == "dense"

    def test_regression_predictions_are_the_values(self, live: Running) -> None:
        """For regression, iterating gives the predicted values."""
        live.fake.on("Predict", pb.PredictResponse(task=pb.TASK_REGRESSION, values=[1.5, -2.0]))
        with modeld.Client(live.address) as client:
            result = client.predict("price", [{"a": 1.0}, {"a": 2.0}])
        assert list(result) == [1.5, -2.0]
        assert result.task is modeld.Task.REGRESSION

    def test_anomaly_detection_carries_scores(self, live: Running) -> None:
        """Anomaly detection: labels anomaly/normal, with each row's score in records()."""
        live.fake.on("Predict", pb.PredictResponse(
            task=pb.TASK_ANOMALY_DETECTION, labels=["normal", "anomaly"],
            anomaly_scores=[0.1, 0.9]))
        with modeld.Client(live.address) as client:
            result = client.predict("fraud", [{"a": 1.0}, {"a": 9.0}])
        assert result.records() == [{"prediction": "normal", "anomaly_score": 0.1},
                                    {"prediction": "anomaly", "anomaly_score": 0.9}]

    def test_pinned_version_is_sent(self, live: Running) -> None:
        """version= pins the version answering."""
        live.fake.on("Predict", pb.PredictResponse(task=pb.TASK_REGRESSION, values=[1.0]))
        with modeld.Client(live.address) as client:
            client.predict("price", [{"a": 1.0}], version=3)
        assert live.fake.requests("Predict")[0].version == 3
