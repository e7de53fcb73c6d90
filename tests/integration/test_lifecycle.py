"""The model lifecycle: validation reports, the quality gate, calibration, aliases, retention."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold
from xgboost import XGBClassifier

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import SPAMBASE, LiveDaemon, start_daemon


def manifest(daemon: LiveDaemon, model: str, version: int) -> dict[str, object]:
    return json.loads((daemon.registry / model / "versions" / str(version) /
                       "manifest.json").read_text())


def predict_version(daemon: LiveDaemon, model: str = "spam", alias: str = "") -> int:
    row = pd.read_csv(SPAMBASE).drop(columns="is_spam").iloc[0].to_dict()
    request = pb.PredictRequest(model=model, alias=alias)
    request.records.rows.add().update(row)
    return daemon.stub.Predict(request).version


class TestLabels:
    """Class labels are the file's own text, whatever pandas made of the column."""

    @staticmethod
    def train_and_predict(daemon: LiveDaemon, name: str, task: int = pb.TASK_UNSPECIFIED
                          ) -> tuple[dict[str, Any], pb.PredictResponse]:
        """Trains on `name` and predicts a = -3 (class one) and a = 3 (class two)."""
        job = daemon.train(name.removesuffix(".csv"), path=name, target="y",
                           algorithm="logistic_regression", cv_folds=2, task=task)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        request = pb.PredictRequest(model=name.removesuffix(".csv"))
        for value in (-3.0, 3.0):
            request.records.rows.add().update({"a": value})
        return manifest(daemon, name.removesuffix(".csv"), 1), daemon.stub.Predict(request)

    @pytest.mark.parametrize("blank", [False, True])
    def test_an_integer_target_keeps_its_labels_with_or_without_a_blank(
            self, daemon: LiveDaemon, blank: bool) -> None:
        """One blank target cell makes pandas read 0/1 as 0.0/1.0; the labels stay 0 and 1."""
        a = np.random.default_rng(6).normal(size=60)
        frame = pd.DataFrame({"a": a, "y": (a > 0).astype(int).astype(str)})
        if blank:
            frame.loc[7, "y"] = ""
        frame.to_csv(daemon.data_root / "ints.csv", index=False)
        as_text = pd.read_csv(daemon.data_root / "ints.csv", dtype={"y": str})["y"].dropna()
        saved, answer = self.train_and_predict(daemon, "ints.csv")
        assert saved["classes"] == sorted(as_text.unique()) == ["0", "1"]
        assert saved["validation"]["target"]["classes"] == as_text.value_counts().to_dict()
        assert saved["validation"]["missing_target"]["count"] == int(blank)
        assert saved["confusion_matrix"]["labels"] == ["0", "1"]
        assert list(answer.classes) == ["0", "1"]
        assert list(answer.labels) == ["0", "1"]

    def test_a_float_text_label_stays_as_written(self, daemon: LiveDaemon) -> None:
        """Labels 1.5 and 2 (read by pandas as 1.5 and 2.0) answer as 1.5 and 2."""
        rng = np.random.default_rng(8)
        a = rng.normal(size=60)
        labels = np.where(a > 0, "2", "1.5").astype(object)
        labels[3] = ""
        pd.DataFrame({"a": a, "y": labels}).to_csv(daemon.data_root / "halves.csv",
                                                   index=False)
        assert pd.read_csv(daemon.data_root / "halves.csv")["y"].dtype == np.float64
        saved, answer = self.train_and_predict(daemon, "halves.csv",
                                               task=pb.TASK_CLASSIFICATION)
        assert saved["classes"] == ["1.5", "2"]
        assert list(answer.labels) == ["1.5", "2"]
        assert set(saved["validation"]["target"]["classes"]) == {"1.5", "2"}


class TestQualityGate:
    def test_a_challenger_on_shuffled_labels_is_rejected_and_the_champion_serves(
            self, daemon: LiveDaemon) -> None:
        frame = pd.read_csv(SPAMBASE)
        frame["is_spam"] = np.random.default_rng(0).permutation(frame["is_spam"].to_numpy())
        frame.to_csv(daemon.data_root / "shuffled.csv", index=False)
        assert daemon.train("spam").activated
        job = daemon.train("spam", path="shuffled.csv")
        assert job.state == pb.JOB_STATE_SUCCEEDED and not job.activated
        assert "REJECTED by the quality gate" in job.message
        gate = manifest(daemon, "spam", 2)["gate"]
        assert gate["passed"] is False and gate["champion_version"] == 1
        assert gate["how"].startswith("labels changed on 48% of the champion's rows")
        assert gate["rows"] == 4601
        assert gate["challenger"] < gate["champion"] - 0.01
        version = daemon.stub.GetVersion(pb.GetVersionRequest(model="spam", version=2))
        assert version.state == pb.VERSION_STATE_REJECTED
        assert version.gate_summary.startswith("rejected: f1 challenger")
        assert predict_version(daemon) == 1
        events = (daemon.registry / "spam/events.jsonl").read_text()
        assert '"event": "rejected"' in events

    def test_retraining_on_the_same_data_compares_in_the_same_folds(
            self, daemon: LiveDaemon) -> None:
        """The champion saw every row and was cross-validated in these very folds: its own
        held-out predictions stand for its recipe, with no refit."""
        daemon.train("spam", algorithm="logistic_regression", cv_folds=3)
        job = daemon.train("spam", algorithm="xgboost", cv_folds=3)
        assert job.activated
        gate = manifest(daemon, "spam", 2)["gate"]
        assert gate["how"] == ("champion's out-of-fold predictions from its own training, in "
                               "the same folds (no refit)")
        assert gate["rows"] == 4601 and gate["passed"] is True
        assert gate["challenger"] > gate["champion"]  # xgboost beats logistic regression

    @pytest.mark.parametrize("damage", ["garbage", "missing"])
    def test_a_champion_whose_row_hashes_are_damaged_is_compared_without_them(
            self, tmp_path: Path, datasets: Path, damage: str) -> None:
        """The shuffled-labels challenger again, with the champion's train_rows.npy
        overwritten or deleted before the daemon notices (no watcher, no re-scan: a
        daemon that noticed reports v1 damaged and trains without a champion): the job
        still trains (its model files are intact), the gate compares in the same folds
        instead of on changed labels, and says why."""
        shutil.copytree(datasets, tmp_path / "data")
        daemon = start_daemon(tmp_path, watch=False, poll_interval=0.0)
        try:
            self._damaged_champion(daemon, damage)
        finally:
            daemon.stop()

    def _damaged_champion(self, daemon: LiveDaemon, damage: str) -> None:
        frame = pd.read_csv(SPAMBASE)
        frame["is_spam"] = np.random.default_rng(0).permutation(frame["is_spam"].to_numpy())
        frame.to_csv(daemon.data_root / "shuffled.csv", index=False)
        assert daemon.train("spam").activated
        rows = daemon.registry / "spam" / "versions" / "1" / "train_rows.npy"
        if damage == "garbage":
            rows.write_bytes(b"\x93NUMPY garbage" * 8)
        else:
            rows.unlink()
        job = daemon.train("spam", path="shuffled.csv")
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        gate = manifest(daemon, "spam", 2)["gate"]
        why = {"garbage": "its train_rows.npy differs from its manifest",
               "missing": "its train_rows.npy is missing"}[damage]
        # Without the hashes the champion's recipe is refitted on the shuffled labels too,
        # so the two score alike: what the "labels changed" check exists to catch.
        assert gate["champion_version"] == 1
        assert gate["how"].startswith("champion's recipe refitted in the same folds")
        assert gate["reasons"][-1] == (
            f"champion v1's row hashes not used ({why}): rows it never saw and changed labels "
            "not looked for")

    def test_thresholds_block_a_first_version(self, daemon: LiveDaemon) -> None:
        daemon.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(
            model="spam", thresholds=[pb.Threshold(metric="roc_auc", op=">=", value=0.999)])))
        job = daemon.train("spam", cv_folds=2)
        assert not job.activated and "roc_auc" in job.message
        status = daemon.stub.GetStatus(pb.GetStatusRequest(model="spam")).models[0]
        assert status.active_version == 0 and status.state == pb.LOAD_STATE_NO_ACTIVE_VERSION
        promoted = daemon.stub.Promote(pb.PromoteRequest(model="spam", version=1,
                                                         reason="accepted by hand"))
        assert (promoted.previous_version, promoted.active_version) == (0, 1)
        assert predict_version(daemon) == 1

    def test_policy_round_trip_and_validation(self, daemon: LiveDaemon) -> None:
        policy = daemon.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(
            model="spam", primary_metric="roc_auc", tolerance=0.0)))
        assert (policy.primary_metric, policy.tolerance) == ("roc_auc", 0.0)
        daemon.train("spam", cv_folds=2)
        assert daemon.stub.GetPolicy(pb.GetPolicyRequest(model="spam")) == policy
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(
                model="spam", thresholds=[pb.Threshold(metric="f1", op="=>", value=0.9)])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "operator '=>'" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Promote(pb.PromoteRequest(model="spam", version=1, reason=""))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class TestValidation:
    def test_the_report_counts_malformed_duplicate_and_missing_rows(
            self, daemon: LiveDaemon) -> None:
        lines = ["a,b,label"] + [f"{i % 7},{i % 5},{'x' if i % 3 else 'y'}" for i in range(200)]
        lines[10] = "1,2,x,extra"  # a ragged record
        lines[20] = "1,2,"  # a missing target
        lines[30] = "oops,2,x"  # an unparsable number in a numeric column
        (daemon.data_root / "messy.csv").write_text("\n".join(lines) + "\n")
        job = daemon.train("messy", path="messy.csv", target="label",
                           algorithm="logistic_regression",
                           validation=pb.ValidationOptions(max_malformed_fraction=0.05))
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        report = manifest(daemon, "messy", 1)["validation"]
        assert report["rows_read"] == 200
        assert report["malformed"]["count"] == 2
        assert report["malformed"]["first_lines"] == [11, 31]
        assert report["missing_target"] == {"count": 1, "action": "dropped"}
        assert report["duplicates"]["count"] > 0 and report["duplicates"]["action"] == "kept"
        assert report["rows_used"] == 197
        assert report["target"]["classes"] == {"x": 131, "y": 66}

    def test_too_many_malformed_rows_fail_the_job(self, daemon: LiveDaemon) -> None:
        lines = ["a,label"] + [f"{i},{i % 2}" for i in range(100)]
        for i in range(1, 6):
            lines[i] = f"{i},1,2"
        (daemon.data_root / "ragged.csv").write_text("\n".join(lines) + "\n")
        job = daemon.train("ragged", path="ragged.csv", target="label",
                           algorithm="logistic_regression")
        assert job.state == pb.JOB_STATE_FAILED
        assert job.error.startswith("FailedPrecondition: 5 of 100 rows are malformed "
                                    "(first at lines [2, 3, 4, 5, 6])")

    def test_a_single_class_and_too_few_rows_fail(self, daemon: LiveDaemon) -> None:
        (daemon.data_root / "one.csv").write_text("a,label\n" + "1,x\n" * 30)
        job = daemon.train("one", path="one.csv", target="label", algorithm="logistic_regression")
        assert "single class 'x'" in job.error
        (daemon.data_root / "few.csv").write_text("a,label\n" + "1,x\n2,y\n" * 5)
        job = daemon.train("few", path="few.csv", target="label", algorithm="logistic_regression")
        assert job.error == "FailedPrecondition: 10 usable rows, fewer than min_rows=20"

    def test_date_range_and_column_selection(self, daemon: LiveDaemon) -> None:
        days = pd.date_range("2024-01-01", periods=366, freq="D")
        rng = np.random.default_rng(3)
        frame = pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "id": range(366),
                              "x": rng.normal(size=366)})
        frame["y"] = (frame["x"] > 0).astype(int)
        frame.to_csv(daemon.data_root / "daily.csv", index=False)
        job = daemon.train("daily", algorithm="logistic_regression",
                           dataset=pb.Dataset(
                               path="daily.csv", target="y", drop_columns=["id", "day"],
                               filters=[pb.RowFilter(column="day", dates=pb.DateRange(
                                   start="2024-01-01", end="2024-06-30"))]))
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        saved = manifest(daemon, "daily", 1)
        assert saved["dataset"]["rows"] == 182  # 31+29+31+30+31+30 days of 2024
        assert saved["validation"]["filtered_out"] == 184
        assert saved["features"] == ["x"]

    def test_a_value_set_on_a_numeric_column_trains_on_the_rows_pandas_keeps(
            self, daemon: LiveDaemon) -> None:
        """--filter word_freq_make=0,0.1: 3,599 rows as in pandas (comparing text kept 51)."""
        frame = pd.read_csv(SPAMBASE)
        expected = int(frame["word_freq_make"].isin([0, 0.1]).sum())
        job = daemon.train("spam", algorithm="logistic_regression", cv_folds=2,
                           dataset=pb.Dataset(path="spambase.csv", target="is_spam", filters=[
                               pb.RowFilter(column="word_freq_make",
                                            values=pb.ValueSet(values=["0", "0.1"]))]))
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        saved = manifest(daemon, "spam", 1)
        assert saved["dataset"]["rows"] == expected == 3599
        assert saved["validation"]["filtered_out"] == len(frame) - expected

    def test_a_range_on_a_text_column_fails_the_job_naming_it(self, daemon: LiveDaemon) -> None:
        job = daemon.train("mixed", path="mixed.csv", target="label",
                           algorithm="logistic_regression", cv_folds=2,
                           dataset=pb.Dataset(path="mixed.csv", target="label", filters=[
                               pb.RowFilter(column="color", range=pb.NumericRange(min=1))]))
        assert job.state == pb.JOB_STATE_FAILED
        assert job.error == ("InvalidArgument: dataset.filters[0]: column 'color' holds text, "
                             "not numbers (e.g. 'blue'): a range needs a numeric column")

    def test_selection_errors_name_the_field(self, daemon: LiveDaemon) -> None:
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Train(pb.TrainRequest(
                model="m", algorithm="xgboost", dataset=pb.Dataset(
                    path="spambase.csv", target="is_spam",
                    filters=[pb.RowFilter(column="nope", values=pb.ValueSet(values=["a"]))])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith("dataset.filters[0].column 'nope' is not a column")


class TestCalibration:
    def test_calibration_lowers_ece_of_a_poorly_calibrated_model(self,
                                                                 daemon: LiveDaemon) -> None:
        """Gaussian naive Bayes is famously overconfident on spambase... we use a shallow
        random forest, whose probabilities are squeezed toward the middle."""
        job = daemon.train("cal", algorithm="random_forest", cv_folds=3,
                           params={"n_estimators": "30", "max_depth": "3"},
                           calibration=pb.CALIBRATION_AUTO)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        report = manifest(daemon, "cal", 1)["calibration"]
        assert report["method"] in ("sigmoid", "isotonic")
        assert report["after"]["ece"] < report["before"]["ece"]
        assert report["after"]["brier"] < report["before"]["brier"]
        assert report["before"] == report["candidates"]["none"]
        assert report["won_by"] == (report["candidates"][report["runner_up"]]["brier"]
                                    - report["after"]["brier"]) > 0
        assert predict_version(daemon, "cal") == 1

    def test_auto_ships_no_calibrator_when_none_has_the_best_brier(
            self, daemon: LiveDaemon) -> None:
        """XGBoost on spambase is calibrated already: by scikit-learn's own cross-validation
        (CalibratedClassifierCV with cv=3 inside each fold) sigmoid and isotonic both raise
        the Brier score, so auto keeps the plain model and says by how much it won."""
        queued = daemon.stub.Train(pb.TrainRequest(
            model="spam", algorithm="xgboost", calibration=pb.CALIBRATION_AUTO,
            dataset=pb.Dataset(path="spambase.csv", target="is_spam")))
        frame = pd.read_csv(SPAMBASE)  # the reference is computed while the job runs
        x, y = frame.drop(columns="is_spam").to_numpy(), frame["is_spam"].to_numpy()
        folds: dict[str, list[float]] = {"none": [], "sigmoid": [], "isotonic": []}
        for train, test in StratifiedKFold(n_splits=5, shuffle=True,
                                           random_state=42).split(x, y):
            for method, briers in folds.items():
                model = XGBClassifier(random_state=42)
                if method != "none":
                    model = CalibratedClassifierCV(model, method=method, cv=3)
                model.fit(x[train], y[train])
                briers.append(brier_score_loss(y[test], model.predict_proba(x[test])[:, 1]))
        plain = {method: float(np.mean(briers)) for method, briers in folds.items()}
        # 35 XGBoost fits in the job as in this test: a generous deadline for a busy machine
        job = [e.job for e in daemon.stub.WatchJob(pb.WatchJobRequest(job_id=queued.id),
                                                    timeout=1200)][-1]
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        report = manifest(daemon, "spam", 1)["calibration"]
        got = {method: scores["brier"] for method, scores in report["candidates"].items()}
        assert got == pytest.approx(plain, rel=1e-6)
        assert min(plain, key=plain.__getitem__) == "none"
        assert (report["method"], report["requested"], report["runner_up"]) == (
            "none", "auto", "isotonic")
        assert report["after"] == report["before"] == report["candidates"]["none"]
        assert report["won_by"] == got["isotonic"] - got["none"] > 0
        assert {k: round(v, 5) for k, v in got.items()} == {
            "none": 0.03776, "sigmoid": 0.03876, "isotonic": 0.03806}  # README's figures
        assert list(job.metrics["brier"].folds) == pytest.approx(folds["none"], rel=1e-6)
        sample = frame.drop(columns="is_spam").iloc[:20]
        request = pb.PredictRequest(model="spam", dense=pb.DenseRows(
            columns=list(sample.columns), values=sample.to_numpy().ravel().tolist()))
        shipped = np.array(daemon.stub.Predict(request).probabilities).reshape(-1, 2)
        plain_model = XGBClassifier(random_state=42).fit(x, y)  # no calibrator around it
        np.testing.assert_allclose(shipped, plain_model.predict_proba(sample.to_numpy()),
                                   rtol=1e-6)

    def test_calibration_of_a_regressor_is_refused(self, daemon: LiveDaemon) -> None:
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Train(pb.TrainRequest(
                model="d", algorithm="ridge", calibration=pb.CALIBRATION_SIGMOID,
                dataset=pb.Dataset(path="diabetes.csv", target="target")))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class TestAliases:
    def test_aliases_compare_and_set_and_address_predict(self, daemon: LiveDaemon) -> None:
        for _ in range(2):
            daemon.train("spam", cv_folds=2)
        daemon.stub.SetAlias(pb.SetAliasRequest(model="spam", alias="challenger", version=1,
                                                expected_version=0))
        assert predict_version(daemon, alias="challenger") == 1
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.SetAlias(pb.SetAliasRequest(model="spam", alias="challenger", version=2,
                                                    expected_version=2))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details() == ("alias 'challenger' of model 'spam' points at version 1, "
                                       "not the expected version 2")
        daemon.stub.SetAlias(pb.SetAliasRequest(model="spam", alias="challenger", version=2,
                                                expected_version=1))
        assert predict_version(daemon, alias="challenger") == 2
        status = daemon.stub.GetStatus(pb.GetStatusRequest(model="spam")).models[0]
        assert dict(status.aliases) == {"challenger": 2}
        for bad, code in (("Bad Name", grpc.StatusCode.INVALID_ARGUMENT),
                          ("ghost", grpc.StatusCode.NOT_FOUND)):
            with pytest.raises(grpc.RpcError) as err:
                daemon.stub.DeleteAlias(pb.DeleteAliasRequest(model="spam", alias=bad))
            assert err.value.code() == code


def test_retention_spares_active_previous_and_aliased(tmp_path: Path, datasets: Path) -> None:
    shutil.copytree(datasets, tmp_path / "data")
    live = start_daemon(tmp_path, keep_versions=2, keep_loaded=0)
    try:
        def train() -> None:
            live.train("iris", path="iris.csv", target="species",
                       algorithm="logistic_regression", cv_folds=2)

        train()
        live.stub.SetAlias(pb.SetAliasRequest(model="iris", alias="golden", version=1))
        train()
        train()
        live.stub.Rollback(pb.RollbackRequest(model="iris", to_version=2))
        for _ in range(3):
            train()
        kept = sorted(int(p.name) for p in (tmp_path / "registry/iris/versions").iterdir())
        # newest two (5, 6), active (6), previous (5), aliased (1); 2, 3, 4 deleted
        assert kept == [1, 5, 6]
        events = [json.loads(line) for line in
                  (tmp_path / "registry/iris/events.jsonl").read_text().splitlines()]
        assert sorted(e["version"] for e in events if e["event"] == "deleted") == [2, 3, 4]
    finally:
        live.stop()


class TestEventLog:
    def test_every_event_kind_records_its_fields(self, tmp_path: Path, datasets: Path) -> None:
        """Each change of a model's state is logged once, with exactly its own fields."""
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path, keep_versions=1, keep_loaded=0)
        stub = live.stub
        try:
            def train() -> pb.Job:
                return live.train("iris", path="iris.csv", target="species",
                                  algorithm="logistic_regression", cv_folds=2)

            first = train()
            strict = pb.Policy(model="iris", thresholds=[
                pb.Threshold(metric="accuracy", op=">=", value=0.999)])
            stub.SetPolicy(pb.SetPolicyRequest(policy=strict))
            second = train()
            assert not second.activated
            stub.Promote(pb.PromoteRequest(model="iris", version=2, reason="by hand"))
            stub.Rollback(pb.RollbackRequest(model="iris", reason="bad deploy"))
            stub.SetAlias(pb.SetAliasRequest(model="iris", alias="x", version=2))
            stub.SetAlias(pb.SetAliasRequest(model="iris", alias="x", version=1,
                                             expected_version=2))
            stub.DeleteAlias(pb.DeleteAliasRequest(model="iris", alias="x"))
            stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(model="iris")))
            third = train()  # keep_versions=1: 3 is newest and active, 1 previous; 2 goes
            request = pb.TrainRequest(model="iris", algorithm="logistic_regression", cv_folds=2,
                                      dataset=pb.Dataset(path="iris.csv", target="species"))
            stored = stub.SetSchedule(pb.SetScheduleRequest(schedule=pb.Schedule(
                model="iris", interval_seconds=3600, train=request)))
            scheduler = live.runtime.service.scheduler
            [(_, outcome)] = scheduler.step(now=stored.next_run_at.seconds + 1)
            live.runtime.service.jobs.drain()
            stub.DeleteSchedule(pb.DeleteScheduleRequest(model="iris"))
        finally:
            live.stop()
        events = [json.loads(line) for line in
                  (tmp_path / "registry/iris/events.jsonl").read_text().splitlines()]
        assert all(isinstance(e.pop("time"), float) for e in events)
        fourth = outcome.removeprefix("submitted job ")
        assert events == [
            {"event": "published", "version": 1, "job_id": first.id},
            {"event": "activated", "version": 1, "previous": 0, "job_id": first.id},
            {"event": "policy_set", "policy": {
                "primary_metric": "", "tolerance": 0.01, "disabled": False,
                "thresholds": [["accuracy", ">=", 0.999]]}},
            {"event": "published", "version": 2, "job_id": second.id},
            {"event": "rejected", "version": 2, "job_id": second.id,
             "reason": events[4]["reason"]},
            {"event": "promoted", "version": 2, "previous": 1, "reason": "by hand"},
            {"event": "rolled_back", "version": 1, "previous": 2, "reason": "bad deploy"},
            {"event": "alias_set", "alias": "x", "version": 2, "previous": 0},
            {"event": "alias_set", "alias": "x", "version": 1, "previous": 2},
            {"event": "alias_deleted", "alias": "x", "version": 1},
            {"event": "policy_set", "policy": {
                "primary_metric": "", "tolerance": 0.01, "disabled": False, "thresholds": []}},
            {"event": "published", "version": 3, "job_id": third.id},
            {"event": "activated", "version": 3, "previous": 1, "job_id": third.id},
            {"event": "deleted", "version": 2, "reason": "retention: keep 1"},
            {"event": "schedule_set", "cron": "", "interval_seconds": 3600.0,
             "min_new_rows": 0, "on_drift": False},
            {"event": "schedule_run", "outcome": outcome},
            {"event": "published", "version": 4, "job_id": fourth},
            {"event": "activated", "version": 4, "previous": 3, "job_id": fourth},
            {"event": "deleted", "version": 1, "reason": "retention: keep 1"},
            {"event": "schedule_deleted"},
        ]
        assert "accuracy" in events[4]["reason"] and "0.999" in events[4]["reason"]


class TestSchedules:
    def test_a_schedule_round_trips_fires_and_shows_in_status(self, daemon: LiveDaemon) -> None:
        train = pb.TrainRequest(model="iris", algorithm="logistic_regression", cv_folds=2,
                                dataset=pb.Dataset(path="iris.csv", target="species"))
        stored = daemon.stub.SetSchedule(pb.SetScheduleRequest(schedule=pb.Schedule(
            model="iris", interval_seconds=3600, train=train)))
        assert stored.train.algorithm == "logistic_regression"
        assert stored.next_run_at.seconds > 0 and stored.min_interval_seconds == 60
        scheduler = daemon.runtime.service.scheduler
        fired = scheduler.step(now=stored.next_run_at.seconds + 1)
        assert fired and fired[0][0] == "iris" and fired[0][1].startswith("submitted job j")
        daemon.runtime.service.jobs.drain()
        status = daemon.stub.GetStatus(pb.GetStatusRequest(model="iris")).models[0]
        assert status.active_version == 1
        assert status.schedule.last_outcome.startswith("submitted job j")
        daemon.stub.DeleteSchedule(pb.DeleteScheduleRequest(model="iris"))
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.GetSchedule(pb.GetScheduleRequest(model="iris"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

    @pytest.mark.parametrize(("schedule", "details"), [
        (pb.Schedule(model="iris", cron="every day"), "cron"),
        (pb.Schedule(model="iris", interval_seconds=-5), "interval_seconds"),
        (pb.Schedule(model="other", interval_seconds=60), "differs from schedule.model"),
    ])
    def test_bad_schedules_are_invalid_argument(self, daemon: LiveDaemon, schedule: pb.Schedule,
                                                details: str) -> None:
        schedule.train.CopyFrom(pb.TrainRequest(
            model="iris", algorithm="logistic_regression",
            dataset=pb.Dataset(path="iris.csv", target="species")))
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.SetSchedule(pb.SetScheduleRequest(schedule=schedule))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details in err.value.details()
