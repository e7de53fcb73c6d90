"""The Open Inference Protocol (V2) over gRPC, driven by the real tritonclient.

The daemon runs in a separate process (the `served` fixture in conftest); this process
imports both tritonclient.grpc and modeld, and compares V2's answers with modeld's Predict.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from modeld.oip.v2 import inference_pb2 as oip
from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import SPAMBASE
from tests.integration.oip_daemon import MAX_ROWS, Served

FEATURES = pd.read_csv(SPAMBASE).drop(columns="is_spam")
Client = triton.InferenceServerClient


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[Client]:
    with triton.InferenceServerClient(served.address) as c:
        yield c


def dense_input(frame: pd.DataFrame, datatype: str = "FP64",
                name: str = "input") -> triton.InferInput:
    values = frame.to_numpy(dtype=np.float64 if datatype == "FP64" else np.float32)
    tensor = triton.InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values)
    return tensor


def predict_dense(served: Served, frame: pd.DataFrame, version: int = 0) -> pb.PredictResponse:
    return served.stub.Predict(pb.PredictRequest(model="spam", version=version, dense=pb.DenseRows(
        columns=list(frame.columns), values=frame.to_numpy(dtype=np.float64).ravel().tolist())))


def failure(call: object) -> tuple[str, str]:
    """The (status, message) tritonclient raised for `call()`."""
    with pytest.raises(InferenceServerException) as err:
        call()  # type: ignore[operator]
    return err.value.status(), err.value.message()


class TestHealthAndMetadata:
    def test_live_ready_and_server_metadata(self, client: Client) -> None:
        assert client.is_server_live() and client.is_server_ready()
        meta = client.get_server_metadata()
        assert (meta.name, meta.version, list(meta.extensions)) == (
            "modeld", "0.1.0", ["model_repository", "binary_tensor_data"])

    def test_model_metadata_publishes_the_column_order_and_loaded_versions(
            self, client: Client) -> None:
        meta = client.get_model_metadata("spam")
        assert meta.name == "spam" and list(meta.versions) == ["1", "2"]
        assert meta.platform == "modeld_xgboost"
        assert [i.name for i in meta.inputs] == list(FEATURES.columns)
        assert {(i.datatype, tuple(i.shape)) for i in meta.inputs} == {("FP64", (-1, 1))}
        assert [(o.name, o.datatype, list(o.shape)) for o in meta.outputs] == [
            ("label", "BYTES", [-1]), ("probabilities", "FP64", [-1, 2])]
        assert client.get_model_metadata("spam", "champion").platform == \
            "modeld_logistic_regression"

    def test_categorical_columns_come_last_as_bytes(
            self, client: Client) -> None:
        meta = client.get_model_metadata("mixed")
        assert [(i.name, i.datatype) for i in meta.inputs] == [
            ("size [cm]", "FP64"), ("weight", "FP64"), ("color", "BYTES")]

    @pytest.mark.parametrize(("version", "ready"), [("", True), ("2", True), ("1", True),
                                                     ("champion", True)])
    def test_model_ready_for_loaded_versions(self, client: Client,
                                             version: str, ready: bool) -> None:
        assert client.is_model_ready("spam", version) is ready

    def test_model_ready_for_unknown_ones_is_not_found(
            self, client: Client) -> None:
        assert failure(lambda: client.is_model_ready("nope")) == (
            "StatusCode.NOT_FOUND", "model 'nope' not found")
        assert failure(lambda: client.is_model_ready("spam", "9")) == (
            "StatusCode.NOT_FOUND", "version 9 of model 'spam' not found")


class TestInferDense:
    """One [N, F] tensor in ModelMetadata's column order, as tritonclient sends it (raw)."""

    def test_fp64_equals_predict_exactly(self, served: Served,
                                         client: Client) -> None:
        rows = FEATURES.iloc[:40]
        result = client.infer("spam", [dense_input(rows)], request_id="r-1")
        expected = predict_dense(served, rows)
        response = result.get_response()
        assert (response.model_name, response.model_version, response.id) == ("spam", "2", "r-1")
        proba = result.as_numpy("probabilities")
        assert proba.dtype == np.float64 and proba.shape == (40, 2)
        assert proba.ravel().tolist() == list(expected.probabilities)
        assert [v.decode() for v in result.as_numpy("label")] == list(expected.labels)
        classes = result.get_output("probabilities").parameters["classes"].string_param
        assert json.loads(classes) == list(expected.classes) == ["0", "1"]

    def test_fp32_equals_predict_on_the_same_float32_values(
            self, served: Served, client: Client) -> None:
        rows = FEATURES.iloc[40:60]
        result = client.infer("spam", [dense_input(rows, "FP32")])
        expected = predict_dense(served, rows.astype(np.float32).astype(np.float64))
        assert result.as_numpy("probabilities").ravel().tolist() == list(expected.probabilities)

    @pytest.mark.parametrize(("version", "answered"), [("", "2"), ("2", "2"), ("1", "1"),
                                                       ("champion", "1")])
    def test_model_version_pins_a_version_or_names_an_alias(
            self, served: Served, client: Client, version: str,
            answered: str) -> None:
        rows = FEATURES.iloc[:5]
        result = client.infer("spam", [dense_input(rows)], model_version=version)
        assert result.get_response().model_version == answered
        expected = predict_dense(served, rows, int(answered))
        assert result.as_numpy("probabilities").ravel().tolist() == list(expected.probabilities)

    def test_outputs_select_what_comes_back(self, client: Client) -> None:
        result = client.infer("spam", [dense_input(FEATURES.iloc[:3])],
                              outputs=[triton.InferRequestedOutput("label")])
        assert [o.name for o in result.get_response().outputs] == ["label"]
        assert result.as_numpy("probabilities") is None

    def test_regression_answers_value(self, served: Served,
                                      client: Client) -> None:
        frame = pd.read_csv(served.base / "data" / "diabetes.csv").drop(columns="target")
        result = client.infer("diabetes", [dense_input(frame.iloc[:7])])
        expected = served.stub.Predict(pb.PredictRequest(model="diabetes", dense=pb.DenseRows(
            columns=list(frame.columns), values=frame.iloc[:7].to_numpy().ravel().tolist())))
        assert [o.name for o in result.get_response().outputs] == ["value"]
        assert result.as_numpy("value").tolist() == list(expected.values)

    def test_anomaly_detection_answers_label_and_score(
            self, served: Served, client: Client) -> None:
        frame = pd.read_csv(served.base / "data" / "anomalies.csv")  # no target: 4 features
        result = client.infer("blobs", [dense_input(frame.iloc[:9])])
        expected = served.stub.Predict(pb.PredictRequest(model="blobs", dense=pb.DenseRows(
            columns=list(frame.columns), values=frame.iloc[:9].to_numpy().ravel().tolist())))
        assert result.as_numpy("anomaly_score").tolist() == list(expected.anomaly_scores)
        assert [v.decode() for v in result.as_numpy("label")] == list(expected.labels)


def mixed_rows(served: Served) -> pd.DataFrame:
    """Rows of mixed.csv with a missing color and a missing size among them."""
    frame = pd.read_csv(served.base / "data" / "mixed.csv").drop(columns="label")
    rows = pd.concat([frame[frame["color"].isna()].head(3), frame[frame["size [cm]"].isna()]
                      .head(3), frame.head(6)])
    assert rows["color"].isna().any() and rows["size [cm]"].isna().any()
    return rows


def records_request(model: str, rows: pd.DataFrame) -> pb.PredictRequest:
    """Predict's records for `rows`, NaN sent as null."""
    request = pb.PredictRequest(model=model)
    for record in rows.to_dict("records"):
        request.records.rows.add().update({k: (None if v != v else v) for k, v in record.items()})
    return request


def column_inputs(rows: pd.DataFrame) -> list[triton.InferInput]:
    """MLServer PandasCodec's form: one [N, 1] tensor per column, strings as BYTES."""
    inputs = []
    for name in rows.columns:
        column = rows[name]
        if not pd.api.types.is_numeric_dtype(column):
            values = np.array([b"" if v is None or v != v else v.encode() for v in column],
                              dtype=object).reshape(-1, 1)
            tensor = triton.InferInput(name, [len(rows), 1], "BYTES")
        else:
            values = column.to_numpy(dtype=np.float64).reshape(-1, 1)
            tensor = triton.InferInput(name, [len(rows), 1], "FP64")
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


class TestInferPerColumn:
    def test_bytes_and_fp64_columns_equal_predict_records(
            self, served: Served, client: Client) -> None:
        """Missing values: NaN in a number column, an empty string in a BYTES one."""
        rows = mixed_rows(served)
        result = client.infer("mixed", column_inputs(rows), parameters={"content_type": "pd"})
        expected = served.stub.Predict(records_request("mixed", rows))
        assert result.as_numpy("probabilities").ravel().tolist() == list(expected.probabilities)
        assert [v.decode() for v in result.as_numpy("label")] == list(expected.labels)

    def test_columns_in_any_order_and_shape_n(self, served: Served,
                                              client: Client) -> None:
        rows = FEATURES.iloc[:4]
        inputs = []
        for name in reversed(rows.columns):
            tensor = triton.InferInput(name, [4], "FP32")
            tensor.set_data_from_numpy(rows[name].to_numpy(dtype=np.float32))
            inputs.append(tensor)
        result = client.infer("spam", inputs, parameters={"content_type": "pd"})
        expected = predict_dense(served, rows.astype(np.float32).astype(np.float64))
        assert result.as_numpy("probabilities").ravel().tolist() == list(expected.probabilities)


def typed_call(served: Served) -> grpc.UnaryUnaryMultiCallable:
    """ModelInfer through a bare channel with modeld's V2 messages (typed contents)."""
    return served.channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=oip.ModelInferRequest.SerializeToString,
        response_deserializer=oip.ModelInferResponse.FromString)


class TestTypedContents:
    def test_typed_request_gets_a_typed_answer(self, served: Served) -> None:
        rows = mixed_rows(served).head(4)
        request = oip.ModelInferRequest(model_name="mixed", model_version="1")
        request.parameters["content_type"].string_param = "pd"
        for name in rows.columns:
            tensor = request.inputs.add(name=name, shape=[len(rows)])
            if not pd.api.types.is_numeric_dtype(rows[name]):
                tensor.datatype = "BYTES"
                tensor.contents.bytes_contents.extend(
                    b"" if v != v else v.encode() for v in rows[name])
            else:
                tensor.datatype = "FP64"
                tensor.contents.fp64_contents.extend(rows[name].tolist())
        response = typed_call(served)(request, timeout=30)
        assert not response.raw_output_contents
        label, proba = response.outputs
        assert (label.datatype, list(label.shape)) == ("BYTES", [4])
        assert (proba.datatype, list(proba.shape)) == ("FP64", [4, 2])
        expected = served.stub.Predict(records_request("mixed", rows))
        assert list(proba.contents.fp64_contents) == list(expected.probabilities)
        assert [v.decode() for v in label.contents.bytes_contents] == list(expected.labels)


    @pytest.mark.parametrize("datatype", ["FP64", "FP32"])
    def test_typed_single_tensor(self, served: Served, datatype: str) -> None:
        rows = FEATURES.iloc[:3]
        request = oip.ModelInferRequest(model_name="spam")
        tensor = request.inputs.add(name="input", datatype=datatype, shape=[3, 57])
        values = rows.to_numpy(dtype=np.float64 if datatype == "FP64" else np.float32)
        field = tensor.contents.fp64_contents if datatype == "FP64" else \
            tensor.contents.fp32_contents
        field.extend(values.ravel().tolist())
        response = typed_call(served)(request, timeout=30)
        expected = predict_dense(served, rows.astype(values.dtype).astype(np.float64))
        assert list(response.outputs[1].contents.fp64_contents) == list(expected.probabilities)

    def test_bytes_in_a_single_tensor_is_refused(self, served: Served) -> None:
        request = oip.ModelInferRequest(model_name="spam")
        tensor = request.inputs.add(name="input", datatype="BYTES", shape=[1, 57])
        tensor.contents.bytes_contents.extend([b"1"] * 57)
        with pytest.raises(grpc.RpcError) as err:
            typed_call(served)(request, timeout=30)
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "input 'input' is BYTES: an [N, F] tensor holds numbers (FP32 or FP64)")


class TestRepository:
    def test_index_lists_every_version_with_state_and_reason(
            self, client: Client) -> None:
        index = client.get_model_repository_index()
        spam = [(m.version, m.state, m.reason) for m in index.models if m.name == "spam"]
        assert spam == [("2", "READY", "active"),
                        ("1", "READY", "inactive; aliases: champion")]
        assert sorted({m.name for m in index.models}) == ["blobs", "diabetes", "mixed", "spam"]

    def test_load_with_a_version_activates_it(self, served: Served, client: Client) -> None:
        """A modeld extension, sent with Triton's own stub (tritonclient's load_model has no
        parameters argument): GetStatus and ModelInfer follow at once."""
        stub = service_pb2_grpc.GRPCInferenceServiceStub(served.channel)

        def load(version: str) -> None:
            stub.RepositoryModelLoad(service_pb2.RepositoryModelLoadRequest(
                model_name="spam",
                parameters={"version": service_pb2.ModelRepositoryParameter(
                    string_param=version)}), timeout=60)

        try:
            load("1")
            status = served.stub.GetStatus(pb.GetStatusRequest(model="spam")).models[0]
            assert (status.active_version, status.loaded_version) == (1, 1)
            result = client.infer("spam", [dense_input(FEATURES.iloc[:2])])
            assert result.get_response().model_version == "1"
            assert client.is_model_ready("spam", "1")
        finally:
            load("2")
        status = served.stub.GetStatus(pb.GetStatusRequest(model="spam")).models[0]
        assert (status.active_version, status.loaded_version) == (2, 2)

    def test_load_without_a_version_rereads_the_model(
            self, client: Client) -> None:
        client.load_model("mixed")
        assert client.is_model_ready("mixed")

    def test_load_refuses_tritons_config_and_files(
            self, client: Client) -> None:
        assert failure(lambda: client.load_model("mixed", config="{}")) == (
            "StatusCode.INVALID_ARGUMENT",
            "parameter 'config' is not supported: only \"version\" is (models come from "
            "Train, so Triton's config and file: parameters do not apply)")

    def test_unload_is_refused(self, client: Client) -> None:
        assert failure(lambda: client.unload_model("spam")) == (
            "StatusCode.FAILED_PRECONDITION",
            "modeld always serves each model's active version, so 'spam' cannot be unloaded: "
            "activate another version (RepositoryModelLoad with parameter \"version\", or "
            "Rollback)")
        assert failure(lambda: client.unload_model("nope"))[0] == "StatusCode.NOT_FOUND"


class TestErrors:
    def test_unknown_model_version_and_alias_are_not_found(
            self, client: Client) -> None:
        rows = [dense_input(FEATURES.iloc[:1])]
        assert failure(lambda: client.infer("nope", rows)) == (
            "StatusCode.NOT_FOUND", "model 'nope' not found")
        assert failure(lambda: client.infer("spam", rows, model_version="7")) == (
            "StatusCode.NOT_FOUND", "version 7 of model 'spam' not found")
        assert failure(lambda: client.infer("spam", rows, model_version="gone")) == (
            "StatusCode.NOT_FOUND", "alias 'gone' of model 'spam' not found")

    def test_a_version_that_is_neither_number_nor_alias(
            self, client: Client) -> None:
        assert failure(lambda: client.infer("spam", [dense_input(FEATURES.iloc[:1])],
                                            model_version="-1")) == (
            "StatusCode.INVALID_ARGUMENT",
            "model_version '-1' is neither empty, a version number nor an alias name")

    def test_wrong_width_names_the_input(self, client: Client) -> None:
        narrow = dense_input(FEATURES.iloc[:2, :3], name="x")
        assert failure(lambda: client.infer("spam", [narrow])) == (
            "StatusCode.INVALID_ARGUMENT",
            "input 'x' has shape [2, 3], but model 'spam' has 57 feature columns: send "
            "[N, 57] in the order of ModelMetadata's inputs, or one tensor per column named "
            "after it")

    def test_a_single_tensor_for_a_categorical_model(
            self, client: Client) -> None:
        tensor = triton.InferInput("input", [1, 3], "FP64")
        tensor.set_data_from_numpy(np.zeros((1, 3)))
        assert failure(lambda: client.infer("mixed", [tensor])) == (
            "StatusCode.INVALID_ARGUMENT",
            "input 'input' is not a column of model 'mixed', which has categorical columns "
            "(color): send one tensor per column, named after it, with request parameter "
            "content_type \"pd\"")

    def test_a_numeric_column_sent_as_bytes(self, served: Served,
                                            client: Client) -> None:
        inputs = column_inputs(mixed_rows(served).head(2))
        weight = triton.InferInput("weight", [2, 1], "BYTES")
        weight.set_data_from_numpy(np.array([[b"1"], [b"2"]], dtype=object))
        inputs[1] = weight
        assert failure(lambda: client.infer("mixed", inputs)) == (
            "StatusCode.INVALID_ARGUMENT",
            "inputs[1] 'weight' is BYTES, but the column is numeric: send FP32 or FP64 (NaN "
            "for a missing value)")

    def test_a_missing_column(self, served: Served, client: Client) -> None:
        inputs = column_inputs(mixed_rows(served).head(2))[:2]
        pandas = {"content_type": "pd"}
        assert failure(lambda: client.infer("mixed", inputs, parameters=pandas)) == (
            "StatusCode.INVALID_ARGUMENT", "inputs miss column(s) ['weight'] of model 'mixed'")

    def test_an_unknown_output(self, client: Client) -> None:
        assert failure(lambda: client.infer(
            "spam", [dense_input(FEATURES.iloc[:1])],
            outputs=[triton.InferRequestedOutput("value")])) == (
            "StatusCode.INVALID_ARGUMENT",
            "output 'value' is not one of this classification model's: label, probabilities")

    def test_a_raw_size_that_does_not_match_the_shape(self, served: Served) -> None:
        request = oip.ModelInferRequest(model_name="spam", raw_input_contents=[b"\0" * 12])
        request.inputs.add(name="input", datatype="FP64", shape=[1, 57])
        with pytest.raises(grpc.RpcError) as err:
            typed_call(served)(request, timeout=30)
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "inputs[0] 'input': raw_input_contents[0] has 12 bytes, but shape [1, 57] of FP64 "
            "needs 456")

    def test_too_many_rows_is_resource_exhausted(
            self, client: Client) -> None:
        rows = np.zeros((MAX_ROWS + 1, 57))
        tensor = triton.InferInput("input", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows)
        assert failure(lambda: client.infer("spam", [tensor])) == (
            "StatusCode.RESOURCE_EXHAUSTED",
            f"{MAX_ROWS + 1} rows exceed max_predict_rows={MAX_ROWS}")

    def test_rpcs_left_out_are_unimplemented(self, client: Client) -> None:
        assert failure(lambda: client.get_model_config("spam"))[0] == "StatusCode.UNIMPLEMENTED"
        assert failure(lambda: client.get_inference_statistics())[0] == \
            "StatusCode.UNIMPLEMENTED"

    def test_v2_calls_are_counted_in_the_metrics(self, served: Served, client: Client) -> None:
        client.infer("spam", [dense_input(FEATURES.iloc[:1])])
        log = (served.base / "daemon.log").read_text().splitlines()
        address = next(json.loads(line)["address"] for line in log
                       if '"metrics_serving"' in line)
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=30) as response:
            text = response.read().decode()
        counted = [line for line in text.splitlines() if line.startswith(
            'modeld_rpc_requests_total{code="OK",method="ModelInfer"}')]
        assert counted and float(counted[0].split()[-1]) >= 1

    def test_v2_calls_are_counted_and_logged_like_modelds(self, served: Served,
                                                         client: Client) -> None:
        """The line is written just after the response is sent (grpc's end-of-RPC
        callback), so the log is read until it has one more ModelInfer line."""

        def logged() -> list[dict[str, Any]]:
            log = (served.base / "daemon.log").read_text().splitlines()
            return [json.loads(line) for line in log
                    if '"method": "ModelInfer"' in line and line.endswith("}")]

        before = len(logged())
        client.infer("spam", [dense_input(FEATURES.iloc[:1])])
        deadline = time.monotonic() + 60
        while len(lines := logged()) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(lines) == before + 1
        assert (lines[-1]["event"], lines[-1]["code"], lines[-1]["model"]) == (
            "rpc", "OK", "spam")
