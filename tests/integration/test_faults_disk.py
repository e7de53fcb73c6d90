"""Real faults (a full disk, an immutable folder, damaged files): a job's state, GetStatus
and the disk agree, and keep agreeing across a restart.

The faults are real: a small tmpfs filled to the last byte, `chattr +i` on a folder, bytes
changed in place. They need root; without it (or where the kernel refuses) a test skips,
saying why. Every fault is undone in a finally, whatever the test met.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from tests.conftest import LiveDaemon, start_daemon, wait_job
from tests.faultkit import fill, immutable, poll, read_only, tmpfs

IRIS = {"path": "iris.csv", "target": "species", "algorithm": "logistic_regression",
        "cv_folds": 2}
ROW = pb.PredictRequest(model="iris", dense=pb.DenseRows(
    columns=["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"],
    values=[5.1, 3.5, 1.4, 0.2]))


def status(live: LiveDaemon, model: str = "iris") -> pb.ModelStatus:
    return live.stub.GetStatus(pb.GetStatusRequest(model=model)).models[0]


def saved_record(state_dir: Path, job_id: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((state_dir / "jobs" / f"{job_id}.json").read_bytes())
    return data


def assert_listing_agrees(live: LiveDaemon, model: str = "iris") -> None:
    """GetStatus's latest_version, version_count and active_version say what the listing says."""
    model_status = status(live, model)
    listing = live.stub.ListVersions(pb.ListVersionsRequest(model=model))
    numbers = [v.version for v in listing.versions]
    assert model_status.latest_version == max(numbers, default=0)
    assert model_status.version_count == len(numbers)
    assert model_status.active_version == listing.active_version


@pytest.fixture
def base(tmp_path: Path, datasets: Path) -> Path:
    shutil.copytree(datasets, tmp_path / "data")
    return tmp_path


class TestPublishTruth:
    def test_an_unwritable_pointer_publishes_without_activating(self, base: Path) -> None:
        """ACTIVE cannot be written (immutable model folder): the job SUCCEEDED with
        version=2, activated=false and why; GetStatus and ListVersions agree, and a restart
        changes none of it."""
        live = start_daemon(base)
        try:
            assert live.train("iris", **IRIS).version == 1  # type: ignore[arg-type]
            with immutable(live.registry / "iris"):
                job = live.train("iris", **IRIS)  # type: ignore[arg-type]
            active = live.registry / "iris" / "ACTIVE"
            assert (job.state, job.version, job.activated, job.error) == (
                pb.JOB_STATE_SUCCEEDED, 2, False, "")
            assert job.message == (f"published version 2; not activated: could not write "
                                   f"{active}: Operation not permitted")
            assert active.read_text() == "1\n"
            assert (live.registry / "iris" / "versions" / "2" / "manifest.json").is_file()
            model_status = status(live)
            assert (model_status.active_version, model_status.loaded_version,
                    model_status.latest_version, model_status.state) == (
                1, 1, 2, pb.LOAD_STATE_READY)
            listing = live.stub.ListVersions(pb.ListVersionsRequest(model="iris"))
            assert [(v.version, v.state) for v in listing.versions] == [
                (2, pb.VERSION_STATE_INACTIVE), (1, pb.VERSION_STATE_ACTIVE)]
            assert saved_record(base / "state", job.id)["activated"] is False
        finally:
            live.stop()
        again = start_daemon(base)
        try:
            after = again.stub.GetJob(pb.GetJobRequest(job_id=job.id))
            assert (after.state, after.version, after.activated, after.message) == (
                job.state, job.version, job.activated, job.message)
            assert status(again).active_version == 1
        finally:
            again.stop()

    def test_a_full_registry_publishes_nothing(self, base: Path) -> None:
        """With the registry's disk full the job FAILED, and no version, pointer or staging
        folder of it is left: never FAILED beside a published version."""
        with tmpfs(base / "registry", "2m") as registry:
            live = start_daemon(base)
            try:
                filler = fill(registry)
                job = live.train("iris", **IRIS)  # type: ignore[arg-type]
                assert (job.state, job.version, job.activated) == (pb.JOB_STATE_FAILED, 0, False)
                assert job.error.startswith("ResourceExhausted: no space left on device writing '"
                                            f"{live.registry / 'iris' / '.staging'}"), job.error
                live.runtime.service.jobs.drain()  # the runner's clean-up after the verdict
                assert sorted(os.listdir(registry)) == ["filler"]
                filler.unlink()
                assert live.train("iris", **IRIS).state == pb.JOB_STATE_SUCCEEDED  # type: ignore[arg-type]
            finally:
                live.stop()


class TestReadOnlyRegistry:
    def test_writes_are_refused_by_name_and_serving_goes_on(self, base: Path) -> None:
        """On a read-only registry Train's job FAILED saying so, Rollback is
        FAILED_PRECONDITION naming the file (not INTERNAL), and v2 keeps answering."""
        live = start_daemon(base)
        try:
            for _ in range(2):
                live.train("iris", **IRIS)  # type: ignore[arg-type]
            with read_only(live.registry):
                job = live.train("iris", **IRIS)  # type: ignore[arg-type]
                assert (job.state, job.version, job.activated) == (pb.JOB_STATE_FAILED, 0, False)
                staging = live.registry / "iris" / ".staging"
                assert job.error.startswith("FailedPrecondition: read-only file system: cannot "
                                            f"write '{staging}"), job.error
                with pytest.raises(grpc.RpcError) as err:
                    live.stub.Rollback(pb.RollbackRequest(model="iris", to_version=1))
                assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert err.value.details() == ("read-only file system: cannot write "
                                               f"'{live.registry / 'iris' / '.lock'}'")
                assert live.stub.Predict(ROW).version == 2
                assert (status(live).state, status(live).active_version) == (
                    pb.LOAD_STATE_READY, 2)
                assert_listing_agrees(live)
        finally:
            live.stop()


class TestStateDirFull:
    def test_train_is_refused_and_no_job_exists(self, base: Path) -> None:
        """A job record that cannot be saved: RESOURCE_EXHAUSTED 'state dir full', no job
        (listed, on disk, or run later); once there is room, the same daemon trains."""
        with tmpfs(base / "state", "256k") as state:
            live = start_daemon(base)
            try:
                filler = fill(state)
                with pytest.raises(grpc.RpcError) as err:
                    live.stub.Train(pb.TrainRequest(
                        model="iris", algorithm="logistic_regression", cv_folds=2,
                        dataset=pb.Dataset(path="iris.csv", target="species")))
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert err.value.details() == (
                    f"state dir full: No space left on device ({state / 'jobs'}); "
                    "the job was not created")
                live.runtime.service.jobs.drain()
                assert list(live.stub.ListJobs(pb.ListJobsRequest()).jobs) == []
                assert os.listdir(state / "jobs") == []
                assert not (live.registry / "iris").exists()
                filler.unlink()
                job = live.train("iris", **IRIS)  # type: ignore[arg-type]
                assert (job.state, job.version, job.activated) == (
                    pb.JOB_STATE_SUCCEEDED, 1, True)
            finally:
                live.stop()

    def test_a_running_job_keeps_its_outcome_and_the_runner_lives(self, base: Path) -> None:
        """The state dir fills while a job runs: the job still SUCCEEDED with its version
        active (GetJob answers from memory), the record is saved once there is room, the
        next Train works in the same daemon, and a restart tells the same story."""
        with tmpfs(base / "state", "256k") as state:
            live = start_daemon(base)
            try:
                job = live.stub.Train(pb.TrainRequest(
                    model="forest", algorithm="random_forest", cv_folds=2,
                    params={"n_estimators": "300"},
                    dataset=pb.Dataset(path="spambase.csv", target="is_spam")))
                for event in live.stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=60):
                    if event.job.state == pb.JOB_STATE_RUNNING:
                        break
                filler = fill(state)
                done = wait_job(live.stub, job.id)
                assert (done.state, done.version, done.activated, done.error) == (
                    pb.JOB_STATE_SUCCEEDED, 1, True, "")
                assert saved_record(state, job.id)["state"] == "running"  # the fault hit
                got = live.stub.GetJob(pb.GetJobRequest(job_id=job.id))
                assert (got.state, got.version, got.activated) == (
                    pb.JOB_STATE_SUCCEEDED, 1, True)
                assert (status(live, "forest").active_version,
                        status(live, "forest").state) == (1, pb.LOAD_STATE_READY)
                filler.unlink()
                after = live.train("iris", **IRIS)  # type: ignore[arg-type]
                assert (after.state, after.version) == (pb.JOB_STATE_SUCCEEDED, 1)
                assert saved_record(state, job.id)["state"] == "succeeded"
            finally:
                live.stop()
            again = start_daemon(base)
            try:
                got = again.stub.GetJob(pb.GetJobRequest(job_id=job.id))
                assert (got.state, got.version, got.activated) == (
                    pb.JOB_STATE_SUCCEEDED, 1, True)
            finally:
                again.stop()


class TestActiveVersionDamaged:
    def test_a_deleted_active_version_is_degraded_and_still_answers(self, base: Path) -> None:
        """rm -rf versions/1 of the serving version: after Reload GetStatus says DEGRADED
        naming the missing folder, Predict still answers from memory, and GetStatus agrees
        with ListVersions."""
        live = start_daemon(base)
        try:
            live.train("iris", **IRIS)  # type: ignore[arg-type]
            folder = live.registry / "iris" / "versions" / "1"
            shutil.rmtree(folder)
            live.stub.Reload(pb.ReloadRequest(model="iris"))
            model_status = status(live)
            assert (model_status.state, model_status.active_version,
                    model_status.loaded_version) == (pb.LOAD_STATE_DEGRADED, 1, 1)
            assert model_status.last_error == f"model 'iris' v1: folder {folder} is missing"
            assert live.stub.Predict(ROW).version == 1
            assert_listing_agrees(live)
        finally:
            live.stop()

    def test_bytes_changed_in_place_are_seen_by_the_watcher(self, base: Path) -> None:
        """A byte flipped in place in the model file: the watcher (no Reload) shows DEGRADED
        with the checksum failure; the file put back, READY again; Predict answers all along."""
        live = start_daemon(base)
        try:
            live.train("iris", **IRIS)  # type: ignore[arg-type]
            path = live.registry / "iris" / "versions" / "1" / "pipeline.joblib"
            original = path.read_bytes()
            with path.open("r+b") as fh:
                fh.seek(len(original) // 2)
                fh.write(bytes([original[len(original) // 2] ^ 0xFF]))
            seen = poll(lambda: status(live), lambda s: s.state == pb.LOAD_STATE_DEGRADED)
            assert seen.last_error == "'iris' v1: artifact pipeline.joblib fails its sha256"  # type: ignore[attr-defined]
            assert live.stub.Predict(ROW).version == 1
            assert_listing_agrees(live)
            path.write_bytes(original)
            poll(lambda: status(live), lambda s: s.state == pb.LOAD_STATE_READY)
        finally:
            live.stop()

    def test_after_a_restart_predict_is_failed_precondition_naming_the_file(
        self, base: Path
    ) -> None:
        """Corrupted bytes found at start: GetStatus FAILED with the reason, and Predict is
        FAILED_PRECONDITION naming the file (permanent), not UNAVAILABLE (retry later)."""
        live = start_daemon(base)
        try:
            live.train("iris", **IRIS)  # type: ignore[arg-type]
        finally:
            live.stop()
        path = base / "registry" / "iris" / "versions" / "1" / "pipeline.joblib"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        again = start_daemon(base)
        try:
            reason = "'iris' v1: artifact pipeline.joblib fails its sha256"
            model_status = status(again)
            assert (model_status.state, model_status.last_error, model_status.loaded_version) == (
                pb.LOAD_STATE_FAILED, reason, 0)
            with pytest.raises(grpc.RpcError) as err:
                again.stub.Predict(ROW)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert err.value.details() == f"model 'iris' v1 cannot be served: {reason}"
            assert_listing_agrees(again)
        finally:
            again.stop()


    def test_checksums_are_computed_only_when_the_files_change(
        self, base: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """GetStatus and an idle Reload hash nothing (a stat per file per pass); a change
        is hashed once, and not again until the files change again."""
        from modeld_server.registry import fsio

        live = start_daemon(base, watch=False, poll_interval=0.0)
        try:
            live.train("iris", **IRIS)  # type: ignore[arg-type]
            hashed: list[Path] = []
            real = fsio.sha256_file

            def counting(path: Path) -> str:
                if live.registry in Path(path).parents:  # not the dataset freshness hashes
                    hashed.append(path)
                return real(path)

            monkeypatch.setattr(fsio, "sha256_file", counting)
            for _ in range(50):
                assert status(live).state == pb.LOAD_STATE_READY
            for _ in range(3):
                live.stub.Reload(pb.ReloadRequest(model="iris"))
            assert hashed == []
            path = live.registry / "iris" / "versions" / "1" / "pipeline.joblib"
            with path.open("r+b") as fh:
                fh.write(b"\0")
            for _ in range(3):
                live.stub.Reload(pb.ReloadRequest(model="iris"))
                assert status(live).state == pb.LOAD_STATE_DEGRADED
            # The changed version is verified once (its files in name order, up to the one
            # that fails), and not again while nothing changes.
            names = [p.name for p in hashed]
            assert names[-1] == "pipeline.joblib" and len(names) == len(set(names)), names
        finally:
            live.stop()


class TestFailedFirstTrain:
    def test_leaves_no_model_folder_behind(self, base: Path) -> None:
        """A new model's first Train failing in the worker leaves no <model>/.staging (nor an
        empty model folder)."""
        live = start_daemon(base, max_dataset_rows=10)
        try:
            job = live.train("fresh", **IRIS)  # type: ignore[arg-type]
            assert job.state == pb.JOB_STATE_FAILED
            assert "max_dataset_rows=10" in job.error
            live.runtime.service.jobs.drain()  # the runner's clean-up after the verdict
            assert not (live.registry / "fresh").exists()
        finally:
            live.stop()
