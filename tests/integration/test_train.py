"""Training through a live daemon: real metrics, every task, cancellation, idempotency."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import SPAMBASE, LiveDaemon, start_daemon, wait_job


def plain_cv(estimator: object) -> dict[str, np.ndarray]:
    """The reference computation of ../shared/data/README.md, run in this test."""
    df = pd.read_csv(SPAMBASE)
    x, y = df.drop(columns="is_spam").to_numpy(), df["is_spam"].to_numpy()
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    scores = cross_validate(estimator, x, y, cv=cv, scoring=["accuracy", "f1", "roc_auc"],
                            n_jobs=1)
    return {name: scores[f"test_{name}"] for name in ("accuracy", "f1", "roc_auc")}


class TestAcceptanceFigures:
    def test_xgboost_defaults_on_spambase_equal_the_plain_library(self, daemon: LiveDaemon) -> None:
        """Per-fold accuracy, F1 and ROC AUC equal scikit-learn's cross_validate exactly."""
        job = daemon.train("spam")
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        plain = plain_cv(XGBClassifier())
        for name, folds in plain.items():
            assert list(job.metrics[name].folds) == folds.tolist()
            assert job.metrics[name].mean == folds.mean()
            assert job.metrics[name].std == folds.std()
        assert round(job.metrics["accuracy"].mean, 4) == 0.9513
        assert round(job.metrics["f1"].mean, 4) == 0.9380
        assert round(job.metrics["roc_auc"].mean, 4) == 0.9873

    def test_logistic_regression_equals_the_scaled_plain_pipeline(self, daemon: LiveDaemon) -> None:
        """modeld's logistic_regression is StandardScaler + LogisticRegression(max_iter=2000)."""
        job = daemon.train("spam-lr", algorithm="logistic_regression")
        plain = plain_cv(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)))
        for name, folds in plain.items():
            assert job.metrics[name].mean == pytest.approx(folds.mean(), abs=1e-12)
        assert round(job.metrics["accuracy"].mean, 4) == 0.9246

    def test_manifest_records_the_whole_training(self, daemon: LiveDaemon) -> None:
        """manifest.json on disk has metrics, folds, dataset hash, schema, artifacts with hashes."""
        job = daemon.train("spam", cv_folds=3)
        manifest = json.loads((daemon.registry / "spam/versions/1/manifest.json").read_text())
        assert manifest["version"] == 1 and manifest["job_id"] == job.id
        assert manifest["algorithm"] == "xgboost" and manifest["task"] == "classification"
        assert len(manifest["metrics"]["f1"]["folds"]) == 3
        assert manifest["dataset"]["rows"] == 4601
        assert len(manifest["dataset"]["sha256"]) == 64
        assert "char_freq_[" in manifest["features"]
        assert set(manifest["artifacts"]) == {"model.ubj", "preprocess.joblib", "train_rows.npy",
                                              "train_rows_labeled.npy", "oof.npz"}
        assert manifest["oof"]["file"] == "oof.npz"
        assert manifest["oof"]["key"]["cv_folds"] == 3
        assert sum(manifest["confusion_matrix"]["counts"]) == 4601
        assert manifest["libraries"]["xgboost"] == "3.2.0"
        assert (daemon.registry / "spam/ACTIVE").read_text() == "1\n"


class TestTasks:
    def test_multiclass_reports_macro_and_weighted_scores(self, daemon: LiveDaemon) -> None:
        job = daemon.train("iris", path="iris.csv", target="species",
                           algorithm="random_forest", params={"n_estimators": "20"})
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        assert {"f1_macro", "f1_weighted", "roc_auc", "log_loss", "brier"} <= set(job.metrics)
        assert job.metrics["accuracy"].mean > 0.9

    def test_regression_reports_rmse_mae_r2(self, daemon: LiveDaemon) -> None:
        job = daemon.train("diabetes", path="diabetes.csv", target="target", algorithm="ridge")
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        assert set(job.metrics) == {"rmse", "mae", "r2"}
        assert 0.3 < job.metrics["r2"].mean < 0.6

    def test_categorical_and_missing_values_train_and_predict(self, daemon: LiveDaemon) -> None:
        job = daemon.train("mixed", path="mixed.csv", target="label",
                           algorithm="hist_gradient_boosting")
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        version = daemon.stub.GetVersion(pb.GetVersionRequest(model="mixed"))
        assert list(version.classes) == ["no", "yes"]
        assert json.loads(version.manifest_json)["schema"]["categorical"] == ["color"]

    def test_anomaly_detection_scores_against_an_evaluation_label(self, daemon: LiveDaemon) -> None:
        job = daemon.stub.Train(pb.TrainRequest(
            model="outliers", algorithm="isolation_forest",
            dataset=pb.Dataset(path="anomalies.csv", eval_label="is_outlier")))
        job = wait_job(daemon.stub, job.id)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        assert job.metrics["roc_auc"].mean > 0.95
        manifest = json.loads(daemon.stub.GetVersion(
            pb.GetVersionRequest(model="outliers")).manifest_json)
        assert "is_outlier" not in manifest["features"]
        assert manifest["anomaly"]["contamination"] == "auto"
        assert manifest["anomaly"]["score_distribution"]["max"] > manifest["anomaly"]["threshold"]


class TestJobs:
    def test_watch_streams_phases_until_the_final_state(self, daemon: LiveDaemon) -> None:
        job = daemon.stub.Train(pb.TrainRequest(
            model="spam", dataset=pb.Dataset(path="spambase.csv", target="is_spam"),
            algorithm="logistic_regression", cv_folds=3))
        events = [e.job for e in daemon.stub.WatchJob(pb.WatchJobRequest(job_id=job.id))]
        assert events[-1].state == pb.JOB_STATE_SUCCEEDED
        assert events[-1].version == 1 and events[-1].progress == 1.0
        late = [e.job for e in daemon.stub.WatchJob(pb.WatchJobRequest(job_id=job.id))]
        assert [e.state for e in late] == [pb.JOB_STATE_SUCCEEDED]

    def test_cancel_stops_a_running_job_and_publishes_nothing(self, daemon: LiveDaemon) -> None:
        job = daemon.stub.Train(pb.TrainRequest(
            model="slow", dataset=pb.Dataset(path="spambase.csv", target="is_spam"),
            algorithm="random_forest", params={"n_estimators": "3000"}))
        for event in daemon.stub.WatchJob(pb.WatchJobRequest(job_id=job.id)):
            if event.job.phase == "cross_validation":
                break
        cancelled = daemon.stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
        assert cancelled.state == pb.JOB_STATE_CANCELLED
        assert not (daemon.registry / "slow" / "versions").exists() or not any(
            (daemon.registry / "slow" / "versions").iterdir())
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    def test_job_cpus_sets_how_many_processes_fit_side_by_side(
        self, daemon: LiveDaemon, tmp_path: Path
    ) -> None:
        """Default: one per CPU for logistic regression; --job-cpus 1: the worker alone."""
        def fit_processes(live: LiveDaemon) -> int:
            job = live.train("iris", path="iris.csv", target="species",
                             algorithm="logistic_regression", cv_folds=3)
            version = live.stub.GetVersion(pb.GetVersionRequest(model="iris",
                                                                version=job.version))
            return int(json.loads(version.manifest_json)["timings"]["fit_processes"])

        # Four fits (three folds and the final one) over as many processes as CPUs.
        assert fit_processes(daemon) == min(len(os.sched_getaffinity(0)), 4)
        shutil.copytree(daemon.data_root, tmp_path / "one" / "data")
        single = start_daemon(tmp_path / "one", job_cpus=1)
        try:
            assert fit_processes(single) == 1
        finally:
            single.stop()

    def test_the_same_request_id_returns_the_same_job(self, daemon: LiveDaemon) -> None:
        request = pb.TrainRequest(model="spam", dataset=pb.Dataset(path="iris.csv",
                                  target="species"), algorithm="logistic_regression",
                                  request_id="nb-42")
        first = daemon.stub.Train(request)
        second = daemon.stub.Train(request)
        assert first.id == second.id
        request.cv_folds = 3
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Train(request)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "nb-42" in err.value.details()

    def test_list_jobs_is_newest_first_and_paged(self, daemon: LiveDaemon) -> None:
        ids = [daemon.train("iris", path="iris.csv", target="species",
                            algorithm="logistic_regression", cv_folds=2).id for _ in range(3)]
        page = daemon.stub.ListJobs(pb.ListJobsRequest(page_size=2))
        assert [j.id for j in page.jobs] == ids[::-1][:2]
        rest = daemon.stub.ListJobs(pb.ListJobsRequest(page_size=2,
                                                       page_token=page.next_page_token))
        assert [j.id for j in rest.jobs] == [ids[0]] and rest.next_page_token == ""

    def test_training_failures_end_the_job_with_a_reason(self, daemon: LiveDaemon) -> None:
        """A single-class target is caught in the worker: FAILED with why, daemon fine."""
        pd.DataFrame({"x": range(20), "y": ["a"] * 20}).to_csv(
            daemon.data_root / "one.csv", index=False)
        job = daemon.train("one", path="one.csv", target="y", algorithm="logistic_regression")
        assert job.state == pb.JOB_STATE_FAILED
        assert "single class" in job.error
        daemon.stub.GetStatus(pb.GetStatusRequest())
