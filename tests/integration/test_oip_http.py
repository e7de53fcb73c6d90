"""The Open Inference Protocol (V2) over HTTP/JSON, driven by tritonclient.http and by
plain JSON requests (what curl sends), against the daemon subprocess of conftest."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import SPAMBASE
from tests.integration.oip_daemon import MAX_ROWS, Served

FEATURES = pd.read_csv(SPAMBASE).drop(columns="is_spam")
Client = triton.InferenceServerClient


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[Client]:
    c = triton.InferenceServerClient(served.http_address)
    yield c
    c.close()


def call(served: Served, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """(status, decoded JSON) of a plain HTTP/JSON request, as curl would send it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{served.http_address}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def predict_dense(served: Served, frame: pd.DataFrame, version: int = 0) -> pb.PredictResponse:
    return served.stub.Predict(pb.PredictRequest(model="spam", version=version, dense=pb.DenseRows(
        columns=list(frame.columns), values=frame.to_numpy(dtype=np.float64).ravel().tolist())))


class TestTritonClient:
    def test_health_and_metadata(self, client: Client) -> None:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("spam") and client.is_model_ready("spam", "champion")
        assert client.get_server_metadata()["extensions"] == ["model_repository",
                                                             "binary_tensor_data"]
        meta = client.get_model_metadata("mixed")
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("size [cm]", "FP64"), ("weight", "FP64"), ("color", "BYTES")]
        assert meta["versions"] == ["1"]

    @pytest.mark.parametrize("binary", [True, False])
    def test_fp64_equals_predict_exactly(self, served: Served, client: Client,
                                         binary: bool) -> None:
        """Binary tensors (tritonclient's default) and JSON data alike."""
        rows = FEATURES.iloc[:30]
        tensor = triton.InferInput("input", [30, 57], "FP64")
        tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float64), binary_data=binary)
        outputs = [triton.InferRequestedOutput(n, binary_data=binary)
                   for n in ("label", "probabilities")]
        result = client.infer("spam", [tensor], outputs=outputs, request_id="h-1")
        expected = predict_dense(served, rows)
        response = result.get_response()
        assert (response["model_name"], response["model_version"], response["id"]) == (
            "spam", "2", "h-1")
        assert result.as_numpy("probabilities").ravel().tolist() == list(expected.probabilities)
        assert [v.decode() if binary else v for v in result.as_numpy("label")] == \
            list(expected.labels)

    def test_pinned_version_and_alias(self, served: Served, client: Client) -> None:
        rows = FEATURES.iloc[:3]
        tensor = triton.InferInput("input", [3, 57], "FP32")
        tensor.set_data_from_numpy(rows.to_numpy(dtype=np.float32))
        for version, answered in (("1", "1"), ("champion", "1"), ("", "2")):
            result = client.infer("spam", [tensor], model_version=version)
            assert result.get_response()["model_version"] == answered
            expected = predict_dense(served, rows.astype(np.float32).astype(np.float64),
                                     int(answered))
            assert result.as_numpy("probabilities").ravel().tolist() == \
                list(expected.probabilities)

    def test_errors_carry_the_status_and_message(self, client: Client) -> None:
        tensor = triton.InferInput("input", [1, 57], "FP64")
        tensor.set_data_from_numpy(np.zeros((1, 57)))
        with pytest.raises(InferenceServerException) as err:
            client.infer("nope", [tensor])
        assert (err.value.status(), err.value.message()) == ("404", "model 'nope' not found")
        with pytest.raises(InferenceServerException) as err:
            client.unload_model("spam")
        assert err.value.status() == "409"

    def test_repository_index(self, client: Client) -> None:
        index = client.get_model_repository_index()
        assert [(m["version"], m["state"]) for m in index if m["name"] == "spam"] == [
            ("2", "READY"), ("1", "READY")]


def mixed_records(served: Served) -> list[dict[str, Any]]:
    frame = pd.read_csv(served.base / "data" / "mixed.csv").drop(columns="label")
    rows = pd.concat([frame[frame["color"].isna()].head(2),
                      frame[frame["size [cm]"].isna()].head(2), frame.head(3)])
    return [{k: (None if v != v else v) for k, v in r.items()} for r in rows.to_dict("records")]


class TestJson:
    def test_per_column_with_nulls_equals_predict_records(self, served: Served) -> None:
        """JSON data per column, null as a missing value in numbers and strings."""
        records = mixed_records(served)
        inputs = [{"name": c, "datatype": "BYTES" if c == "color" else "FP64",
                   "shape": [len(records), 1], "data": [r[c] for r in records]}
                  for c in ("color", "size [cm]", "weight")]
        status, body = call(served, "POST", "/v2/models/mixed/infer",
                            {"parameters": {"content_type": "pd"}, "inputs": inputs})
        request = pb.PredictRequest(model="mixed")
        for record in records:
            request.records.rows.add().update(record)
        expected = served.stub.Predict(request)
        assert status == 200
        label, proba = body["outputs"]
        assert (label["name"], label["data"]) == ("label", list(expected.labels))
        assert proba["data"] == list(expected.probabilities)
        assert json.loads(proba["parameters"]["classes"]) == list(expected.classes)

    def test_nested_data_and_a_version_in_the_path(self, served: Served) -> None:
        rows = FEATURES.iloc[:2].to_numpy().tolist()
        status, body = call(served, "POST", "/v2/models/spam/versions/1/infer",
                            {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 57],
                                         "data": rows}],
                             "outputs": [{"name": "probabilities"}]})
        assert status == 200 and body["model_version"] == "1"
        assert body["outputs"][0]["data"] == list(
            predict_dense(served, FEATURES.iloc[:2], 1).probabilities)

    @pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
        ("POST", "/v2/models/spam/infer", {"inputs": [{"name": "x", "datatype": "FP64",
                                                       "shape": [1, 2], "data": [1, 2]}]},
         400, "input 'x' has shape [1, 2], but model 'spam' has 57 feature columns: send "
              "[N, 57] in the order of ModelMetadata's inputs, or one tensor per column named "
              "after it"),
        ("POST", "/v2/models/spam/infer", {"inputs": [{"name": "x", "datatype": "FP64",
                                                       "shape": [1, 57], "data": [1]}]},
         400, "inputs[0] 'x': data has 1 elements, but shape [1, 57] needs 57"),
        ("POST", "/v2/models/spam/infer", {"inputs": "x"},
         400, "inputs is required: a list of tensors {name, datatype, shape, data}"),
        ("POST", "/v2/models/spam/infer", {"inputs": [{"name": "x", "datatype": "FP64",
                                                       "shape": [MAX_ROWS + 1, 57],
                                                       "data": [0.0] * (57 * (MAX_ROWS + 1))}]},
         413, f"{MAX_ROWS + 1} rows exceed max_predict_rows={MAX_ROWS}"),
        ("GET", "/v2/models/spam/versions/9", None, 404,
         "version 9 of model 'spam' not found"),
        ("GET", "/v2/models/spam/versions/9/ready", None, 404,
         "version 9 of model 'spam' not found"),
        ("POST", "/v2/repository/models/spam/unload", {}, 409,
         "modeld always serves each model's active version, so 'spam' cannot be unloaded: "
         "activate another version (RepositoryModelLoad with parameter \"version\", or "
         "Rollback)"),
        ("GET", "/v2/models/spam/infer", None, 405, "GET /v2/models/spam/infer: use POST"),
        ("GET", "/v2/nothing/here", None, 404, "no V2 route GET /v2/nothing/here"),
    ])
    def test_errors_are_precise(self, served: Served, method: str, path: str, body: Any,
                                status: int, error: str) -> None:
        assert call(served, method, path, body) == (status, {"error": error})

    def test_a_body_that_is_not_json(self, served: Served) -> None:
        request = urllib.request.Request(f"http://{served.http_address}/v2/models/spam/infer",
                                         data=b"{nope", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=60)
        assert err.value.code == 400
        assert json.loads(err.value.read())["error"].startswith(
            "the request body is not valid JSON: Expecting property name")

    def test_load_with_a_version_activates_it(self, served: Served) -> None:
        try:
            assert call(served, "POST", "/v2/repository/models/spam/load",
                        {"parameters": {"version": "1"}}) == (200, {})
            status = served.stub.GetStatus(pb.GetStatusRequest(model="spam")).models[0]
            assert status.active_version == 1
        finally:
            assert call(served, "POST", "/v2/repository/models/spam/load",
                        {"parameters": {"version": 2}}) == (200, {})
        assert served.stub.GetStatus(pb.GetStatusRequest(model="spam")).models[0] \
            .active_version == 2
