"""training/scheduler.py: timed and data-triggered retraining with an injected clock."""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from modeld_server.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from modeld_server.registry.meta import SCHEDULE, ModelMeta
from modeld_server.registry.store import RegistryStore
from modeld_server.training.scheduler import Scheduler, ScheduleSpec, ScheduleState
from tests.unit._registry_helpers import count_sha256_reads

T0 = datetime(2024, 1, 1, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
HOUR, DAY = 3600.0, 86400.0
TRAIN = {"model": "m", "dataset": {"path": "d.csv", "target": "y"}}


class Jobs:
    """Fake submit/busy: numbers the jobs it is given; `busy_models` are running."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []
        self.busy_models: set[str] = set()
        self.error: Exception | None = None
        self.lock = threading.Lock()

    def submit(self, train: dict[str, Any]) -> str:
        if self.error is not None:
            raise self.error
        with self.lock:
            self.submitted.append(train)
            return f"j{len(self.submitted)}"

    def busy(self, model: str) -> bool:
        return model in self.busy_models


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "d.csv", 10)
    return folder


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> RegistryStore:
    return RegistryStore(tmp_path / "registry")


@pytest.fixture
def make(store: RegistryStore, data: Path, jobs: Jobs, clock: Clock) -> Any:
    """A new Scheduler on the same registry (a restart, or another replica)."""
    def make_scheduler(submit: Any = None, busy: Any = None) -> Scheduler:
        meta = ModelMeta(RegistryStore(store.root))
        return Scheduler(meta, data, submit or jobs.submit, busy or jobs.busy, clock=clock)
    return make_scheduler


@pytest.fixture
def sched(make: Any) -> Scheduler:
    return make()  # type: ignore[no-any-return]


def write_csv(path: Path, rows: int) -> None:
    path.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(rows)))


def spec(**kw: Any) -> ScheduleSpec:
    return ScheduleSpec(**{"model": "m", "train": TRAIN, "dataset_path": "d.csv",
                           "min_interval_seconds": 1.0, **kw})


class TestInterval:
    def test_fires_at_each_interval_and_not_before(self, sched: Scheduler) -> None:
        """Runs are due every interval after set(); nothing runs at set time or in between."""
        assert sched.set(spec(interval_seconds=HOUR)).next_run_at == T0 + HOUR
        assert sched.step(T0) == []
        assert sched.step(T0 + HOUR - 1) == []
        assert sched.step(T0 + HOUR) == [("m", "submitted job j1")]
        assert sched.step(T0 + HOUR + 1) == []
        assert sched.step(T0 + 2 * HOUR) == [("m", "submitted job j2")]
        assert sched.get("m")[1].next_run_at == T0 + 3 * HOUR

    def test_submits_the_stored_training_request(self, sched: Scheduler, jobs: Jobs) -> None:
        """Each run submits the schedule's training request, unchanged."""
        sched.set(spec(interval_seconds=HOUR))
        sched.step(T0 + HOUR)
        assert jobs.submitted == [TRAIN]
        state = sched.get("m")[1]
        assert (state.last_run_at, state.last_outcome) == (T0 + HOUR, "submitted job j1")

    def test_a_late_step_keeps_the_grid(self, sched: Scheduler) -> None:
        """A step a few seconds late does not shift later runs."""
        sched.set(spec(interval_seconds=HOUR))
        sched.step(T0 + HOUR + 4)
        assert sched.get("m")[1].next_run_at == T0 + 2 * HOUR


class TestCron:
    def test_fires_at_three_utc(self, sched: Scheduler) -> None:
        """"0 3 * * *" is due at 03:00 UTC, then the next day at 03:00."""
        assert sched.set(spec(cron="0 3 * * *")).next_run_at == T0 + 3 * HOUR
        assert sched.step(T0 + 3 * HOUR - 1) == []
        assert sched.step(T0 + 3 * HOUR) == [("m", "submitted job j1")]
        assert sched.get("m")[1].next_run_at == T0 + DAY + 3 * HOUR


class TestMissedRuns:
    def test_three_days_down_fire_once_at_start_up(self, sched: Scheduler, make: Any,
                                                   jobs: Jobs) -> None:
        """After three missed 03:00 slots, the first step after a restart runs one job."""
        sched.set(spec(cron="0 3 * * *"))
        restarted = make()
        now = T0 + 3 * DAY + 5 * HOUR
        assert restarted.step(now) == [("m", "submitted job j1")]
        assert restarted.step(now + 1) == []
        assert len(jobs.submitted) == 1
        assert restarted.get("m")[1].next_run_at == T0 + 4 * DAY + 3 * HOUR

    def test_missed_intervals_count_from_the_catch_up_run(self, sched: Scheduler) -> None:
        """An interval schedule that missed slots runs once and counts from that run."""
        sched.set(spec(interval_seconds=HOUR))
        assert sched.step(T0 + 10.5 * HOUR) == [("m", "submitted job j1")]
        assert sched.get("m")[1].next_run_at == T0 + 11.5 * HOUR


class TestBusy:
    def test_due_run_of_a_busy_model_is_skipped_and_consumed(
            self, sched: Scheduler, store: RegistryStore, jobs: Jobs) -> None:
        """A due run while a job runs is skipped, recorded, logged; the slot moves on."""
        sched.set(spec(interval_seconds=HOUR))
        jobs.busy_models.add("m")
        with structlog.testing.capture_logs() as logs:
            assert sched.step(T0 + HOUR) == [("m", "skipped: a job for 'm' is running")]
        assert jobs.submitted == []
        state = sched.get("m")[1]
        assert (state.last_run_at, state.next_run_at) == (None, T0 + 2 * HOUR)
        assert state.last_outcome == "skipped: a job for 'm' is running"
        assert {"event": "schedule_skipped", "model": "m", "log_level": "info",
                "reason": "skipped: a job for 'm' is running"} in logs
        last = store.read_events("m")[-1]
        assert (last["event"], last["reason"]) == ("schedule_skipped",
                                                   "skipped: a job for 'm' is running")
        assert set(last) == {"time", "event", "reason"}
        jobs.busy_models.clear()
        assert sched.step(T0 + 1.5 * HOUR) == []
        assert sched.step(T0 + 2 * HOUR) == [("m", "submitted job j1")]


class TestMinInterval:
    def test_runs_closer_than_min_interval_are_skipped(self, sched: Scheduler) -> None:
        """With a 60 s interval and a 300 s minimum, runs are 300 s apart at most."""
        sched.set(spec(interval_seconds=60, min_interval_seconds=300))
        assert sched.step(T0 + 60) == [("m", "submitted job j1")]
        [(_, outcome)] = sched.step(T0 + 120)
        assert outcome == "skipped: min_interval 300s since the last run"
        assert sched.get("m")[1].last_run_at == T0 + 60
        for t in (180, 240, 300):
            sched.step(T0 + t)
        assert sched.step(T0 + 360) == [("m", "submitted job j2")]

    def test_zero_means_the_default_of_60_seconds(self) -> None:
        """As in the proto, min_interval_seconds 0 means 60."""
        assert spec(interval_seconds=HOUR, min_interval_seconds=0).validated() \
            .min_interval_seconds == 60.0


class TestDataTrigger:
    def test_fires_when_the_csv_gains_enough_rows(self, sched: Scheduler, data: Path) -> None:
        """K=5: four new rows wait; the fifth fires; the baseline then moves to 15 rows."""
        assert sched.set(spec(min_new_rows=5)).next_run_at is None
        write_csv(data / "d.csv", 14)
        assert sched.step(T0 + 10) == []
        write_csv(data / "d.csv", 15)
        assert sched.step(T0 + 20) == [("m", "submitted job j1")]
        write_csv(data / "d.csv", 19)
        assert sched.step(T0 + 100) == []
        write_csv(data / "d.csv", 20)
        assert sched.step(T0 + 110) == [("m", "submitted job j2")]

    def test_a_touched_or_rewritten_file_does_not_fire(self, sched: Scheduler,
                                                       data: Path) -> None:
        """Only content counts: a new mtime, or the same bytes written again, is no change."""
        sched.set(spec(min_new_rows=1))
        os.utime(data / "d.csv", ns=(1, 1))
        assert sched.step(T0 + 10) == []
        write_csv(data / "d.csv", 10)
        assert sched.step(T0 + 20) == []

    def test_changed_content_without_new_rows_does_not_fire(self, sched: Scheduler,
                                                            data: Path) -> None:
        """Edited rows are not new rows."""
        sched.set(spec(min_new_rows=1))
        (data / "d.csv").write_text("x,y\n" + "".join(f"{i},1\n" for i in range(10)))
        assert sched.step(T0 + 10) == []

    def test_an_unchanged_file_is_not_hashed_again(self, sched: Scheduler, data: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """Same (size, mtime_ns) as the last step: no read at all."""
        sched.set(spec(min_new_rows=1))
        calls = count_sha256_reads(monkeypatch)
        sched.step(T0 + 10)
        sched.step(T0 + 20)
        assert calls == []
        write_csv(data / "d.csv", 11)
        sched.step(T0 + 30)
        assert len(calls) == 1

    def test_parquet_rows_come_from_its_metadata(self, sched: Scheduler, data: Path) -> None:
        """A Parquet dataset fires on its row count too."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        def write(rows: int) -> None:
            pq.write_table(pa.table({"x": list(range(rows))}), data / "d.parquet")

        write(10)
        sched.set(spec(min_new_rows=3, dataset_path="d.parquet"))
        write(12)
        assert sched.step(T0 + 10) == []
        write(13)
        assert sched.step(T0 + 20) == [("m", "submitted job j1")]

    def test_pending_data_run_waits_for_the_busy_job(self, sched: Scheduler, data: Path,
                                                     jobs: Jobs) -> None:
        """New data while a job runs is skipped once, kept, and runs when the job ends."""
        sched.set(spec(min_new_rows=1))
        write_csv(data / "d.csv", 11)
        jobs.busy_models.add("m")
        assert sched.step(T0 + 10) == [("m", "skipped: a job for 'm' is running")]
        assert sched.step(T0 + 20) == []
        jobs.busy_models.clear()
        assert sched.step(T0 + 30) == [("m", "submitted job j1")]

    def test_pending_data_run_waits_for_min_interval(self, sched: Scheduler, data: Path) -> None:
        """New data soon after a run is skipped once, then runs when min_interval has passed."""
        sched.set(spec(min_new_rows=1, min_interval_seconds=300))
        write_csv(data / "d.csv", 11)
        assert sched.step(T0 + 10) == [("m", "submitted job j1")]
        write_csv(data / "d.csv", 12)
        assert sched.step(T0 + 20) == [("m", "skipped: min_interval 300s since the last run")]
        assert sched.step(T0 + 30) == []
        assert sched.step(T0 + 310) == [("m", "submitted job j2")]

    def test_a_missing_dataset_is_refused_at_set(self, sched: Scheduler) -> None:
        """A data trigger needs its file to exist."""
        with pytest.raises(NotFound, match=r"dataset\.path 'nope\.csv' not found"):
            sched.set(spec(min_new_rows=1, dataset_path="nope.csv"))


    def test_a_gzip_bomb_is_refused_at_set_after_bounded_reading(
            self, store: RegistryStore, data: Path, jobs: Jobs, clock: Clock) -> None:
        """A 4 MiB limit: a small gzip expanding to 64 MiB is RESOURCE_EXHAUSTED naming the
        limit, and no schedule is written (the daemon read at most the limit plus 1 MiB)."""
        import gzip

        with gzip.open(data / "bomb.csv.gz", "wb") as fh:
            fh.write(b"x,y\n")
            for _ in range(64):
                fh.write(b"1,0\n" * (1 << 18))
        assert (data / "bomb.csv.gz").stat().st_size < 1 << 20
        sched = Scheduler(ModelMeta(RegistryStore(store.root)), data, jobs.submit, jobs.busy,
                          clock=clock, max_bytes=4 << 20)
        with pytest.raises(ResourceExhausted) as err:
            sched.set(spec(min_new_rows=1, dataset_path="bomb.csv.gz"))
        assert str(err.value) == ("dataset_path 'bomb.csv.gz': more than "
                                  f"max_dataset_bytes={4 << 20} bytes uncompressed; rows not "
                                  "counted")
        assert not (store.root / "m").exists()

    def test_a_file_grown_past_the_limit_stops_firing_and_says_why(
            self, store: RegistryStore, data: Path, jobs: Jobs, clock: Clock) -> None:
        """Grown beyond max_bytes after SetSchedule: no run, a warning, and the loop goes on."""
        sched = Scheduler(ModelMeta(RegistryStore(store.root)), data, jobs.submit, jobs.busy,
                          clock=clock, max_bytes=1 << 20)
        sched.set(spec(min_new_rows=1))
        write_csv(data / "d.csv", 200_000)  # about 1.3 MB
        with structlog.testing.capture_logs() as logs:
            assert sched.step(T0 + 10) == []
        assert [e["event"] for e in logs] == ["schedule_dataset_too_large"]


class TestGlobAndFolderDatasets:
    def test_a_glob_fires_on_new_rows_over_all_its_files(self, sched: Scheduler,
                                                        data: Path) -> None:
        """data/2026-*.csv: rows counted over every matched file; a new file counts too."""
        write_csv(data / "2026-01.csv", 10)
        write_csv(data / "2026-02.csv", 10)
        assert sched.set(spec(min_new_rows=5, dataset_path="2026-*.csv")).next_run_at is None
        write_csv(data / "2026-03.csv", 4)
        assert sched.step(T0 + 10) == []
        write_csv(data / "2026-03.csv", 5)
        assert sched.step(T0 + 20) == [("m", "submitted job j1")]
        write_csv(data / "2026-04.csv", 4)
        write_csv(data / "2026-01.csv", 11)
        assert sched.step(T0 + 100) == [("m", "submitted job j2")]

    def test_its_baseline_is_the_digest_training_records(self, sched: Scheduler, data: Path,
                                                         store: RegistryStore) -> None:
        """The baseline's sha256 is multifile.sha256 of the files (what a manifest holds)
        and its rows their sum: JSON Lines lines, CSV lines less the header, Parquet's."""
        from modeld_server.registry.meta import ModelMeta as Meta
        from modeld_server.training import multifile
        from modeld_server.training.datasets import resolve_files

        (data / "j").mkdir()
        (data / "j" / "a.jsonl").write_text('{"x": 1}\n{"x": 2}\n')
        (data / "j" / "b.jsonl").write_text('{"x": 3}')
        sched.set(spec(min_new_rows=1, dataset_path="j/*.jsonl"))
        doc = Meta(RegistryStore(store.root)).read("m", SCHEDULE)
        assert doc is not None
        assert doc["state"]["baseline"] == {
            "sha256": multifile.sha256(resolve_files(data, "j/*.jsonl")), "rows": 3}

    def test_a_parquet_folder_counts_its_files_metadata(self, sched: Scheduler,
                                                        data: Path) -> None:
        """A hive folder: rows from each file's metadata; a new partition fires."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        def write(where: str, rows: int) -> None:
            (data / "p" / where).mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"x": list(range(rows))}), data / "p" / where / "0.parquet")

        write("day=1", 10)
        sched.set(spec(min_new_rows=3, dataset_path="p"))
        write("day=2", 2)
        assert sched.step(T0 + 10) == []
        write("day=3", 1)
        assert sched.step(T0 + 20) == [("m", "submitted job j1")]

    def test_the_byte_limit_holds_over_all_files_together(
            self, store: RegistryStore, data: Path, jobs: Jobs, clock: Clock) -> None:
        """Three files of ~0.6 MiB under a 1 MiB limit: RESOURCE_EXHAUSTED naming the limit
        and the file count, though each file alone is under it."""
        for i in range(3):
            write_csv(data / f"big-{i}.csv", 90_000)
        assert (data / "big-0.csv").stat().st_size < 1 << 20
        sched = Scheduler(ModelMeta(RegistryStore(store.root)), data, jobs.submit, jobs.busy,
                          clock=clock, max_bytes=1 << 20)
        with pytest.raises(ResourceExhausted) as err:
            sched.set(spec(min_new_rows=1, dataset_path="big-*.csv"))
        assert str(err.value) == (f"dataset_path 'big-*.csv': more than max_dataset_bytes="
                                  f"{1 << 20} bytes uncompressed in its 3 files together; "
                                  "rows not counted")

    def test_a_glob_matching_nothing_is_refused_at_set(self, sched: Scheduler) -> None:
        with pytest.raises(InvalidArgument) as err:
            sched.set(spec(min_new_rows=1, dataset_path="none-*.csv"))
        assert str(err.value) == ("dataset.path 'none-*.csv' matches no file under the data "
                                  "root")

    def test_unchanged_files_are_not_hashed_again(self, sched: Scheduler, data: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        """Same names, sizes and mtimes: no read; one file changed: each file hashed once."""
        write_csv(data / "g-1.csv", 10)
        write_csv(data / "g-2.csv", 10)
        sched.set(spec(min_new_rows=1, dataset_path="g-*.csv"))
        calls = count_sha256_reads(monkeypatch)
        sched.step(T0 + 10)
        sched.step(T0 + 20)
        assert calls == []
        write_csv(data / "g-2.csv", 11)
        sched.step(T0 + 30)
        assert len(calls) == 2


class TestFailures:
    def test_a_refused_submit_is_recorded_as_failed(self, sched: Scheduler, jobs: Jobs) -> None:
        """submit raising a domain error becomes the outcome; the slot is still used."""
        sched.set(spec(interval_seconds=HOUR))
        jobs.error = FailedPrecondition("queue is closed")
        assert sched.step(T0 + HOUR) == [("m", "failed: queue is closed")]
        state = sched.get("m")[1]
        assert (state.last_run_at, state.last_outcome) == (T0 + HOUR, "failed: queue is closed")

    def test_a_schedule_deleted_while_submitting_stays_deleted(self, make: Any) -> None:
        """Recording the outcome does not bring back a schedule deleted meanwhile."""
        def submit(train: dict[str, Any]) -> str:
            replica.delete("m")
            return "j1"

        replica = make(submit=submit)
        replica.set(spec(interval_seconds=HOUR))
        assert replica.step(T0 + HOUR) == [("m", "submitted job j1")]
        with pytest.raises(NotFound):
            replica.get("m")

    def test_a_schedule_replaced_while_submitting_keeps_its_fresh_state(self, make: Any) -> None:
        """The old run's outcome is not written into the new schedule."""
        def submit(train: dict[str, Any]) -> str:
            replica.set(spec(cron="0 3 * * *"))
            return "j1"

        replica = make(submit=submit)
        replica.set(spec(interval_seconds=HOUR))
        replica.step(T0 + HOUR)
        got_spec, state = replica.get("m")
        assert (got_spec.cron, state.last_run_at, state.last_outcome) == ("0 3 * * *", None, "")


class TestRestart:
    def test_schedule_and_state_survive_a_new_scheduler(self, sched: Scheduler, make: Any,
                                                        data: Path) -> None:
        """The spec, last run, outcome and data baseline are read back from the registry."""
        sched.set(spec(interval_seconds=HOUR, min_new_rows=2))
        write_csv(data / "d.csv", 12)
        sched.step(T0 + HOUR)
        restarted = make()
        got_spec, state = restarted.get("m")
        assert got_spec == spec(interval_seconds=HOUR, min_new_rows=2)
        assert state == ScheduleState(T0 + 2 * HOUR, T0 + HOUR, "submitted job j1")
        assert restarted.step(T0 + HOUR + 60) == []  # the 12-row baseline survived
        assert restarted.step(T0 + 2 * HOUR) == [("m", "submitted job j2")]


class TestReplicas:
    def test_a_due_run_fires_in_one_replica_only(self, make: Any, jobs: Jobs) -> None:
        """B steps while A is inside its due-check: B waits for A's lock, then sees the claim."""
        b = make()
        results: list[list[tuple[str, str]]] = []
        seen_inside_a: list[int] = []
        threads: list[threading.Thread] = []

        def a_busy(model: str) -> bool:
            # A calls this under the model lock: give B a fair chance to step meanwhile.
            other = threading.Thread(target=lambda: results.append(b.step(T0 + 60)))
            threads.append(other)
            other.start()
            other.join(timeout=0.2)
            seen_inside_a.append(len(results))
            return False

        a = make(busy=a_busy)
        a.set(spec(interval_seconds=60))
        assert a.step(T0 + 60) == [("m", "submitted job j1")]
        threads[0].join()
        assert seen_inside_a == [0]  # B was held at the lock while A decided
        assert results == [[]]  # and then saw A's claim
        assert len(jobs.submitted) == 1

    def test_the_second_replica_sees_the_claim(self, make: Any) -> None:
        """A replica stepping after another sees the run already recorded."""
        a, b = make(), make()
        a.set(spec(interval_seconds=60))
        assert a.step(T0 + 60) == [("m", "submitted job j1")]
        assert b.step(T0 + 60) == []


class TestValidation:
    @pytest.mark.parametrize(("fields", "named"), [
        ({}, "cron, interval_seconds, min_new_rows or on_drift"),
        ({"cron": "every day"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "never fires"),
        ({"interval_seconds": -5}, "interval_seconds"),
        ({"interval_seconds": 0.5}, "interval_seconds"),
        ({"interval_seconds": float("nan")}, "interval_seconds"),
        ({"interval_seconds": 1e300}, "interval_seconds must be between 0 and 3.1536e+08"),
        ({"interval_seconds": 60, "min_interval_seconds": 4e8}, "min_interval_seconds"),
        ({"interval_seconds": 60, "min_interval_seconds": -1}, "min_interval_seconds"),
        ({"min_new_rows": -1}, "min_new_rows"),
        ({"min_new_rows": 1, "dataset_path": ""}, "dataset_path"),
        ({"interval_seconds": 60, "model": "../etc"}, "model"),
        ({"interval_seconds": 60, "train": {"model": "other"}}, "train.model"),
    ])
    def test_errors_name_the_field(self, sched: Scheduler, store: RegistryStore,
                                   fields: dict[str, Any], named: str) -> None:
        """set() refuses a bad spec with InvalidArgument naming the field, storing nothing."""
        with pytest.raises(InvalidArgument, match=re.escape(named)):
            sched.set(spec(**fields))
        assert not list(store.root.glob(f"*/{SCHEDULE}"))

    def test_json_round_trip(self) -> None:
        """to_json and from_json are inverses."""
        original = spec(cron="0 3 * * *", min_new_rows=4)
        assert ScheduleSpec.from_json(original.to_json()) == original


class TestGetDelete:
    def test_get_and_delete_without_a_schedule_raise_not_found(self, sched: Scheduler) -> None:
        """No schedule (or no model folder at all) is NOT_FOUND, naming the model."""
        with pytest.raises(NotFound, match="schedule of model 'm' not found"):
            sched.get("m")
        with pytest.raises(NotFound, match="schedule of model 'm' not found"):
            sched.delete("m")

    def test_delete_removes_it_and_logs_events(self, sched: Scheduler,
                                               store: RegistryStore) -> None:
        """delete() returns the spec; nothing fires afterwards; both changes are in the log."""
        sched.set(spec(interval_seconds=60))
        assert sched.delete("m") == spec(interval_seconds=60)
        assert sched.step(T0 + 600) == []
        with pytest.raises(NotFound):
            sched.get("m")
        events = [e["event"] for e in store.read_events("m")]
        assert events == ["schedule_set", "schedule_deleted"]


class TestThread:
    def test_start_steps_in_the_background_and_stop_joins(self, make: Any, clock: Clock,
                                                          jobs: Jobs) -> None:
        """The thread steps at once on start (catching up a due run); stop() joins it."""
        fired = threading.Event()

        def submit(train: dict[str, Any]) -> str:
            fired.set()
            return jobs.submit(train)

        sched = make(submit=submit)
        sched.set(spec(interval_seconds=60))
        clock.now = T0 + 60
        sched.start()
        try:
            assert fired.wait(timeout=10)
        finally:
            sched.stop()
        assert "modeld-scheduler" not in {t.name for t in threading.enumerate()}
        assert sched.get("m")[1].last_outcome == "submitted job j1"


class TestOnDrift:
    def test_an_alert_submits_the_schedule_request_and_says_why(
            self, sched: Scheduler, jobs: Jobs) -> None:
        """on_drift() runs an on_drift schedule at once; the outcome names the reason."""
        sched.set(spec(on_drift=True, min_interval_seconds=HOUR))
        assert sched.on_drift("m", "drift alert on version 3 (a, b)") == (
            "submitted job j1: drift alert on version 3 (a, b)")
        assert jobs.submitted == [TRAIN]
        state = sched.get("m")[1]
        assert (state.last_run_at, state.last_outcome) == (
            T0, "submitted job j1: drift alert on version 3 (a, b)")

    def test_min_interval_and_a_running_job_skip_it(self, sched: Scheduler, jobs: Jobs,
                                                    clock: Clock) -> None:
        """A second alert within min_interval is skipped and recorded, as is one while the
        model trains; after min_interval it runs again."""
        sched.set(spec(on_drift=True, min_interval_seconds=HOUR))
        sched.on_drift("m", "drift alert")
        clock.now = T0 + 60
        assert sched.on_drift("m", "drift alert") == (
            "skipped: min_interval 3600s since the last run (drift alert)")
        jobs.busy_models.add("m")
        clock.now = T0 + 2 * HOUR
        assert sched.on_drift("m", "drift alert") == (
            "skipped: a job for 'm' is running (drift alert)")
        jobs.busy_models.clear()
        assert sched.on_drift("m", "drift alert") == "submitted job j2: drift alert"
        assert len(jobs.submitted) == 2

    def test_without_on_drift_nothing_runs(self, sched: Scheduler, jobs: Jobs) -> None:
        """A timed schedule without on_drift, or no schedule, ignores alerts."""
        assert sched.on_drift("m", "drift alert") == ""
        sched.set(spec(interval_seconds=HOUR))
        assert sched.on_drift("m", "drift alert") == ""
        assert jobs.submitted == []

    def test_on_drift_alone_is_a_schedule_and_round_trips(self, sched: Scheduler) -> None:
        """on_drift needs no timed or data trigger, and survives the JSON file."""
        sched.set(spec(on_drift=True))
        assert sched.get("m")[0].on_drift is True
        assert sched.get("m")[1].next_run_at is None
