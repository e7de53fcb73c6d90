"""Predict with the user's column names, in both request forms, for every task."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pandas as pd
import pytest
import structlog
from xgboost import XGBClassifier

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import SPAMBASE, LiveDaemon


def records_request(model: str, rows: list[dict[str, object]],
                    version: int = 0) -> pb.PredictRequest:
    request = pb.PredictRequest(model=model, version=version)
    for row in rows:
        request.records.rows.add().update(row)
    return request


def dense_request(model: str, frame: pd.DataFrame) -> pb.PredictRequest:
    return pb.PredictRequest(model=model, dense=pb.DenseRows(
        columns=list(frame.columns), values=frame.to_numpy(dtype=float).ravel().tolist()))


@pytest.fixture
def spam(daemon: LiveDaemon) -> LiveDaemon:
    job = daemon.train("spam", cv_folds=2)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    return daemon


class TestClassification:
    def test_records_and_dense_equal_the_in_process_model(self, spam: LiveDaemon) -> None:
        """Both forms give the probabilities of XGBClassifier fitted on the same rows."""
        df = pd.read_csv(SPAMBASE)
        x = df.drop(columns="is_spam")
        local = XGBClassifier(random_state=42).fit(x.to_numpy(), df["is_spam"].to_numpy())
        sample = x.iloc[:50]
        expected = local.predict_proba(sample.to_numpy())
        by_records = spam.stub.Predict(records_request("spam", sample.to_dict("records")))
        by_dense = spam.stub.Predict(dense_request("spam", sample))
        for response in (by_records, by_dense):
            assert response.version == 1 and list(response.classes) == ["0", "1"]
            got = np.array(response.probabilities).reshape(-1, 2)
            np.testing.assert_allclose(got, expected, rtol=1e-6)
            assert list(response.labels) == [str(v) for v in expected.argmax(axis=1)]
        assert list(by_records.probabilities) == list(by_dense.probabilities)

    def test_column_names_with_brackets_round_trip(self, spam: LiveDaemon) -> None:
        """'char_freq_[' (refused by XGBoost itself) works as a record key."""
        row = pd.read_csv(SPAMBASE).drop(columns="is_spam").iloc[0].to_dict()
        assert "char_freq_[" in row
        assert spam.stub.Predict(records_request("spam", [row])).labels == ["1"]

    def test_dense_columns_in_any_order(self, spam: LiveDaemon) -> None:
        x = pd.read_csv(SPAMBASE).drop(columns="is_spam").iloc[:5]
        straight = spam.stub.Predict(dense_request("spam", x))
        shuffled = spam.stub.Predict(dense_request("spam", x[x.columns[::-1]]))
        assert list(straight.probabilities) == list(shuffled.probabilities)

    def test_the_target_column_in_a_record_is_ignored(self, spam: LiveDaemon) -> None:
        row = pd.read_csv(SPAMBASE).iloc[0].to_dict()
        assert spam.stub.Predict(records_request("spam", [row])).labels == ["1"]


    def test_each_call_is_logged_once_after_its_answer(self, spam: LiveDaemon) -> None:
        """The canonical line comes from grpc's end-of-RPC callback on its polling thread,
        still with the request's model bound; undecodable dense bytes are refused by name."""
        row = pd.read_csv(SPAMBASE).drop(columns="is_spam").iloc[:1]
        merge = [structlog.contextvars.merge_contextvars]
        with structlog.testing.capture_logs(processors=merge) as logs:
            for _ in range(5):
                spam.stub.Predict(dense_request("spam", row))
            bad = spam.channel.unary_unary("/modeld.v1.ModelManager/Predict")
            with pytest.raises(grpc.RpcError) as err:
                bad(b"\x0a\x04spam\x22\x03\x0a\x01\xff")  # a column that is not UTF-8
            deadline = time.monotonic() + 60
            while len([x for x in logs if x["event"] == "rpc"]) < 6 \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
        lines = [(x["method"], x["code"], x["model"]) for x in logs if x["event"] == "rpc"]
        assert lines == [("Predict", "OK", "spam")] * 5 + [
            ("Predict", "INVALID_ARGUMENT", "spam")]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == "dense is not a valid DenseRows message"


class TestBadRows:
    @pytest.mark.parametrize(("mutate", "details"), [
        (lambda r: r.pop("word_freq_make"), "rows[0] has no column 'word_freq_make'"),
        (lambda r: r.update({"bogus": 1}),
         "rows[0] has column 'bogus', which is not a feature of this model (set "
         "ignore_extra_columns, or --ignore-extra-columns, to skip such columns)"),
        (lambda r: [r.pop("word_freq_make"), r.pop("char_freq_[")],
         "rows[0] has no columns 'word_freq_make', 'char_freq_[' (2 of the model's 57 "
         "features)"),
        (lambda r: r.update({"word_freq_make": "lots"}),
         "rows[0].word_freq_make must be a number or null, got str 'lots'"),
    ])
    def test_bad_records_name_the_row_and_column(self, spam: LiveDaemon, mutate: object,
                                                 details: str) -> None:
        row = pd.read_csv(SPAMBASE).drop(columns="is_spam").iloc[0].to_dict()
        mutate(row)  # type: ignore[operator]
        with pytest.raises(grpc.RpcError) as err:
            spam.stub.Predict(records_request("spam", [row]))
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                           details)

    @pytest.mark.parametrize("form", ["records", "dense"])
    def test_extra_columns_are_ignored_when_asked(self, spam: LiveDaemon, form: str) -> None:
        """An id and a timestamp-like column beside the features: the same predictions."""
        x = pd.read_csv(SPAMBASE).drop(columns="is_spam").iloc[:3]
        plain = spam.stub.Predict(dense_request("spam", x))
        extra = x.assign(row_id=[10.0, 11.0, 12.0], ts=[1.7e9, 1.7e9, 1.7e9])
        request = (records_request("spam", extra.to_dict("records")) if form == "records"
                   else dense_request("spam", extra))
        with pytest.raises(grpc.RpcError) as err:
            spam.stub.Predict(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        request.ignore_extra_columns = True
        answer = spam.stub.Predict(request)
        assert list(answer.probabilities) == list(plain.probabilities)
        assert list(answer.labels) == list(plain.labels)

    def test_dense_with_wrong_columns_or_length(self, spam: LiveDaemon) -> None:
        x = pd.read_csv(SPAMBASE).drop(columns="is_spam").iloc[:2]
        request = dense_request("spam", x)
        del request.dense.values[-1]
        with pytest.raises(grpc.RpcError) as err:
            spam.stub.Predict(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a multiple of 57 columns" in err.value.details()
        request = dense_request("spam", x.drop(columns="char_freq_["))
        with pytest.raises(grpc.RpcError) as err:
            spam.stub.Predict(request)
        assert err.value.details() == ("dense.columns must name each of the model's 57 "
                                       "features once; missing ['char_freq_['], unknown []")

    @pytest.mark.parametrize(("request_", "code"), [
        (pb.PredictRequest(model="spam"), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.PredictRequest(model="ghost", dense=pb.DenseRows(columns=["a"], values=[1.0])),
         grpc.StatusCode.NOT_FOUND),
        (pb.PredictRequest(model="spam", version=7, dense=pb.DenseRows(columns=["a"],
                                                                        values=[1.0])),
         grpc.StatusCode.NOT_FOUND),
        (pb.PredictRequest(model="spam", version=-1, dense=pb.DenseRows(columns=["a"],
                                                                         values=[1.0])),
         grpc.StatusCode.INVALID_ARGUMENT),
        (pb.PredictRequest(model="spam", records=pb.RecordRows()),
         grpc.StatusCode.INVALID_ARGUMENT),
    ])
    def test_request_errors(self, spam: LiveDaemon, request_: pb.PredictRequest,
                            code: grpc.StatusCode) -> None:
        with pytest.raises(grpc.RpcError) as err:
            spam.stub.Predict(request_)
        assert err.value.code() == code


class TestOtherTasks:
    def test_categorical_and_missing_values(self, daemon: LiveDaemon) -> None:
        daemon.train("mixed", path="mixed.csv", target="label", algorithm="random_forest")
        rows = [{"color": "red", "size [cm]": 14.0, "weight": 50.0},
                {"color": None, "size [cm]": None, "weight": 40.0},
                {"color": "purple", "size [cm]": 3.0, "weight": 55.0}]
        response = daemon.stub.Predict(records_request("mixed", rows))
        assert list(response.classes) == ["no", "yes"]
        assert response.labels[0] == "yes" and len(response.labels) == 3
        probabilities = np.array(response.probabilities).reshape(3, 2)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Predict(pb.PredictRequest(model="mixed", dense=pb.DenseRows(
                columns=["size [cm]", "weight"], values=[1.0, 2.0])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_regression_values(self, daemon: LiveDaemon) -> None:
        daemon.train("diabetes", path="diabetes.csv", target="target", algorithm="xgboost")
        frame = pd.read_csv(daemon.data_root / "diabetes.csv").drop(columns="target").iloc[:4]
        response = daemon.stub.Predict(dense_request("diabetes", frame))
        assert response.task == pb.TASK_REGRESSION and len(response.values) == 4
        assert all(25 < v < 350 for v in response.values)

    def test_anomaly_scores_flag_the_outliers(self, daemon: LiveDaemon) -> None:
        job = daemon.stub.Train(pb.TrainRequest(model="outliers", algorithm="isolation_forest",
                                                dataset=pb.Dataset(path="anomalies.csv",
                                                                   eval_label="is_outlier")))
        from tests.conftest import wait_job

        assert wait_job(daemon.stub, job.id).state == pb.JOB_STATE_SUCCEEDED
        rows = [{"a": 0.1, "b": -0.2, "c": 0.0, "is_outlier": 0},
                {"a": 7.5, "b": -7.0, "c": 6.5, "is_outlier": 1}]
        response = daemon.stub.Predict(records_request("outliers", rows))
        assert list(response.labels) == ["normal", "anomaly"]
        assert response.anomaly_scores[1] > response.anomaly_scores[0]
