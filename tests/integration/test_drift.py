"""Drift monitoring through a live daemon: spambase replayed unshifted then with three
features scaled by 1.5, and a categorical model whose category mix shifts.

The monitor's thread is off (monitor_interval=0); each test steps it by hand after its
Predict calls, so nothing sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from modeld.cli import app
from modeld.v1 import model_manager_pb2 as pb
from modeld_server.telemetry import registry_for
from tests.conftest import SPAMBASE, LiveDaemon, start_daemon, wait_job

SHIFTED = ("capital_run_length_average", "capital_run_length_longest", "word_freq_you")
WINDOW = 1500


@pytest.fixture
def spam(tmp_path: Path, datasets: Path) -> Iterator[tuple[LiveDaemon, pd.DataFrame]]:
    """A daemon sampling every row into windows of 1500, with a model trained on 3000
    spambase rows; yields it and the 1601 held-out rows (features only)."""
    frame = pd.read_csv(SPAMBASE)
    order = np.random.default_rng(0).permutation(len(frame))
    (tmp_path / "data").mkdir()
    frame.iloc[order[:3000]].to_csv(tmp_path / "data" / "spam_train.csv", index=False)
    live = start_daemon(tmp_path, monitor_sample=1.0, monitor_window=WINDOW,
                        monitor_interval=0.0, replica="replica-a")
    job = live.train("spam", path="spam_train.csv", algorithm="logistic_regression",
                     cv_folds=2)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    yield live, frame.iloc[order[3000:]].drop(columns="is_spam").reset_index(drop=True)
    live.stop()


def replay(live: LiveDaemon, model: str, rows: pd.DataFrame, batch: int = 500) -> None:
    """Predicts `rows` in dense batches, as a client would."""
    for start in range(0, len(rows), batch):
        part = rows.iloc[start:start + batch]
        live.stub.Predict(pb.PredictRequest(model=model, dense=pb.DenseRows(
            columns=list(part.columns), values=part.to_numpy(dtype=float).ravel().tolist())))


def modelctl(live: LiveDaemon, *args: str) -> Result:
    return CliRunner().invoke(app, ["--address", live.address, *args])


def drift(live: LiveDaemon, model: str) -> pb.DriftReport:
    return live.stub.GetDrift(pb.GetDriftRequest(model=model))


def events(live: LiveDaemon, model: str, kind: str) -> list[dict[str, object]]:
    lines = (live.registry / model / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def gauges(live: LiveDaemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry_for(live.runtime.service.gauges)).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name in ("modeld_feature_drift", "modeld_prediction_drift")}


class TestSpambaseDrift:
    def test_unshifted_rows_stay_quiet_shifted_features_alert_and_retrain_once(
            self, spam: tuple[LiveDaemon, pd.DataFrame]) -> None:
        """Held-out rows: every PSI below 0.1, no alert. The same rows with three features
        x1.5: exactly those three alert, one drift_alert event, the gauge and GetDrift
        agree, and the on_drift schedule submits one job that goes through the gate."""
        live, held_out = spam
        monitor = live.runtime.service.monitor
        before = drift(live, "spam")
        assert (before.status, before.window_rows, before.replica) == ("pending", 0, "replica-a")

        replay(live, "spam", held_out.iloc[:WINDOW])
        [quiet] = monitor.step()
        report = drift(live, "spam")
        assert report.status == "ok" and quiet.status == "ok"
        assert len(report.features) == 57
        assert max(f.value for f in report.features) < 0.1
        assert {f.metric for f in report.features} == {"psi"}
        assert (report.version, report.window_size, report.sampled_rows, report.dropped_rows,
                report.windows) == (1, WINDOW, WINDOW, 0, 1)
        assert events(live, "spam", "drift_alert") == []

        set_schedule = modelctl(live, "schedule", "set", "spam", "--data", "spam_train.csv",
                                "--target", "is_spam", "-a", "logistic_regression",
                                "--folds", "2", "--min-interval", "3600", "--on-drift")
        assert set_schedule.exit_code == 0, set_schedule.output
        assert live.stub.GetSchedule(pb.GetScheduleRequest(model="spam")).on_drift
        shifted = held_out.iloc[:WINDOW].copy()
        for column in SHIFTED:
            shifted[column] *= 1.5
        # Two windows of shifted rows before one step: both alert, one crossing.
        replay(live, "spam", shifted)
        replay(live, "spam", shifted)
        first, second = monitor.step()
        report = drift(live, "spam")
        assert report.status == first.status == second.status == "alert"
        assert sorted(f.feature for f in report.features if f.status == "alert") == sorted(SHIFTED)
        assert all(f.value < 0.1 for f in report.features if f.feature not in SHIFTED)
        assert (report.windows, report.sampled_rows) == (3, 3 * WINDOW)

        shown = modelctl(live, "drift", "spam")
        assert shown.exit_code == 0, shown.output
        assert "spam v1 on replica-a: alert" in shown.output
        table = [line.split() for line in shown.output.splitlines()]
        alert_rows = [row[0] for row in table if len(row) == 6 and row[-1] == "alert"]
        assert sorted(alert_rows) == sorted(SHIFTED)
        # The daemon's log lines share the captured output (before or after the answer):
        # the answer is the JSON object that starts a line.
        text = modelctl(live, "--json", "drift", "spam").output
        starts = [0] if text.startswith("{") else []
        starts += [i + 1 for i, c in enumerate(text) if c == "\n" and text[i + 1:i + 2] == "{"]
        as_json = json.JSONDecoder().raw_decode(text[starts[0]:])[0]
        assert (as_json["status"], as_json["replica"], as_json["window_size"]) == (
            "alert", "replica-a", WINDOW)

        [event] = events(live, "spam", "drift_alert")
        assert (event["version"], event["replica"], sorted(event["features"])) == (  # type: ignore[arg-type]
            1, "replica-a", sorted(SHIFTED))
        values = gauges(live)
        by_feature = {f.feature: f.value for f in report.features}
        for column in SHIFTED:
            key = ("modeld_feature_drift", (("feature", column), ("model", "spam")))
            assert values[key] == pytest.approx(by_feature[column])
        assert values[("modeld_prediction_drift", (("model", "spam"),))] == pytest.approx(
            report.prediction.value)

        status = live.stub.GetStatus(pb.GetStatusRequest(model="spam")).models[0]
        assert status.drift_status == "alert"
        outcome = status.schedule.last_outcome
        assert outcome.startswith("submitted job ") and "drift alert on version 1" in outcome
        jobs = live.stub.ListJobs(pb.ListJobsRequest(model="spam")).jobs
        assert len(jobs) == 2
        retrain = wait_job(live.stub, outcome.split()[2].rstrip(":"))
        assert retrain.state == pb.JOB_STATE_SUCCEEDED, retrain.error
        version = live.stub.GetVersion(pb.GetVersionRequest(model="spam",
                                                            version=retrain.version))
        assert version.gate_summary  # the gate decided
        assert len(events(live, "spam", "drift_alert")) == 1

        # A newly active version is compared afresh: its windows start empty.
        if retrain.activated:
            live.stub.Reload(pb.ReloadRequest(model="spam"))
            fresh = drift(live, "spam")
            assert (fresh.version, fresh.status, fresh.window_rows, fresh.windows) == (
                retrain.version, "pending", 0, 0)
            assert gauges(live) == {}

    def test_profile_in_the_manifest(self, spam: tuple[LiveDaemon, pd.DataFrame]) -> None:
        """word_freq_make, 77% zeros in spambase, keeps a zero bin and quantile bins of
        its non-zero values; the output profile bins the spam probability."""
        live, _ = spam
        manifest = live.runtime.service.store.read_manifest("spam", 1)
        assert manifest.profile is not None
        make = manifest.profile["features"]["word_freq_make"]
        train = pd.read_csv(live.data_root / "spam_train.csv")["word_freq_make"]
        assert make["counts"][1] == int((train == 0).sum())
        assert make["counts"][0] == 0 and sum(make["counts"]) == 3000
        assert make["zero_share"] == pytest.approx((train == 0).mean())
        assert make["mean"] == pytest.approx(train.mean())
        assert len(make["edges"]) >= 10
        output = manifest.profile["output"]
        assert output["what"] == "probability of class 1"
        assert sum(output["counts"]) == 3000


@pytest.fixture
def mixed(tmp_path: Path, datasets: Path) -> Iterator[LiveDaemon]:
    live = start_daemon(tmp_path, monitor_sample=1.0, monitor_window=400,
                        monitor_interval=0.0)
    job = live.train("mixed", path="mixed.csv", target="label",
                     algorithm="logistic_regression", cv_folds=2)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    yield live
    live.stop()


class TestCategoricalDrift:
    def test_a_shifted_category_mix_alerts_through_js(self, mixed: LiveDaemon) -> None:
        """The training rows replayed: JS 0; every colour turned red: color alerts by JS
        distance (as scipy computes it), the numeric features stay at PSI 0."""
        from scipy.spatial.distance import jensenshannon

        frame = pd.read_csv(mixed.data_root / "mixed.csv").drop(columns="label")
        records = json.loads(frame.to_json(orient="records"))

        def send(rows: list[dict[str, object]]) -> None:
            request = pb.PredictRequest(model="mixed")
            for row in rows:
                request.records.rows.add().update(row)
            mixed.stub.Predict(request)

        send(records)
        mixed.runtime.service.monitor.step()
        report = drift(mixed, "mixed")
        assert report.status == "ok"
        color = next(f for f in report.features if f.feature == "color")
        assert (color.metric, color.value, color.alert_threshold) == ("js", 0.0, 0.1)

        send([{**r, "color": "red"} for r in records])
        mixed.runtime.service.monitor.step()
        report = drift(mixed, "mixed")
        by_name = {f.feature: f for f in report.features}
        assert report.status == "alert"
        assert by_name["color"].status == "alert"
        assert {by_name["size [cm]"].value, by_name["weight"].value} == {0.0}
        counts = frame["color"].fillna("__missing__").value_counts()
        categories = ["red", "green", "blue"]
        reference = [int(counts.get(c, 0)) for c in sorted(categories,
                                                           key=lambda c: -counts[c])]
        reference += [0, int(counts["__missing__"])]
        live = [0] * len(reference)
        live[sorted(categories, key=lambda c: -counts[c]).index("red")] = len(records)
        assert by_name["color"].value == pytest.approx(jensenshannon(reference, live, base=2))
        assert len(events(mixed, "mixed", "drift_alert")) == 1


class TestGetDriftErrors:
    def test_unknown_model_is_not_found(self, daemon: LiveDaemon) -> None:
        """GetDrift of a model the registry does not hold: NOT_FOUND naming it."""
        with pytest.raises(grpc.RpcError) as err:
            drift(daemon, "ghost")
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.NOT_FOUND, "model 'ghost' not found")

    def test_bad_name_is_invalid_argument(self, daemon: LiveDaemon) -> None:
        """A name that cannot be a model: INVALID_ARGUMENT."""
        with pytest.raises(grpc.RpcError) as err:
            drift(daemon, "../x")
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    def test_policy_thresholds_round_trip_and_apply(self, mixed: LiveDaemon) -> None:
        """SetPolicy's drift thresholds come back from GetPolicy and GetDrift reports them;
        a bad one is INVALID_ARGUMENT naming the field and value."""
        policy = pb.Policy(model="mixed", drift_psi_warn=0.2, drift_psi_alert=0.5,
                           drift_js_alert=0.3, drift_share_alert=0.25)
        mixed.stub.SetPolicy(pb.SetPolicyRequest(policy=policy))
        assert mixed.stub.GetPolicy(pb.GetPolicyRequest(model="mixed")) == pb.Policy(
            model="mixed", tolerance=0.01, drift_psi_warn=0.2, drift_psi_alert=0.5,
            drift_js_alert=0.3, drift_share_alert=0.25)
        frame = pd.read_csv(mixed.data_root / "mixed.csv").drop(columns="label")
        request = pb.PredictRequest(model="mixed")
        for row in json.loads(frame.to_json(orient="records")):
            request.records.rows.add().update(row)
        mixed.stub.Predict(request)
        mixed.runtime.service.monitor.step()
        report = drift(mixed, "mixed")
        color = next(f for f in report.features if f.feature == "color")
        weight = next(f for f in report.features if f.feature == "weight")
        assert (color.alert_threshold, weight.warn_threshold, weight.alert_threshold,
                report.share_threshold) == (0.3, 0.2, 0.5, 0.25)
        assert report.sample_rate == 1.0
        with pytest.raises(grpc.RpcError) as err:
            mixed.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(
                model="mixed", drift_js_alert=2.0)))
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "policy.drift_js_alert must be between 0 (the default) and 1, got 2")

    def test_a_policy_sampling_rate_overrides_the_daemons(self, mixed: LiveDaemon) -> None:
        """policy.monitor_sample 0 stops sampling the model at once; unset, the daemon's
        --monitor-sample (1.0 here) applies again."""
        request = pb.PredictRequest(model="mixed")
        request.records.rows.add().update({"color": "red", "size [cm]": 9.0, "weight": 50.0})
        mixed.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(model="mixed",
                                                                  monitor_sample=0.0)))
        mixed.stub.Predict(request)
        report = drift(mixed, "mixed")
        assert (report.sample_rate, report.sampled_rows) == (0.0, 0)
        mixed.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(model="mixed")))
        mixed.stub.Predict(request)
        report = drift(mixed, "mixed")
        assert (report.sample_rate, report.sampled_rows) == (1.0, 1)
        with pytest.raises(grpc.RpcError) as err:
            mixed.stub.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(model="mixed",
                                                                      monitor_sample=1.5)))
        assert (err.value.code(), err.value.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT, "policy.monitor_sample must be between 0 and 1, "
            "got 1.5")


class TestReplicas:
    def test_each_replica_monitors_its_own_traffic(self, mixed: LiveDaemon,
                                                   tmp_path: Path) -> None:
        """A second daemon on the same registry serves the model too; each GetDrift names
        its replica and counts only the rows that daemon sampled."""
        other = start_daemon(tmp_path / "b", registry=mixed.registry,
                             data_root=mixed.data_root, monitor_sample=1.0,
                             monitor_window=400, monitor_interval=0.0, replica="replica-b")
        try:
            request = pb.PredictRequest(model="mixed")
            for _ in range(3):
                request.records.rows.add().update(
                    {"color": "red", "size [cm]": 9.0, "weight": 50.0})
            mixed.stub.Predict(request)
            other.stub.Predict(request)
            other.stub.Predict(request)
            here, there = drift(mixed, "mixed"), drift(other, "mixed")
            assert (there.replica, there.sampled_rows, there.version) == ("replica-b", 6, 1)
            assert here.sampled_rows == 3 and here.replica != "replica-b"
        finally:
            other.stop()


class TestOpenInference:
    def test_v2_infer_is_sampled_too(self, spam: tuple[LiveDaemon, pd.DataFrame]) -> None:
        """V2 ModelInfer (tritonclient, an [N, F] FP64 tensor) feeds the same windows as
        Predict: 300 rows by V2 and 1200 by Predict fill one window of 1500."""
        import tritonclient.grpc as triton

        live, held_out = spam
        rows = held_out.iloc[:300].to_numpy(dtype=np.float64)
        tensor = triton.InferInput("input", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows)
        with triton.InferenceServerClient(live.address) as client:
            client.infer("spam", [tensor])
        assert drift(live, "spam").sampled_rows == 300
        replay(live, "spam", held_out.iloc[300:WINDOW])
        [report] = live.runtime.service.monitor.step()
        assert (report.window_size, report.status) == (WINDOW, "ok")
