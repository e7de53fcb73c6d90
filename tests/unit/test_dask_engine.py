"""engine=dask pieces that need no cluster: folds, folder datasets, the lazy cluster, imports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from modeld.options import TrainSpec as ClientSpec
from modeld_server.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from modeld_server.training.cluster import NO_CLUSTER, DaskCluster, LocalCluster
from modeld_server.training.dask_engine import fold_of
from modeld_server.training.datasets import resolve_dataset_files
from modeld_server.types import DatasetSpec, TrainInput

ROOT = Path(__file__).resolve().parents[2]


class TestFolds:
    def test_a_row_keeps_its_fold_whatever_the_partitioning(self) -> None:
        """The fold is a function of (seed, position): computing it per partition or for
        the whole dataset at once gives the same assignment."""
        positions = np.arange(10_000)
        whole = fold_of(positions, 42, 5)
        parts = np.concatenate([fold_of(p, 42, 5) for p in np.array_split(positions, 7)])
        assert np.array_equal(whole, parts)

    def test_folds_are_in_range_and_near_equal(self) -> None:
        folds = fold_of(np.arange(10_000), 42, 5)
        counts = np.bincount(folds, minlength=5)
        assert folds.min() == 0 and folds.max() == 4
        assert counts.min() > 1800 and counts.max() < 2200

    def test_the_seed_changes_the_assignment(self) -> None:
        positions = np.arange(1000)
        assert not np.array_equal(fold_of(positions, 1, 5), fold_of(positions, 2, 5))


class TestFolderDatasets:
    def test_a_folder_lists_its_parquet_files_in_name_order(self, tmp_path: Path) -> None:
        """Writers' markers (_SUCCESS, .crc) are skipped."""
        folder = tmp_path / "parts"
        folder.mkdir()
        for name in ("b.parquet", "a.parquet", "_SUCCESS", ".a.parquet.crc"):
            (folder / name).write_bytes(b"x")
        files = resolve_dataset_files(tmp_path, "parts", folders=True)
        assert [f.name for f in files] == ["a.parquet", "b.parquet"]

    def test_a_file_is_a_one_file_dataset(self, tmp_path: Path) -> None:
        (tmp_path / "d.csv").write_text("a\n1\n")
        assert resolve_dataset_files(tmp_path, "d.csv", folders=True) == [
            (tmp_path / "d.csv").resolve()]

    def test_other_files_in_a_folder_are_refused(self, tmp_path: Path) -> None:
        (tmp_path / "parts").mkdir()
        (tmp_path / "parts" / "notes.txt").write_text("x")
        with pytest.raises(InvalidArgument) as err:
            resolve_dataset_files(tmp_path, "parts", folders=True)
        assert err.value.message == ("dataset.path 'parts' holds 'notes.txt', which is not a "
                                     "Parquet file: a folder dataset holds .parquet or .pq files")

    def test_an_empty_folder_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "parts").mkdir()
        with pytest.raises(InvalidArgument) as err:
            resolve_dataset_files(tmp_path, "parts", folders=True)
        assert err.value.message == "dataset.path 'parts' is a folder without Parquet files"

    def test_a_file_linked_outside_the_root_is_refused(self, tmp_path: Path) -> None:
        root, outside = tmp_path / "root", tmp_path / "outside.parquet"
        (root / "parts").mkdir(parents=True)
        outside.write_bytes(b"x")
        (root / "parts" / "a.parquet").symlink_to(outside)
        with pytest.raises(PermissionDenied) as err:
            resolve_dataset_files(root, "parts", folders=True)
        assert err.value.message == "dataset.path 'parts/a.parquet' leads outside the data root"


class TestCluster:
    def test_without_flags_it_is_refused_naming_both(self) -> None:
        with pytest.raises(FailedPrecondition) as err:
            DaskCluster().address()
        assert err.value.message == NO_CLUSTER
        assert "--dask-scheduler" in NO_CLUSTER and "--dask-local" in NO_CLUSTER

    def test_a_scheduler_address_is_passed_on_without_importing_dask(self) -> None:
        assert DaskCluster("tcp://10.0.0.5:8786").address() == "tcp://10.0.0.5:8786"


def test_the_client_sends_the_engine() -> None:
    """'local' is sent as the empty default, so old daemons see what they always saw."""
    assert ClientSpec("m", "d", algorithm="xgboost", engine="dask").to_pb().engine == "dask"
    assert ClientSpec("m", "d", algorithm="xgboost").to_pb().engine == ""
    request = ClientSpec("m", "d", algorithm="xgboost", engine="dask").to_pb()
    assert ClientSpec.from_pb(request).engine == "dask"


_TRAIN_LOCALLY = """
import sys
from pathlib import Path
from tests.conftest import start_daemon
from modeld.v1 import model_manager_pb2 as pb

live = start_daemon(Path(sys.argv[1]))
job = live.train("spam", cv_folds=2, params={"n_estimators": "5"})
assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
live.stop()
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
print("DASK-MODULES", loaded)
"""


def test_a_daemon_without_dask_flags_never_imports_dask(tmp_path: Path) -> None:
    """A default daemon that trained (and the worker module the forkserver preloads) has
    neither dask nor distributed in sys.modules: the engine costs nothing unless asked."""
    run = subprocess.run([sys.executable, "-c", _TRAIN_LOCALLY, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "DASK-MODULES []" in run.stdout
    preload = subprocess.run(
        [sys.executable, "-c", "import sys, modeld_server.training.worker, "
         "modeld_server.training.preheat; print(sorted(m for m in sys.modules if "
         "m.split('.')[0] in ('dask', 'distributed')))"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert preload.returncode == 0, preload.stderr[-2000:]
    assert preload.stdout.strip() == "[]"


def test_an_unreachable_scheduler_fails_the_job_with_its_address(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose scheduler does not answer fails with FailedPrecondition naming it (the
    connect timeout is shortened here; the daemon's is a minute)."""
    from modeld_server.training import dask_engine
    from modeld_server.types import TrainSpec

    monkeypatch.setattr(dask_engine, "_CONNECT_SECONDS", 2)
    (tmp_path / "d.csv").write_text("a,y\n1,0\n2,1\n")
    spec = TrainSpec.from_json({"model": "m", "dataset": {"path": "d.csv", "target": "y"},
                                "algorithm": "xgboost", "task": "classification",
                                "cv_folds": 2, "seed": 42, "engine": "dask"})
    with pytest.raises(FailedPrecondition) as err:
        dask_engine.train(spec, tmp_path, tmp_path, lambda *a: None,
                          {"dask_scheduler": "tcp://127.0.0.1:9"}, 100, lambda: None)
    assert err.value.message.startswith("cannot reach the Dask scheduler at tcp://127.0.0.1:9: ")


def test_the_engine_survives_the_job_record_and_local_stays_unwritten() -> None:
    """Job records of local jobs read as before; a dask job restarts as a dask job."""
    from modeld_server.types import TrainSpec

    data = {"model": "m", "dataset": {"path": "spam", "target": "is_spam"},
            "algorithm": "xgboost", "task": "classification", "cv_folds": 5, "seed": 42}
    local = TrainSpec.from_json(data)
    assert local.engine == "local" and "engine" not in local.to_json()
    dask = TrainSpec.from_json(data | {"engine": "dask"})
    assert TrainSpec.from_json(dask.to_json()).engine == "dask"


class TestOneWorkerAlgorithms:
    def test_a_dataset_fits_when_a_worker_holds_three_copies(self) -> None:
        from modeld_server.training.dask_sklearn import check_fits_a_worker

        check_fits_a_worker("ridge", "d.csv", 100, [300, 0])
        check_fits_a_worker("ridge", "d.csv", 10**12, [0])  # no limit reported

    def test_a_dataset_larger_than_the_smallest_worker_is_refused(self) -> None:
        from modeld_server.training.dask_sklearn import check_fits_a_worker

        with pytest.raises(FailedPrecondition) as err:
            check_fits_a_worker("random_forest", "d.csv", 101, [1000, 300])
        assert err.value.message == (
            "dataset.path 'd.csv' holds about 101 bytes in memory; algorithm 'random_forest' "
            "fits in one Dask worker, which needs 3 times that, more than the smallest "
            "worker's memory_limit=300 bytes: use an algorithm that trains distributed "
            "(xgboost), or workers with more memory")

    def test_a_gzipped_csv_counts_five_times_its_size(self, tmp_path: Path) -> None:
        from modeld_server.training.dask_sklearn import memory_bytes

        (tmp_path / "a.csv").write_bytes(b"x" * 10)
        (tmp_path / "b.csv.gz").write_bytes(b"x" * 10)
        assert memory_bytes([tmp_path / "a.csv", tmp_path / "b.csv.gz"]) == 60


class TestEngineAuto:
    """cluster.auto_engine: dask only over the policy's threshold, with a cluster, for a
    request engine dask takes."""

    @staticmethod
    def request(algorithm: str = "xgboost", calibration: str = "none") -> TrainInput:
        return TrainInput(model="m", dataset=DatasetSpec(path="d.csv", target="y"),
                          algorithm=algorithm, params={}, calibration=calibration)

    @pytest.mark.parametrize(("size", "above", "configured", "algorithm", "calibration",
                              "engine"), [
        (1001, 1000, True, "xgboost", "none", "dask"),
        (1000, 1000, True, "xgboost", "none", "local"),
        (1001, 0, True, "xgboost", "none", "local"),
        (1001, 1000, False, "xgboost", "none", "local"),
        (1001, 1000, True, "ridge", "none", "dask"),
        (1001, 1000, True, "isolation_forest", "none", "dask"),
        (1001, 1000, True, "logistic_regression", "sigmoid", "local"),
    ])
    def test_the_choice(self, size: int, above: int, configured: bool, algorithm: str,
                        calibration: str, engine: str) -> None:
        from modeld_server.training.cluster import auto_engine

        assert auto_engine(self.request(algorithm, calibration), size, above,
                           configured) == engine


class TestLocalClusterStart:
    def test_a_cluster_process_that_exits_at_start_is_failed_precondition(
            self, tmp_path: Path) -> None:
        """The cluster's process exits before it names a scheduler (here: 0 workers, a
        usage error): the job's error names the flag, the exit code and its log file,
        which holds what the process said."""
        log = tmp_path / "state" / "dask-local.log"
        with pytest.raises(FailedPrecondition) as err:
            LocalCluster.start(0, log)
        assert err.value.message == (
            f"the local Dask cluster (--dask-local 0) did not start (exit code 2); "
            f"its log: {log}")
        assert "usage: python -m modeld_server.training.dask_local WORKERS" in log.read_text()

    def test_closing_while_the_cluster_hangs_at_start_ends_the_start_at_once(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hang: Path) -> None:
        """The daemon stops while a job's address() starts the cluster, which never says it
        is ready (a stand-in that sleeps): close() ends the start instead of waiting up to
        START_SECONDS under the lock (the daemon's stop waited for it, past its grace
        period); the job's address() fails naming the shutdown; no process is left."""
        import threading

        from modeld_server.training import cluster

        monkeypatch.setattr(cluster, "START_SECONDS", 3600)
        local = DaskCluster(local_workers=1, local_log=tmp_path / "dask-local.log")
        failed: list[BaseException] = []

        def job() -> None:
            try:
                local.address()
            except BaseException as exc:  # the test reads it
                failed.append(exc)

        thread = threading.Thread(target=job, daemon=True)
        thread.start()
        pid = _wait_for_child(hang)
        closing = threading.Thread(target=local.close, daemon=True)
        closing.start()
        closing.join(60)  # a deadline far below START_SECONDS, not a timing
        assert not closing.is_alive(), "close() waited for the cluster's start"
        thread.join(60)
        assert not thread.is_alive()
        [exc] = failed
        assert isinstance(exc, FailedPrecondition)
        assert exc.message == "the daemon is shutting down: no Dask cluster"
        assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie

    def test_a_start_that_times_out_kills_the_cluster_at_once(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hang: Path) -> None:
        """A cluster that says nothing within START_SECONDS is killed there and then: it
        has nothing to close cleanly, and waiting CLOSE_SECONDS for it (under the lock
        every engine=dask job and the daemon's stop wait on) only delays the error."""
        import threading

        from modeld_server.training import cluster

        monkeypatch.setattr(cluster, "START_SECONDS", 1)
        monkeypatch.setattr(cluster, "CLOSE_SECONDS", 3600)
        log = tmp_path / "dask-local.log"
        failed: list[BaseException] = []

        def start() -> None:
            try:
                LocalCluster.start(1, log)
            except BaseException as exc:  # the test reads it
                failed.append(exc)

        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        pid = _wait_for_child(hang)
        thread.join(60)  # a deadline far below CLOSE_SECONDS, not a timing
        assert not thread.is_alive(), "the failed start waited CLOSE_SECONDS"
        [exc] = failed
        assert isinstance(exc, FailedPrecondition)
        assert exc.message == (
            f"the local Dask cluster (--dask-local 1) did not start (no answer in 1 s); "
            f"its log: {log}")
        assert not Path(f"/proc/{pid}").exists()


@pytest.fixture
def hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The local cluster's command runs a stand-in that never says it is ready (a shell
    script that execs sleep); one a failed test leaves is killed afterwards."""
    import os
    import signal

    script = tmp_path / "hang"
    script.write_text("#!/bin/sh\nexec sleep 3600\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(script))
    yield script
    for pid in _sleeping_children():
        os.kill(pid, signal.SIGKILL)


def _sleeping_children() -> list[int]:
    """The pids of this process's children running sleep (the stand-in)."""
    import os

    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and cmdline.startswith(b"sleep\0"):
            found.append(int(proc.name))
    return found


def _wait_for_child(executable: Path) -> int:
    """The pid of the stand-in `executable` once it runs."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for pid in _sleeping_children():
            return pid
        time.sleep(0.05)
    raise AssertionError(f"{executable} did not start within 60 s")
