"""TrainRequest.engine=dask against a real distributed.LocalCluster the test starts.

Small on purpose (the machine is shared): 2 worker processes of one thread, spambase
split into a 4-file Parquet folder. Every wait polls with a deadline; nothing is timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from xgboost import XGBClassifier

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.monitoring import profile
from modeld_server.training import dask_engine
from modeld_server.training import metrics as metric_fns
from modeld_server.types import TrainSpec
from tests.conftest import SPAMBASE, LiveDaemon, start_daemon, wait_job
from tests.integration.test_drift import SHIFTED, replay
from tests.integration.test_predict import records_request

# A LocalCluster per module and minutes of training: `make test-dask` (CI runs it).
pytestmark = pytest.mark.dask

distributed = pytest.importorskip("distributed")

CODE = grpc.StatusCode
NO_CLUSTER = ("engine dask needs a Dask cluster: start the daemon with --dask-scheduler "
              "ADDRESS or --dask-local N")


def write_parquet_folder(folder: Path, files: int = 4) -> None:
    """spambase's rows in order, cut into `files` Parquet files named in that order."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(SPAMBASE)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)


def local_cluster(workers: int) -> distributed.LocalCluster:
    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                    dashboard_address=":0")


@contextlib.contextmanager
def one_small_worker() -> Iterator[distributed.LocalCluster]:
    """A cluster of one worker whose memory_limit is 1 MB, with Dask's memory management
    off, so the limit is only reported (what modeld's size checks read)."""
    import dask

    off = {f"distributed.worker.memory.{k}": False
           for k in ("target", "spill", "pause", "terminate")}
    with dask.config.set(off), distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
            memory_limit="1MB") as small:
        yield small


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with local_cluster(2) as running:
        yield running


@pytest.fixture
def on_dask(tmp_path: Path, datasets: Path, cluster: distributed.LocalCluster
            ) -> Iterator[LiveDaemon]:
    """A daemon given the test's cluster with --dask-scheduler; spambase also as spam/*.parquet."""
    shutil.copytree(datasets, tmp_path / "data")
    write_parquet_folder(tmp_path / "data" / "spam")
    live = start_daemon(tmp_path, dask_scheduler=cluster.scheduler_address)
    yield live
    live.stop()


@pytest.fixture
def unreachable(tmp_path: Path, datasets: Path) -> Iterator[LiveDaemon]:
    """A daemon whose scheduler address nothing listens on: for checks Train makes first."""
    shutil.copytree(datasets, tmp_path / "data")
    write_parquet_folder(tmp_path / "data" / "spam")
    live = start_daemon(tmp_path, dask_scheduler="tcp://127.0.0.1:9")
    yield live
    live.stop()


def dask_request(model: str, path: str = "spam", algorithm: str = "xgboost",
                 **fields: object) -> pb.TrainRequest:
    return pb.TrainRequest(model=model, dataset=pb.Dataset(path=path, target="is_spam"),
                           algorithm=algorithm, engine="dask", **fields)  # type: ignore[arg-type]


def refused(daemon: LiveDaemon, request: pb.TrainRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        daemon.stub.Train(request)
    return err.value


class TestTrainOnDask:
    def test_xgboost_on_a_parquet_folder_publishes_a_servable_version(
            self, on_dask: LiveDaemon) -> None:
        """SUCCEEDED, version 1 answers Predict; accuracy and AUC within 0.01 of engine=local
        on the same rows (the folds differ: a hash of the row position, not stratified)."""
        job = wait_job(on_dask.stub, on_dask.stub.Train(dask_request("spam")).id)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        assert job.version == 1 and job.request.engine == "dask"
        assert len(job.metrics["accuracy"].folds) == 5
        assert len(job.metrics["roc_auc"].folds) == 5
        rows = pd.read_csv(SPAMBASE).drop(columns="is_spam").head(3)
        answer = on_dask.stub.Predict(records_request("spam", rows.to_dict("records")))
        assert len(answer.labels) == 3 and set(answer.labels) <= {"0", "1"}
        version = on_dask.stub.GetVersion(pb.GetVersionRequest(model="spam", version=1))
        assert version.classes == ["0", "1"] and version.rows == 4601
        manifest = json.loads(version.manifest_json)
        assert manifest["engine"]["workers"] == 2 and manifest["engine"]["partitions"] == 4
        assert manifest["format"] == "xgboost-ubj+joblib"  # what the local engine writes

        local = on_dask.train("spam-local")
        assert local.state == pb.JOB_STATE_SUCCEEDED, local.error
        for name in ("accuracy", "roc_auc"):
            gap = abs(job.metrics[name].mean - local.metrics[name].mean)
            print(f"{name}: dask {job.metrics[name].mean:.4f} local "
                  f"{local.metrics[name].mean:.4f} gap {gap:.4f} load {os.getloadavg()[0]:.1f}")
            assert gap <= 0.01

    def test_cancel_releases_the_jobs_work_on_the_cluster(
            self, on_dask: LiveDaemon, cluster: distributed.LocalCluster) -> None:
        """CancelJob kills the worker process; the scheduler drops its client, and with it
        every future that client held, so no task of the job is left on the cluster."""
        job = on_dask.stub.Train(dask_request("spam", params={"n_estimators": "2000"}))
        for event in on_dask.stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=300):
            if event.job.phase == "cross_validation":
                break
        with distributed.Client(cluster) as observer:
            assert _job_clients(observer) >= 1
            cancelled = on_dask.stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
            assert cancelled.state == pb.JOB_STATE_CANCELLED
            deadline = time.monotonic() + 120
            while _job_clients(observer) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _job_clients(observer) == 0
            while observer.run_on_scheduler(_keys) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert observer.run_on_scheduler(_keys) == 0


REUSED = ("champion's out-of-fold predictions from its own training, in the same folds "
          "(no refit)")


def gate_of(daemon: LiveDaemon, model: str, version: int) -> dict[str, object]:
    path = daemon.registry / model / "versions" / str(version) / "manifest.json"
    gate: dict[str, object] = json.loads(path.read_text())["gate"]
    return gate


class TestGateOnDask:
    def test_a_worse_recipe_is_rejected_and_a_same_recipe_retrain_reuses_stored_predictions(
            self, on_dask: LiveDaemon) -> None:
        """v1's held-out predictions are stored (oof.npz); a worse recipe on the same data is
        scored against them, rejected, and v1 stays active; the same recipe again passes."""
        first = wait_job(on_dask.stub, on_dask.stub.Train(dask_request("spam", cv_folds=3)).id)
        assert first.state == pb.JOB_STATE_SUCCEEDED and first.activated, first.error
        stored = on_dask.registry / "spam/versions/1/oof.npz"
        with np.load(stored) as arrays:
            assert arrays["pred"].shape == (4601,) and arrays["proba"].shape == (4601, 2)
        worse = wait_job(on_dask.stub, on_dask.stub.Train(dask_request(
            "spam", cv_folds=3, params={"max_depth": "1", "n_estimators": "2"})).id)
        assert worse.state == pb.JOB_STATE_SUCCEEDED and not worse.activated
        assert "REJECTED by the quality gate" in worse.message
        gate = gate_of(on_dask, "spam", 2)
        assert gate["passed"] is False and gate["champion_version"] == 1
        assert gate["how"] == REUSED and gate["rows"] == 4601
        assert gate["challenger"] < gate["champion"] - 0.01  # type: ignore[operator]
        status = on_dask.stub.GetStatus(pb.GetStatusRequest(model="spam")).models[0]
        assert status.active_version == 1

        again = wait_job(on_dask.stub, on_dask.stub.Train(dask_request("spam", cv_folds=3)).id)
        assert again.state == pb.JOB_STATE_SUCCEEDED and again.activated, again.message
        gate = gate_of(on_dask, "spam", 3)
        assert gate["how"] == REUSED and gate["passed"] is True

    def test_other_folds_refit_the_champions_recipe_on_the_cluster(
            self, on_dask: LiveDaemon) -> None:
        """A challenger seeded differently has other folds: the champion's recipe is
        cross-validated again in them on the cluster, and the record says why."""
        first = wait_job(on_dask.stub, on_dask.stub.Train(dask_request(
            "spam", cv_folds=3, params={"max_depth": "1", "n_estimators": "2"})).id)
        assert first.state == pb.JOB_STATE_SUCCEEDED, first.error
        second = wait_job(on_dask.stub, on_dask.stub.Train(dask_request(
            "spam", cv_folds=3, seed=7)).id)
        assert second.state == pb.JOB_STATE_SUCCEEDED and second.activated, second.message
        gate = gate_of(on_dask, "spam", 2)
        assert gate["how"] == ("champion's recipe refitted in the same folds (stored "
                               "predictions not reusable: its folds differ: seed)")
        assert gate["passed"] is True and gate["rows"] == 4601
        assert gate["challenger"] > gate["champion"]  # type: ignore[operator]


class TestGateOfScikitLearnOnDask:
    def test_stored_predictions_serve_both_engines_gates(self, on_dask: LiveDaemon) -> None:
        """Logistic regression on Dask keeps the local engine's folds and stores their
        held-out predictions under the local engine's key: a worse recipe on Dask is
        rejected against them, and a local XGBoost challenger reuses them too."""
        def train(engine: str, algorithm: str, **params: str) -> pb.Job:
            request = dask_request("lr", path="spambase.csv", algorithm=algorithm,
                                   cv_folds=3, params=params)
            request.engine = engine
            return wait_job(on_dask.stub, on_dask.stub.Train(request).id)

        first = train("dask", "logistic_regression")
        assert first.state == pb.JOB_STATE_SUCCEEDED and first.activated, first.error
        worse = train("dask", "logistic_regression", C="0.00001")
        assert worse.state == pb.JOB_STATE_SUCCEEDED and not worse.activated
        gate = gate_of(on_dask, "lr", 2)
        assert gate["how"] == REUSED and gate["passed"] is False
        assert gate["challenger"] < gate["champion"] - 0.01  # type: ignore[operator]
        local = train("", "xgboost")
        assert local.state == pb.JOB_STATE_SUCCEEDED and local.activated, local.message
        gate = gate_of(on_dask, "lr", 3)
        assert gate["how"] == REUSED and gate["passed"] is True and gate["rows"] == 4601


class TestDriftOnDask:
    def test_get_drift_works_for_a_dask_trained_version(
            self, tmp_path: Path, datasets: Path, cluster: distributed.LocalCluster) -> None:
        """The profile made on the cluster equals the local engine's bins of the same rows
        (4601 rows: the edges' sample is every row); GetDrift then stays quiet on
        unshifted rows and alerts on exactly the three features scaled by 1.5."""
        shutil.copytree(datasets, tmp_path / "data")
        write_parquet_folder(tmp_path / "data" / "spam")
        live = start_daemon(tmp_path, dask_scheduler=cluster.scheduler_address,
                            monitor_sample=1.0, monitor_window=1500, monitor_interval=0.0)
        try:
            job = wait_job(live.stub, live.stub.Train(dask_request(
                "spam", cv_folds=2, params={"n_estimators": "20"})).id)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
            path = live.registry / "spam/versions/1/manifest.json"
            made = json.loads(path.read_text())["profile"]
            frame = pd.read_csv(SPAMBASE)
            rows = frame.drop(columns="is_spam")
            local = profile.feature_profiles(list(rows.columns), [],
                                             rows.to_numpy(dtype=np.float64))
            assert made["rows"] == 4601 and sorted(made["features"]) == sorted(local)
            for name, expected in local.items():
                got = made["features"][name]
                assert (got["edges"], got["counts"]) == (expected["edges"], expected["counts"])
                for field in ("missing_share", "zero_share", "mean", "std", "min", "max"):
                    assert got[field] == pytest.approx(expected[field], rel=1e-9, abs=1e-12)
            assert made["output"]["what"] == "probability of class 1"
            assert sum(made["output"]["counts"]) == 4601

            monitor = live.runtime.service.monitor
            held = rows.sample(n=1500, random_state=0).reset_index(drop=True)
            replay(live, "spam", held)
            [quiet] = monitor.step()
            report = live.stub.GetDrift(pb.GetDriftRequest(model="spam"))
            assert report.status == quiet.status == "ok" and report.version == 1
            assert len(report.features) == 57
            shifted = held.copy()
            for column in SHIFTED:
                shifted[column] *= 1.5
            replay(live, "spam", shifted)
            [loud] = monitor.step()
            report = live.stub.GetDrift(pb.GetDriftRequest(model="spam"))
            assert report.status == loud.status == "alert"
            assert sorted(f.feature for f in report.features
                          if f.status == "alert") == sorted(SHIFTED)
        finally:
            live.stop()


def _job_clients(observer: distributed.Client) -> int:
    """Clients connected besides this observer (and the scheduler's own 'fire-and-forget')."""
    ids = observer.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients))
    return len([c for c in ids if c != observer.id and c != "fire-and-forget"])


def _keys(dask_scheduler: object) -> int:
    return len(dask_scheduler.tasks)  # type: ignore[attr-defined]


class TestScikitLearnOnDask:
    def test_logistic_regression_folds_run_as_dask_tasks_and_equal_the_local_engine(
            self, on_dask: LiveDaemon, cluster: distributed.LocalCluster) -> None:
        """Each CV fold and the final fit is a task the cluster's workers ran (the
        scheduler's task stream names the worker of each), in processes other than the
        daemon's; the folds are the local engine's, so every metric equals the local
        engine's, fold by fold, exactly."""
        with distributed.Client(cluster) as observer:
            observer.get_task_stream()  # starts the scheduler's recording (dask#9253)
            job = wait_job(on_dask.stub, on_dask.stub.Train(
                dask_request("lr", path="spambase.csv", algorithm="logistic_regression")).id)
            stream = observer.get_task_stream()
            workers = set(observer.scheduler_info(n_workers=-1)["workers"])
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        ran = {str(t["key"]): t["worker"] for t in stream
               if str(t["key"]).startswith(("modeld-fold-", "modeld-final-"))}
        assert sorted(k.rsplit("-", 1)[0] for k in ran) == [
            "modeld-final", *(f"modeld-fold-{i}" for i in range(5))]
        assert set(ran.values()) <= workers
        manifest = json.loads(on_dask.stub.GetVersion(
            pb.GetVersionRequest(model="lr", version=1)).manifest_json)
        where = manifest["engine"]["fold_workers"] + [manifest["engine"]["final_worker"]]
        assert {w.split(" pid ")[0] for w in where} <= workers
        assert str(os.getpid()) not in {w.split(" pid ")[1] for w in where}

        local = on_dask.train("lr-local", algorithm="logistic_regression")
        assert local.state == pb.JOB_STATE_SUCCEEDED, local.error
        assert set(job.metrics) == set(local.metrics)
        for name in local.metrics:
            assert list(job.metrics[name].folds) == list(local.metrics[name].folds), name
            assert job.metrics[name].mean == local.metrics[name].mean, name
        local_manifest = json.loads(on_dask.stub.GetVersion(
            pb.GetVersionRequest(model="lr-local", version=1)).manifest_json)
        assert manifest["profile"] == local_manifest["profile"]  # drift works the same
        rows = pd.read_csv(SPAMBASE).drop(columns="is_spam").head(3)
        answer = on_dask.stub.Predict(records_request("lr", rows.to_dict("records")))
        assert len(answer.labels) == 3

    @pytest.mark.parametrize("algorithm", ["logistic_regression", "xgboost"])
    def test_a_dataset_larger_than_a_worker_names_the_distributed_algorithms(
            self, tmp_path: Path, datasets: Path, algorithm: str) -> None:
        """Workers whose memory_limit is below 3 times the dataset (memory management off,
        so the limit is only reported): FAILED job naming the size and the limit, and what
        to do: an algorithm that trains distributed, or, for xgboost, whose CSV file one
        worker reads whole, smaller files or Parquet."""
        shutil.copytree(datasets, tmp_path / "data")
        with one_small_worker() as small:
            live = start_daemon(tmp_path, dask_scheduler=small.scheduler_address)
            try:
                job = wait_job(live.stub, live.stub.Train(dask_request(
                    "lr", path="spambase.csv", algorithm=algorithm)).id)
            finally:
                live.stop()
        size = (tmp_path / "data" / "spambase.csv").stat().st_size
        assert job.state == pb.JOB_STATE_FAILED
        assert job.error == ({
            "logistic_regression":
                f"FailedPrecondition: dataset.path 'spambase.csv' holds about {size} bytes "
                "in memory; algorithm 'logistic_regression' fits in one Dask worker, which "
                "needs 3 times that, more than the smallest worker's memory_limit=1000000 "
                "bytes: use an algorithm that trains distributed (xgboost), or workers with "
                "more memory",
            "xgboost":
                f"FailedPrecondition: dataset.path 'spambase.csv': 'spambase.csv' holds about "
                f"{size} bytes of text; on engine=dask each CSV or JSON Lines file is read "
                "whole by one worker, which needs 3 times that, more than the smallest "
                "worker's memory_limit=1000000 bytes: split it into smaller files, or write "
                "it as a Parquet folder"}[algorithm])


def write_untidy(path: Path) -> None:
    """spambase with what validation reports: a constant column, missing cells, rows
    without a target, exact duplicates, and a region column to filter on."""
    frame = pd.read_csv(SPAMBASE)
    frame.insert(0, "region", np.arange(len(frame)) % 3)
    frame["constant"] = 1.0
    frame.loc[[5, 50, 500], "word_freq_make"] = np.nan
    frame["is_spam"] = frame["is_spam"].astype("Int64")  # integers with nulls
    frame.loc[[6, 60], "is_spam"] = pd.NA
    frame = pd.concat([frame, frame.iloc[[1, 2, 3]]], ignore_index=True)
    frame.to_parquet(path, index=False)


class TestValidationOnDask:
    def test_the_report_equals_the_local_engines(self, on_dask: LiveDaemon) -> None:
        """Missing values, rows without a target, duplicates, a constant column, class
        balance, and numeric-range and value filters: computed as Dask reductions and
        per-partition filters, the manifest's validation report (counts and warnings) is
        the local engine's, word for word."""
        write_untidy(on_dask.data_root / "untidy.parquet")
        filters = [pb.RowFilter(column="region", values=pb.ValueSet(values=["0", "2"])),
                   pb.RowFilter(column="capital_run_length_total",
                                range=pb.NumericRange(min=2))]
        reports = []
        for model, engine in (("untidy-dask", "dask"), ("untidy-local", "")):
            request = pb.TrainRequest(
                model=model, algorithm="xgboost", engine=engine, cv_folds=3,
                params={"n_estimators": "10"},
                dataset=pb.Dataset(path="untidy.parquet", target="is_spam", filters=filters))
            job = wait_job(on_dask.stub, on_dask.stub.Train(request).id)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
            reports.append(json.loads(on_dask.stub.GetVersion(pb.GetVersionRequest(
                model=model, version=1)).manifest_json)["validation"])
        dask, local = reports
        print(json.dumps(dask, indent=1))
        assert dask["warnings"] == ["constant columns kept (they carry no information): "
                                    "constant",
                                    f"{dask['duplicates']['count']} exact duplicate rows kept"]
        assert dask["missing_target"] == {"count": 2, "action": "dropped"}
        assert dask["missing_values"] == {"word_freq_make": 3}
        for key in ("rows_read", "rows_used", "filtered_out", "missing_target", "duplicates",
                    "missing_values", "constant_columns", "target", "warnings", "malformed"):
            assert dask[key] == local[key], key

    @pytest.mark.parametrize(("dataset", "validation", "error"), [
        (pb.Dataset(path="untidy.parquet", target="is_spam"),
         pb.ValidationOptions(min_rows=5000),
         "FailedPrecondition: 4602 usable rows, fewer than min_rows=5000"),
        (pb.Dataset(path="untidy.parquet", target="is_spam"),
         pb.ValidationOptions(fail_on_missing_target=True),
         "FailedPrecondition: 2 rows have no target 'is_spam'"),
        (pb.Dataset(path="untidy.parquet", target="is_spam", filters=[pb.RowFilter(
            column="is_spam", values=pb.ValueSet(values=["1"]))]), None,
         "FailedPrecondition: dataset.target 'is_spam' has a single class '1': "
         "classification needs at least two"),
    ])
    def test_hopeless_data_fails_as_on_the_local_engine(
            self, on_dask: LiveDaemon, dataset: pb.Dataset,
            validation: pb.ValidationOptions | None, error: str) -> None:
        write_untidy(on_dask.data_root / "untidy.parquet")
        errors = []
        for engine in ("dask", ""):
            request = pb.TrainRequest(model="u", algorithm="xgboost", engine=engine,
                                      dataset=dataset, validation=validation)
            errors.append(wait_job(on_dask.stub, on_dask.stub.Train(request).id).error)
        assert errors == [error, error]


def write_many_forms(root: Path) -> None:
    """spambase four ways, its rows in the same order: a glob of CSV files (one gzipped),
    JSON Lines files (one gzipped), and a Parquet folder partitioned by region=N/."""
    import gzip

    frame = pd.read_csv(SPAMBASE)
    parts = np.array_split(np.arange(len(frame)), 3)
    (root / "csv").mkdir()
    (root / "jsonl").mkdir()
    for i, rows in enumerate(parts):
        part = frame.iloc[rows]
        name = f"2026-0{i + 1}"
        if i == 1:
            with gzip.open(root / "csv" / f"{name}.csv.gz", "wt") as out:
                part.to_csv(out, index=False)
            with gzip.open(root / "jsonl" / f"{name}.jsonl.gz", "wt") as out:
                part.to_json(out, orient="records", lines=True)
        else:
            part.to_csv(root / "csv" / f"{name}.csv", index=False)
            part.to_json(root / "jsonl" / f"{name}.jsonl", orient="records", lines=True)
        folder = root / "hive" / f"region={i}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-0.parquet", index=False)


class TestManyFilesOnBothEngines:
    @pytest.mark.parametrize(("path", "rows"), [("csv/2026-*.csv*", 4601),
                                                ("jsonl/*", 4601), ("hive", 4601)])
    def test_one_request_trains_on_both_engines(self, on_dask: LiveDaemon, path: str,
                                               rows: int) -> None:
        """A glob of CSV files (one gzipped), JSON Lines files, a hive-partitioned Parquet
        folder: the same request trains with engine local and engine dask; the hive key
        is a column of both (XGBoost's metrics agree within 0.01, as for one file)."""
        write_many_forms(on_dask.data_root)
        jobs = {}
        for engine in ("", "dask"):
            request = pb.TrainRequest(model=f"m-{engine or 'local'}", algorithm="xgboost",
                                      engine=engine, cv_folds=3, params={"n_estimators": "20"},
                                      dataset=pb.Dataset(path=path, target="is_spam"))
            jobs[engine] = wait_job(on_dask.stub, on_dask.stub.Train(request).id)
            assert jobs[engine].state == pb.JOB_STATE_SUCCEEDED, jobs[engine].error
        for engine in jobs:
            manifest = json.loads(on_dask.stub.GetVersion(pb.GetVersionRequest(
                model=f"m-{engine or 'local'}", version=1)).manifest_json)
            assert manifest["dataset"]["rows"] == rows
            assert ("region" in manifest["features"]) == (path == "hive")
        gap = abs(jobs[""].metrics["accuracy"].mean - jobs["dask"].metrics["accuracy"].mean)
        print(f"{path}: accuracy gap {gap:.4f} load {os.getloadavg()[0]:.1f}")
        assert gap <= 0.01

    def test_logistic_regression_on_a_hive_folder_equals_the_local_engine(
            self, on_dask: LiveDaemon) -> None:
        """The scikit-learn path prepares a many-file dataset on a worker with the local
        engine's reader: the same rows, the same folds, the same metrics exactly."""
        write_many_forms(on_dask.data_root)
        jobs = []
        for engine in ("", "dask"):
            jobs.append(wait_job(on_dask.stub, on_dask.stub.Train(pb.TrainRequest(
                model=f"lr-{engine}", algorithm="logistic_regression", engine=engine,
                dataset=pb.Dataset(path="hive", target="is_spam"))).id))
            assert jobs[-1].state == pb.JOB_STATE_SUCCEEDED, jobs[-1].error
        local, dask = jobs
        for name in local.metrics:
            assert list(dask.metrics[name].folds) == list(local.metrics[name].folds), name

    def test_an_empty_glob_is_invalid_naming_the_pattern(self, on_dask: LiveDaemon) -> None:
        for engine in ("", "dask"):
            err = refused(on_dask, pb.TrainRequest(
                model="m", algorithm="xgboost", engine=engine,
                dataset=pb.Dataset(path="data/2026-*.csv", target="is_spam")))
            assert err.code() == CODE.INVALID_ARGUMENT
            assert err.details() == ("dataset.path 'data/2026-*.csv' matches no file under "
                                     "the data root")

    def test_a_malformed_jsonl_record_is_dropped_and_counted_as_on_the_local_engine(
            self, on_dask: LiveDaemon) -> None:
        """Both engines drop it and report it as file:line, with the same counts; past
        max_malformed_fraction both fail with the local engine's words."""
        write_many_forms(on_dask.data_root)
        with (on_dask.data_root / "jsonl" / "2026-03.jsonl").open("a") as out:
            out.write('{"is_spam": 1, "broken": \n')
        request = pb.TrainRequest(model="m", algorithm="xgboost", engine="dask", cv_folds=2,
                                  dataset=pb.Dataset(path="jsonl/*", target="is_spam"))
        reports = []
        for engine in ("dask", ""):
            request.engine = engine
            job = wait_job(on_dask.stub, on_dask.stub.Train(request).id)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
            manifest = json.loads(on_dask.stub.GetVersion(pb.GetVersionRequest(
                model="m", version=job.version)).manifest_json)
            reports.append(manifest["validation"])
        on_dask_report, local_report = reports
        assert on_dask_report["malformed"] == local_report["malformed"] == {
            "count": 1, "first_lines": ["2026-03.jsonl:1534"], "action": "dropped",
            "wrong_field_count": 1, "unparsable_numbers": 0}
        assert on_dask_report["rows_read"] == local_report["rows_read"] == 4602
        assert on_dask_report["rows_used"] == local_report["rows_used"]

        request.engine = "dask"
        request.validation.max_malformed_fraction = 0.0001
        job = wait_job(on_dask.stub, on_dask.stub.Train(request).id)
        assert job.state == pb.JOB_STATE_FAILED
        assert job.error == ("FailedPrecondition: 1 of 4602 rows are malformed (first at lines "
                             "['2026-03.jsonl:1534']), more than max_malformed_fraction=0.0001")


class TestEngineAuto:
    def test_the_policy_threshold_sends_large_datasets_to_dask(self, on_dask: LiveDaemon
                                                               ) -> None:
        """engine auto with policy.dask_above_bytes: spambase.csv (about 700 KB) goes to
        Dask under a 1000-byte threshold, stays local under a 1 GB one or with none."""
        size = (on_dask.data_root / "spambase.csv").stat().st_size
        for above, engine in ((1000, "dask"), (10**9, "local"), (0, "local")):
            on_dask.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(
                model="auto", dask_above_bytes=above)))
            job = wait_job(on_dask.stub, on_dask.stub.Train(pb.TrainRequest(
                model="auto", algorithm="xgboost", engine="auto", cv_folds=2,
                params={"n_estimators": "5"},
                dataset=pb.Dataset(path="spambase.csv", target="is_spam"))).id)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
            assert job.request.engine == engine, (above, size)
            got = on_dask.stub.GetPolicy(pb.GetPolicyRequest(model="auto"))
            assert got.dask_above_bytes == above

    def test_without_a_cluster_auto_trains_locally(self, daemon: LiveDaemon) -> None:
        daemon.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(model="auto",
                                                                   dask_above_bytes=1)))
        job = daemon.stub.Train(pb.TrainRequest(
            model="auto", algorithm="xgboost", engine="auto",
            dataset=pb.Dataset(path="spambase.csv", target="is_spam")))
        assert job.request.engine == "local"

    def test_a_request_dask_does_not_take_stays_local(self, unreachable: LiveDaemon
                                                      ) -> None:
        unreachable.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(model="auto",
                                                                        dask_above_bytes=1)))
        job = unreachable.stub.Train(pb.TrainRequest(
            model="auto", algorithm="logistic_regression", engine="auto",
            calibration=pb.CALIBRATION_SIGMOID,
            dataset=pb.Dataset(path="spambase.csv", target="is_spam")))
        assert job.request.engine == "local"

    def test_a_negative_threshold_is_invalid(self, daemon: LiveDaemon) -> None:
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(
                model="auto", dask_above_bytes=-1)))
        assert err.value.code() == CODE.INVALID_ARGUMENT
        assert err.value.details() == "policy.dask_above_bytes must be >= 0, got -1"


def _peak_rss_mib() -> float:
    """This process's VmHWM (peak resident memory) in MiB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@pytest.mark.slow
class TestLargerThanTheDaemon:
    MEMORY_MB = 400
    ROWS, COLUMNS = 1_250_000, 50  # 500 MB of float64 in memory

    def test_a_dataset_larger_than_train_memory_mb_trains_with_the_daemons_rss_flat(
            self, tmp_path: Path, cluster: distributed.LocalCluster) -> None:
        """A 500 MB (in memory) Parquet folder trains on Dask under --train-memory-mb 400,
        which kills a job whose process tree holds more: neither the job's process nor
        the daemon (this process, its peak reset through /proc/self/clear_refs first)
        ever holds the rows."""
        folder = tmp_path / "data" / "big"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(4):
            x = rng.standard_normal((self.ROWS // 4, self.COLUMNS))
            frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(self.COLUMNS)])
            frame["y"] = (x[:, 0] + x[:, 1] > 0).astype("int64")
            frame.to_parquet(folder / f"part-{i}.parquet", index=False)
        live = start_daemon(tmp_path, dask_scheduler=cluster.scheduler_address,
                            train_memory_mb=self.MEMORY_MB)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # the peak restarts from now
            before = _peak_rss_mib()
            job = wait_job(live.stub, live.stub.Train(pb.TrainRequest(
                model="big", algorithm="xgboost", engine="dask", cv_folds=2,
                params={"n_estimators": "5", "max_depth": "3"},
                dataset=pb.Dataset(path="big", target="y"))).id)
            after = _peak_rss_mib()
        finally:
            live.stop()
        dataset_mib = self.ROWS * self.COLUMNS * 8 / 2**20
        print(f"daemon peak RSS {before:.0f} -> {after:.0f} MiB; dataset {dataset_mib:.0f} "
              f"MiB; load {os.getloadavg()[0]:.1f}")
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        assert job.metrics["accuracy"].mean > 0.9
        # The daemon's process also runs this test's scheduler: some growth is its own
        # (61 MiB once, at load 9), far below one copy of the data.
        assert after - before < dataset_mib / 4


class TestCategoricalsOnDask:
    def test_a_text_column_is_one_hot_encoded_as_the_local_engine_does(
            self, on_dask: LiveDaemon) -> None:
        """A text column with gaps: XGBoost on Dask trains on the local engine's encoding
        (the published preprocessors turn the same rows into the same matrix), Predict
        takes the text, an unseen category included, and the report counts its gaps."""
        from modeld_server import artifacts
        from modeld_server.features import FeatureSchema
        from modeld_server.registry.store import RegistryStore

        frame = pd.read_csv(SPAMBASE)
        frame.insert(0, "color", np.array(["red", "green", "blue", None], dtype=object)[
            np.arange(len(frame)) % 4])
        frame.to_csv(on_dask.data_root / "colors.csv", index=False)
        fitted = {}
        for engine in ("dask", ""):
            model = f"colors-{engine or 'local'}"
            job = wait_job(on_dask.stub, on_dask.stub.Train(pb.TrainRequest(
                model=model, algorithm="xgboost", engine=engine, cv_folds=2,
                params={"n_estimators": "10"},
                dataset=pb.Dataset(path="colors.csv", target="is_spam"))).id)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
            store = RegistryStore(on_dask.settings.registry)
            manifest = store.read_manifest(model, 1)
            fitted[engine] = artifacts.load(store.paths(model).version(1), manifest.format,
                                            "xgboost", "classification")
            assert manifest.schema is not None and manifest.schema["categorical"] == ["color"]
            assert manifest.validation is not None
            assert manifest.validation["missing_values"] == {"color": 1150}
        schema = FeatureSchema.from_json(manifest.schema)
        rows = frame.drop(columns="is_spam").head(8)
        matrix = schema.matrix_from_frame(rows)
        assert np.array_equal(fitted["dask"].preprocess.transform(matrix),
                              fitted[""].preprocess.transform(matrix))
        records = rows.head(2).to_dict("records")
        records[0]["color"], records[1]["color"] = "red", "purple"
        answer = on_dask.stub.Predict(records_request("colors-dask", records))
        assert len(answer.labels) == 2


class TestOneWorker:
    def test_one_worker_equals_plain_xgboost_on_the_same_folds(self, tmp_path: Path) -> None:
        """With one worker, each fold's accuracy and AUC equal, bit for bit, plain
        XGBClassifier fitted on the same rows: one worker sketches the quantiles of all its
        rows, as the plain library does. (With two workers the sketches are merged and may
        differ on large data; on spambase they were equal too, but that is not promised.)
        A CSV file and a Parquet folder of the same rows give the same figures."""
        write_parquet_folder(tmp_path / "data" / "spam")
        spec = TrainSpec.from_json({"model": "m", "dataset": {"path": "spam",
                                                               "target": "is_spam"},
                                    "algorithm": "xgboost", "task": "classification",
                                    "cv_folds": 5, "seed": 42, "engine": "dask"})
        (tmp_path / "staging").mkdir()
        shutil.copy(SPAMBASE, tmp_path / "data" / "spambase.csv")
        csv = TrainSpec.from_json(spec.to_json() | {"dataset": {"path": "spambase.csv",
                                                                 "target": "is_spam"}})
        with local_cluster(1) as one:
            context = {"dask_scheduler": one.scheduler_address}
            got = dask_engine.train(spec, tmp_path / "data", tmp_path / "staging",
                                    lambda *a: None, context, 10**7, lambda: None)
            from_csv = dask_engine.train(csv, tmp_path / "data", tmp_path / "staging",
                                         lambda *a: None, context, 10**7, lambda: None)
        # The same rows in the same order: the same folds, whatever the file format (the
        # CSV's integer labels are read as floats, and written back as the file has them).
        assert from_csv["metrics"] == got["metrics"]
        assert from_csv["classes"] == got["classes"] == ["0", "1"]
        frame = pd.read_csv(SPAMBASE)
        x, y = frame.drop(columns="is_spam").to_numpy(), frame["is_spam"].to_numpy()
        folds = dask_engine.fold_of(np.arange(len(frame)), 42, 5)
        for k in range(5):
            model = XGBClassifier(random_state=42).fit(x[folds != k], y[folds != k])
            proba = model.predict_proba(x[folds == k])
            plain = metric_fns.classification_metrics(y[folds == k], proba.argmax(axis=1),
                                                      proba, 2)
            for name in ("accuracy", "roc_auc"):
                dask_value = got["metrics"][name]["folds"][k]
                print(f"fold {k} {name}: dask {dask_value!r} plain {plain[name]!r}")
                assert dask_value == plain[name]


class TestRefusedAtTrain:
    def test_engine_dask_without_a_cluster_names_both_flags(self, daemon: LiveDaemon) -> None:
        err = refused(daemon, dask_request("spam", path="spambase.csv"))
        assert err.code() == CODE.FAILED_PRECONDITION
        assert err.details() == NO_CLUSTER

    def test_an_unknown_engine_is_invalid(self, daemon: LiveDaemon) -> None:
        request = dask_request("spam", path="spambase.csv")
        request.engine = "spark"
        err = refused(daemon, request)
        assert err.code() == CODE.INVALID_ARGUMENT
        assert err.details() == "engine 'spark' is not one of: local, dask, auto"

    def test_calibration_is_refused_on_dask(self, unreachable: LiveDaemon) -> None:
        err = refused(unreachable, dask_request("spam", algorithm="logistic_regression",
                                                calibration=pb.CALIBRATION_SIGMOID))
        assert err.code() == CODE.FAILED_PRECONDITION
        assert err.details() == ("engine dask does not take calibration with algorithm "
                                 "'logistic_regression' in this version")

    def test_a_folder_file_linked_outside_the_data_root_is_refused(
            self, unreachable: LiveDaemon, tmp_path_factory: pytest.TempPathFactory) -> None:
        outside = tmp_path_factory.mktemp("outside") / "secret.parquet"
        pd.DataFrame({"a": [1.0], "is_spam": [1]}).to_parquet(outside)
        (unreachable.data_root / "spam" / "part-9.parquet").symlink_to(outside)
        err = refused(unreachable, dask_request("spam"))
        assert err.code() == CODE.PERMISSION_DENIED
        assert err.details() == ("dataset.path 'spam/part-9.parquet' leads outside "
                                 "the data root")



class TestDaskLocal:
    def test_the_local_cluster_starts_on_first_use_and_closes_with_the_daemon(self) -> None:
        """--dask-local N: nothing runs until a job asks for the address; the same cluster
        (one process of the daemon's, dask_local.py) then serves every job; close() stops
        it, and a later job is refused."""
        from modeld_server.errors import FailedPrecondition
        from modeld_server.training.cluster import DaskCluster

        local = DaskCluster(local_workers=1)
        assert local.configured
        address = local.address()
        assert address.startswith("tcp://127.0.0.1:")
        assert local.address() == address
        with distributed.Client(address) as observer:
            assert len(observer.scheduler_info(n_workers=-1)["workers"]) == 1
        [process] = cluster_processes()
        local.close()
        assert cluster_processes() == [] and process not in cluster_processes()
        with pytest.raises(OSError):  # nothing listens there any more
            distributed.Client(address, timeout=5)
        with pytest.raises(FailedPrecondition) as err:
            local.address()
        assert err.value.message == "the daemon is shutting down: no Dask cluster"


    def test_what_the_workers_print_goes_to_the_log_and_never_blocks_them(
            self, tmp_path: Path) -> None:
        """The daemon reads one line of the cluster's stdout; a worker printing 1 MB (as
        XGBoost's warnings are printed) would fill an undrained pipe and block. It goes to
        the cluster's log instead."""
        from modeld_server.training.cluster import DaskCluster

        log = tmp_path / "dask-local.log"
        local = DaskCluster(local_workers=1, local_log=log)
        try:
            with distributed.Client(local.address()) as client:
                future = client.submit(print_a_lot, 1 << 20, pure=False)
                assert future.result(timeout=120) == 1 << 20
        finally:
            local.close()
        assert "modeld-probe " * 10 in log.read_text()


def print_a_lot(size: int) -> int:
    """In a worker: prints `size` characters to stdout; returns how many."""
    chunk = "modeld-probe " * 100
    printed = 0
    while printed < size:
        print(chunk, flush=True)
        printed += len(chunk) + 1
    return size


def cluster_processes() -> list[int]:
    """The pids of the --dask-local cluster processes (dask_local.py) this process (the
    test's in-process daemon) started and that are still running."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
                state, ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except OSError:
                continue
            if (b"modeld_server.training.dask_local" in cmdline and state != "Z"
                    and int(ppid) == os.getpid()):
                found.append(int(proc.name))
    return found


@pytest.fixture
def dask_local(tmp_path: Path, datasets: Path) -> Iterator[LiveDaemon]:
    """A daemon started with --dask-local 2; spambase also as spam/*.parquet."""
    shutil.copytree(datasets, tmp_path / "data")
    write_parquet_folder(tmp_path / "data" / "spam")
    live = start_daemon(tmp_path, dask_local=2)
    yield live
    live.stop()
    assert cluster_processes() == [], "the daemon left its cluster running"


def scheduler_of(live: LiveDaemon) -> str:
    """The address of the daemon's --dask-local scheduler (started if none runs)."""
    return live.runtime.service.dask.address()


SCHEDULER_GONE = (r"Unavailable: the Dask scheduler at {} went away during the job "
                  r"\(its process exited or the network failed\): train again; the "
                  r"daemon starts a new local cluster for the next job \(cause: \w+\)")


class TestLocalClusterFaults:
    """--dask-local's cluster runs in a process of its own (dask_local.py): xgboost.dask's
    tracker runs on the scheduler, and once (CI, stop 20) it aborted the process hosting
    the scheduler when a worker was killed mid-fit. These tests break that process and its
    workers and watch the daemon go on."""

    def test_a_worker_killed_during_a_cv_fit_fails_the_job_and_the_next_one_trains(
            self, dask_local: LiveDaemon) -> None:
        """SIGKILL one of two worker processes (its pid asked of the worker itself) while
        both run XGBoost's training task of a CV fold. What happens, observed: the nanny
        restarts the worker, Dask re-schedules the dead rank's task, and xgboost.dask
        refuses it ("Resilience is not yet supported"): the job FAILS; no retry. The error
        names the dead worker (or, if the tracker took the scheduler's process down, the
        scheduler). The daemon answers, and the next engine=dask job trains."""
        live = dask_local
        job = live.stub.Train(dask_request("spam", params={"n_estimators": "1500"}))
        address = scheduler_of(live)
        with distributed.Client(address) as observer:
            pids = observer.run(os.getpid)
            victim = _wait_for_fit(observer, live, job.id)
            os.kill(pids[victim], signal.SIGKILL)
            end = wait_job(live.stub, job.id)
        print(f"killed {victim} in {end.phase!r}: {end.error!r} "
              f"load {os.getloadavg()[0]:.1f}")
        assert end.state == pb.JOB_STATE_FAILED
        worker_left = (
            f"Unavailable: Dask worker {re.escape(victim)} left the cluster during "
            r"the job \(killed or crashed; 2 workers at the start\): XGBoost on "
            r"Dask cannot finish a fit without one of its workers; train again "
            r"\(cause: \w+\); the local cluster's workers were restarted, freeing the "
            r"ranks that waited for it")
        assert (re.fullmatch(worker_left, end.error)
                or re.fullmatch(SCHEDULER_GONE.format(re.escape(address)), end.error)
                ), end.error
        assert end.version == 0
        status = live.stub.GetStatus(pb.GetStatusRequest())
        assert (status.daemon.jobs_running, status.daemon.jobs_queued) == (0, 0)
        assert [m.model for m in status.models if m.active_version] == []
        again = live.train("spam", path="spam", engine="dask", cv_folds=2,
                           params={"n_estimators": "10"})
        assert again.state == pb.JOB_STATE_SUCCEEDED, again.error

    def test_the_cluster_process_killed_mid_fit_fails_the_job_and_a_new_one_starts(
            self, dask_local: LiveDaemon) -> None:
        """SIGKILL the cluster's own process (scheduler and nannies; its workers exit with
        it) during a CV fit, as a tracker abort would: the job FAILS naming the scheduler;
        the next engine=dask job starts a new cluster (another address) and trains."""
        live = dask_local
        job = live.stub.Train(dask_request("spam", params={"n_estimators": "1500"}))
        address = scheduler_of(live)
        [cluster] = cluster_processes()
        with distributed.Client(address) as observer:
            _wait_for_fit(observer, live, job.id)
            os.kill(cluster, signal.SIGKILL)
        end = wait_job(live.stub, job.id)
        assert end.state == pb.JOB_STATE_FAILED
        assert re.fullmatch(SCHEDULER_GONE.format(re.escape(address)), end.error), end.error
        again = live.stub.Train(dask_request("spam", cv_folds=2,
                                             params={"n_estimators": "10"}))
        assert scheduler_of(live) != address
        done = wait_job(live.stub, again.id)
        assert done.state == pb.JOB_STATE_SUCCEEDED, done.error
        assert cluster not in cluster_processes() and len(cluster_processes()) == 1


    def test_a_job_whose_workers_another_job_restarted_does_not_restart_them_again(
            self, tmp_path: Path) -> None:
        """Two engine=dask jobs at once (--max-concurrent-jobs 2): one loses a worker and
        restarts the local cluster's workers; the other's tasks die with them, and none of
        the workers it started with is left. It has no rank of its own still blocked, so it
        restarts nothing: a second restart would fail the job that started on the fresh
        workers meanwhile, whose failure would restart them for the next (observed here:
        the call restarted the workers again)."""
        from modeld_server.training.cluster import DaskCluster

        local = DaskCluster(local_workers=2, local_log=tmp_path / "dask-local.log")
        try:
            address = local.address()
            with distributed.Client(address) as client:
                members = dask_engine._workers(client)
                client.restart()  # the other job's, after its worker was lost
                fresh = dask_engine._workers(client)
                assert set(fresh).isdisjoint(members) and len(fresh) == 2
                fault = dask_engine._cluster_fault(RuntimeError("lost"), client, members,
                                                   address, local=True, xgboost=True)
                assert dask_engine._workers(client) == fresh
        finally:
            local.close()
        assert str(fault) == (
            f"Dask worker {', '.join(members)} left the cluster during the job (killed or "
            "crashed; 2 workers at the start): XGBoost on Dask cannot finish a fit without "
            "one of its workers; train again (cause: RuntimeError)")


class TestDaemonKilled:
    def test_a_daemon_killed_by_sigkill_leaves_no_cluster_process(
            self, tmp_path: Path) -> None:
        """modeld serve --dask-local 1 (a real subprocess) trains once on Dask, so its
        cluster runs (the cluster's process, its nanny's worker process); SIGKILL the
        daemon: the cluster sees its stdin close and every one of its processes exits."""
        from tests.integration.test_faults_processes import Served, process_tree

        with Served(tmp_path, "--dask-local", "1") as daemon:
            write_parquet_folder(tmp_path / "data" / "spam")
            job = wait_job(daemon.stub, daemon.stub.Train(dask_request(
                "spam", cv_folds=2, params={"n_estimators": "10"})).id)
            assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
            tree = process_tree(daemon.process.pid)
            cluster = [pid for pid in tree if b"modeld_server.training.dask_local"
                       in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert len(cluster) == 1
            below = [pid for pid, (depth, _) in process_tree(cluster[0]).items() if depth]
            assert below, "the cluster runs no worker process"
            daemon.process.kill()
            daemon.process.wait()
            deadline = time.monotonic() + 120
            left = {pid: tree[pid] for pid in [*cluster, *below]}
            while left:
                assert time.monotonic() < deadline, f"still running: {sorted(left)}"
                left = {pid: started for pid, started in left.items()
                        if alive_since(pid, started[1])}
                time.sleep(0.1)


def alive_since(pid: int, started: str) -> bool:
    """Whether `pid` is the process that started at `started` and not a zombie."""
    from tests.integration.test_faults_processes import _start_time

    return _start_time(pid) == started


def _wait_for_fit(observer: distributed.Client, live: LiveDaemon, job_id: str) -> str:
    """A worker running xgboost.dask's training task ('fn-...') in the CV phase."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        phase = live.stub.GetJob(pb.GetJobRequest(job_id=job_id)).phase
        training = [w for w, keys in observer.processing().items()
                    if any(str(k).startswith("fn-") for k in keys)]
        if training and phase == "cross_validation":
            return str(training[0])
        time.sleep(0.2)
    raise AssertionError("no XGBoost training task seen on the cluster within 300 s")
