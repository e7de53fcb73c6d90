"""Job records across a restart: what was cut short fails, what had published succeeded."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from modeld_server.registry.store import RegistryStore
from modeld_server.training.jobrecord import JobFiles, JobRecord, recover_published
from modeld_server.training.jobs import JobManager
from modeld_server.types import DatasetSpec, JobState, Task, TrainSpec
from tests.unit._registry_helpers import skip_disk_flush

SPEC = TrainSpec(model="m", dataset=DatasetSpec("iris.csv", "species"),
                 algorithm="logistic_regression",
                 task=Task.CLASSIFICATION)
METRICS = {"accuracy": {"mean": 0.9, "std": 0.01, "folds": [0.89, 0.91]}}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RegistryStore:
    skip_disk_flush(monkeypatch)
    return RegistryStore(tmp_path / "registry")


def running(job_id: str = "j1", spec: TrainSpec = SPEC) -> JobRecord:
    """A record as the daemon left it when killed mid-job."""
    return JobRecord(id=job_id, spec=spec, state=JobState.RUNNING, phase="publishing",
                     progress=0.98, started_at=time.time())


def recovered(record: JobRecord, store: RegistryStore) -> JobRecord:
    """recover_published's SUCCEEDED record, which it must find."""
    found = recover_published(record, store)
    assert found is not None
    return found


def publish(store: RegistryStore, job_id: str, *, activate: bool = True,
            log_job: bool = True, **fields: object) -> int:
    """Publishes a version the way the job runner does (its manifest names the job)."""
    staging = store.begin_staging("m")
    (staging.path / "model.bin").write_bytes(b"weights")
    manifest = {"algorithm": "logistic_regression", "task": "classification",
                "job_id": job_id, "metrics": METRICS, **fields}
    return store.publish(staging, manifest, activate=activate,
                         job_id=job_id if log_job else "").version


class TestRecoverPublished:
    def test_a_job_whose_version_exists_succeeded(self, store: RegistryStore) -> None:
        """Killed between the rename into versions/ and saving the record."""
        publish(store, "other")
        version = publish(store, "j1")
        record = recovered(running(), store)
        assert (record.state, record.phase, record.progress) == (JobState.SUCCEEDED, "done", 1.0)
        assert (record.version, record.activated, record.error) == (version, True, "")
        assert record.metrics == METRICS
        assert record.message == "published version 2 (recorded at restart)"

    def test_a_job_without_a_version_is_left_alone(self, store: RegistryStore) -> None:
        publish(store, "other")
        assert recover_published(running(), store) is None

    def test_a_queued_job_never_published(self, store: RegistryStore) -> None:
        publish(store, "j1")
        record = JobRecord(id="j1", spec=SPEC)  # started_at None: it never ran
        assert recover_published(record, store) is None

    def test_a_version_published_but_not_activated_says_so(self, store: RegistryStore) -> None:
        """Killed inside publish, after the rename and before the pointer moved."""
        publish(store, "j1", activate=False)
        record = recovered(running(), store)
        assert (record.state, record.version, record.activated) == (JobState.SUCCEEDED, 1, False)
        assert record.message == ("published version 1 (recorded at restart); not activated: "
                                  "the daemon stopped before it could")

    def test_the_pointer_counts_when_the_event_was_not_logged(self, store: RegistryStore) -> None:
        """Killed after ACTIVE moved and before the 'activated' event was appended."""
        publish(store, "j1", log_job=False)
        record = recovered(running(), store)
        assert record.activated

    def test_a_rejected_version_is_reported_as_such(self, store: RegistryStore) -> None:
        publish(store, "j1", state="rejected", gate={"reasons": ["accuracy fell"]})
        record = recovered(running(), store)
        assert (record.state, record.activated) == (JobState.SUCCEEDED, False)
        assert record.message == ("published version 1 (recorded at restart) as REJECTED by "
                                  "the quality gate")

    def test_a_broken_manifest_is_skipped(self, store: RegistryStore) -> None:
        version = publish(store, "j1")
        publish(store, "other")
        store.paths("m").manifest(2).write_text("{")
        record = recovered(running(), store)
        assert record.version == version

    def test_a_model_never_created_published_nothing(self, store: RegistryStore) -> None:
        assert recover_published(running(), store) is None


class TestJobManagerRestart:
    def test_recovery_marks_each_interrupted_job_by_what_is_on_disk(
            self, store: RegistryStore, tmp_path: Path) -> None:
        files = JobFiles(tmp_path / "state")
        files.save(running("j1"))
        files.save(running("j2"))
        publish(store, "j1")
        jobs = JobManager(store, tmp_path / "data", tmp_path / "state")
        try:
            published, cut_short = jobs.get("j1"), jobs.get("j2")
        finally:
            jobs.close()
        assert (published.state, published.version, published.activated) == (
            JobState.SUCCEEDED, 1, True)
        assert (cut_short.state, cut_short.error) == (JobState.FAILED, "interrupted by restart")
        assert published.finished_at is not None and cut_short.finished_at is not None
        on_disk = {r.id: r.state for r in files.load_all()}
        assert on_disk == {"j1": JobState.SUCCEEDED, "j2": JobState.FAILED}

    def test_a_state_dir_that_cannot_be_written_does_not_stop_the_start(
            self, store: RegistryStore, tmp_path: Path) -> None:
        """Recovery cannot save (immutable jobs folder): the daemon still starts, and the
        recovered record is the truth in memory; the file keeps the old state."""
        files = JobFiles(tmp_path / "state")
        files.save(running("j1"))
        if os.geteuid() != 0:
            pytest.skip("chattr +i needs root")
        done = subprocess.run(["chattr", "+i", str(files.folder)], capture_output=True,
                              text=True, check=False)
        if done.returncode:
            pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
        try:
            jobs = JobManager(store, tmp_path / "data", tmp_path / "state")
            try:
                recovered = jobs.get("j1")
            finally:
                jobs.close()
        finally:
            subprocess.run(["chattr", "-i", str(files.folder)], check=False)
        assert (recovered.state, recovered.error) == (JobState.FAILED, "interrupted by restart")
        assert {r.id: r.state for r in files.load_all()} == {"j1": JobState.RUNNING}


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jobs"


class TestJobRecordJson:
    @pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
    def test_every_record_shape_ever_written_loads(self, name: str, tmp_path: Path) -> None:
        """A state dir of any past daemon loads, and saving it back loses nothing it held."""
        data = json.loads((FIXTURES / name).read_text())
        record = JobRecord.from_json(data)
        assert (record.id, record.state.value, record.model) == (
            data["id"], data["state"], data["spec"]["model"])
        assert record.metrics == data["metrics"]
        saved = record.to_json()
        assert {k: v for k, v in saved.items() if k != "spec"} == {
            k: v for k, v in data.items() if k != "spec"}
        assert TrainSpec.from_json(saved["spec"]) == record.spec
        files = JobFiles(tmp_path / "state")
        files.save(record)
        assert files.load_all() == [record]

    def test_the_first_shape_takes_the_defaults_it_lacks(self) -> None:
        """A spec from before validation, calibration and feature selection existed."""
        record = JobRecord.from_json(json.loads((FIXTURES / "first-failed.json").read_text()))
        assert (record.spec.calibration, record.spec.validation) == ("none", {})
        assert record.spec.dataset.features == record.spec.dataset.drop_columns == ()

    def test_keys_a_newer_daemon_wrote_are_ignored(self) -> None:
        data = json.loads((FIXTURES / "current-succeeded.json").read_text())
        newer = {**data, "queue_position": 3, "spec": {**data["spec"], "priority": "high"}}
        assert JobRecord.from_json(newer) == JobRecord.from_json(data)

    def test_a_record_is_frozen_and_but_moves_seq(self) -> None:
        record = JobRecord(id="j1", spec=SPEC)
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.phase = "x"  # type: ignore[misc]
        changed = record.but(phase="training")
        assert (record.phase, record.seq, changed.phase, changed.seq) == (
            "queued", 0, "training", 1)
        assert "seq" not in changed.to_json()

    def test_a_record_without_an_id_is_unreadable_and_skipped(self, tmp_path: Path) -> None:
        files = JobFiles(tmp_path / "state")
        (files.folder / "bad.json").write_text('{"spec": {}}')
        assert files.load_all() == []
