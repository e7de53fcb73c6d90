"""Train validates synchronously: each bad field gets its precise status and a message naming it."""

from __future__ import annotations

import os

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import LiveDaemon

CODE = grpc.StatusCode


def request(**overrides: object) -> pb.TrainRequest:
    fields: dict[str, object] = {
        "model": "spam", "algorithm": "xgboost",
        "dataset": pb.Dataset(path="spambase.csv", target="is_spam"),
    }
    fields.update(overrides)
    return pb.TrainRequest(**fields)  # type: ignore[arg-type]


CASES = [
    (request(model=""), CODE.INVALID_ARGUMENT, "model is required"),
    (request(model="a/b"), CODE.INVALID_ARGUMENT, "model 'a/b' is not a valid model name"),
    (request(model=".."), CODE.INVALID_ARGUMENT, "model '..' is not a valid model name"),
    (request(model="x" * 65), CODE.INVALID_ARGUMENT, "is not a valid model name"),
    (request(dataset=pb.Dataset(path="", target="is_spam")), CODE.INVALID_ARGUMENT,
     "dataset.path is required"),
    (request(dataset=pb.Dataset(path="/etc/passwd", target="is_spam")), CODE.PERMISSION_DENIED,
     "dataset.path '/etc/passwd' is absolute"),
    (request(dataset=pb.Dataset(path="../../etc/passwd.csv", target="x")),
     CODE.PERMISSION_DENIED, "leads outside the data root"),
    (request(dataset=pb.Dataset(path="missing.csv", target="x")), CODE.NOT_FOUND,
     "dataset.path 'missing.csv' not found under the data root"),
    (request(dataset=pb.Dataset(path="spambase.csv", target="label")), CODE.INVALID_ARGUMENT,
     "dataset.target 'label' is not a column of 'spambase.csv' (columns: word_freq_make, "),
    (request(algorithm=""), CODE.INVALID_ARGUMENT, "algorithm is required"),
    (request(algorithm="svm"), CODE.INVALID_ARGUMENT, "algorithm 'svm' is not supported"),
    # The algorithm is checked before the target its task decides on.
    (request(algorithm="xgbost", dataset=pb.Dataset(path="spambase.csv")),
     CODE.INVALID_ARGUMENT, "algorithm 'xgbost' is not supported; choose one of "
                            "hist_gradient_boosting, isolation_forest, "),
    (request(dataset=pb.Dataset(path="spambase.csv")), CODE.INVALID_ARGUMENT,
     "dataset.target is required for algorithm 'xgboost'"),
    (request(algorithm="ridge", task=pb.TASK_CLASSIFICATION), CODE.INVALID_ARGUMENT,
     "algorithm 'ridge' does not do classification (it does regression)"),
    (request(params={"max_dept": "3"}), CODE.INVALID_ARGUMENT,
     "params: 'max_dept' is not a parameter of XGBClassifier"),
    (request(params={"max_depth": "-3"}), CODE.INVALID_ARGUMENT, "max_depth"),
    # A version trained with another missing value would be served with NaN as missing
    # (the saved model.ubj does not keep it): wrong answers, so it is refused.
    (request(params={"missing": "0"}), CODE.INVALID_ARGUMENT,
     "params: missing=0 is not supported: NaN (an empty cell; NaN or null in Predict) is the "
     "only missing value modeld trains and serves with; write that value as an empty cell "
     "instead"),
    (request(algorithm="random_forest", params={"criterion": "best"}), CODE.INVALID_ARGUMENT,
     "The 'criterion' parameter of RandomForestClassifier must be"),
    (request(cv_folds=1), CODE.INVALID_ARGUMENT, "cv_folds must be between 2 and 20, got 1"),
    (request(cv_folds=21), CODE.INVALID_ARGUMENT, "cv_folds must be between 2 and 20, got 21"),
    (request(seed=-1), CODE.INVALID_ARGUMENT, "seed must be between 0 and 4294967295, got -1"),
    (request(request_id="r" * 129), CODE.INVALID_ARGUMENT, "request_id is longer than 128"),
    (request(task=9), CODE.INVALID_ARGUMENT, "task 9 is not a known Task value"),
]


@pytest.mark.parametrize(("bad", "code", "details"), CASES,
                         ids=[c[2][:40] for c in CASES])
def test_bad_train_requests(daemon: LiveDaemon, bad: pb.TrainRequest, code: grpc.StatusCode,
                            details: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub.Train(bad)
    assert err.value.code() == code
    assert details in err.value.details()
    assert daemon.stub.ListJobs(pb.ListJobsRequest()).jobs == []


def test_a_missing_dataset_names_the_data_root(daemon: LiveDaemon) -> None:
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub.Train(request(dataset=pb.Dataset(path="missing.csv", target="x")))
    assert (err.value.code(), err.value.details()) == (
        CODE.NOT_FOUND, "dataset.path 'missing.csv' not found under the data root "
                        f"{daemon.data_root.resolve()}")


def test_a_symlink_out_of_the_data_root_is_refused(daemon: LiveDaemon, tmp_path_factory:
                                                   pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text("a,b\n1,2\n")
    os.symlink(outside, daemon.data_root / "link.csv")
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub.Train(request(dataset=pb.Dataset(path="link.csv", target="b")))
    assert err.value.code() == CODE.PERMISSION_DENIED


@pytest.mark.parametrize(("name", "content", "details"), [
    ("empty.csv", b"", "is empty"),
    ("binary.csv", bytes(range(256)) * 8, "is not a readable CSV file"),
    ("broken.parquet", b"PAR1garbage", "is not a readable Parquet file"),
])
def test_malformed_files_are_invalid_argument(daemon: LiveDaemon, name: str, content: bytes,
                                              details: str) -> None:
    (daemon.data_root / name).write_bytes(content)
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub.Train(request(dataset=pb.Dataset(path=name, target="x")))
    assert err.value.code() == CODE.INVALID_ARGUMENT
    assert details in err.value.details()


def test_job_rpcs_name_unknown_jobs(daemon: LiveDaemon) -> None:
    for call in (daemon.stub.GetJob, daemon.stub.CancelJob):
        with pytest.raises(grpc.RpcError) as err:
            call(pb.GetJobRequest(job_id="jnope") if call is daemon.stub.GetJob
                 else pb.CancelJobRequest(job_id="jnope"))
        assert (err.value.code(), err.value.details()) == (CODE.NOT_FOUND, "job 'jnope' not found")
    with pytest.raises(grpc.RpcError) as err:
        list(daemon.stub.WatchJob(pb.WatchJobRequest(job_id="")))
    assert (err.value.code(), err.value.details()) == (CODE.INVALID_ARGUMENT, "job_id is required")
