"""Every daemon follows the registry on disk and never serves a broken artifact.

Most tests switch the watcher off and drive reloads with poll_once(), so nothing
sleeps; one test proves the file-system events work on their own.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.serving import manager as manager_module
from tests.conftest import LiveDaemon, start_daemon

T = TypeVar("T")

ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
       "petal width (cm)": 0.2}

# Run as another process: copy version 1 to version 3 (as `modelctl` or an operator's
# script on another host would publish one) and point ACTIVE at it.
PUBLISH_SCRIPT = """
import json, os, shutil, sys
model = sys.argv[1]
src, dst = os.path.join(model, "versions", "1"), os.path.join(model, ".staging", "ext")
shutil.copytree(src, dst)
manifest = json.load(open(os.path.join(dst, "manifest.json")))
manifest["version"] = 3
json.dump(manifest, open(os.path.join(dst, "manifest.json"), "w"))
os.rename(dst, os.path.join(model, "versions", "3"))
with open(os.path.join(model, "ACTIVE.tmp"), "w") as fh:
    fh.write("3\\n")
os.replace(os.path.join(model, "ACTIVE.tmp"), os.path.join(model, "ACTIVE"))
"""


def predict(daemon: LiveDaemon, model: str = "iris") -> int:
    request = pb.PredictRequest(model=model)
    request.records.rows.add().update(ROW)
    return daemon.stub.Predict(request).version


def status(daemon: LiveDaemon, model: str = "iris") -> pb.ModelStatus:
    return daemon.stub.GetStatus(pb.GetStatusRequest(model=model)).models[0]


def set_pointer(daemon: LiveDaemon, version: int | str, model: str = "iris") -> None:
    tmp = daemon.registry / model / "ACTIVE.tmp"
    tmp.write_text(f"{version}\n")
    tmp.replace(daemon.registry / model / "ACTIVE")


def copy_version(daemon: LiveDaemon, source: int, target: int, model: str = "iris") -> Path:
    """Copies a version folder as a hand-made one (manifest rewritten to the new number)."""
    versions = daemon.registry / model / "versions"
    shutil.copytree(versions / str(source), versions / str(target))
    manifest_path = versions / str(target) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["version"] = target
    manifest_path.write_text(json.dumps(manifest))
    return versions / str(target)


@contextlib.contextmanager
def callers(call: Callable[[], T], count: int = 8) -> Iterator[list[T]]:
    """`count` threads calling `call` until the block ends; yields their answers as they come.

    A caller that meets an RpcError records it and goes on; the test fails after the block.
    """
    answers: list[T] = []
    failures: list[grpc.RpcError] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                answers.append(call())
            except grpc.RpcError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []


@pytest.fixture
def quiet(tmp_path: Path, datasets: Path) -> LiveDaemon:
    """A daemon that only reloads when the test says so, with two iris versions (2 active)."""
    shutil.copytree(datasets, tmp_path / "data")
    live = start_daemon(tmp_path, watch=False, poll_interval=0.0)
    for _ in range(2):
        job = live.train("iris", path="iris.csv", target="species",
                         algorithm="logistic_regression", cv_folds=2)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
    yield live
    live.stop()


class TestExternalChanges:
    def test_a_version_published_by_another_process_is_served(self, quiet: LiveDaemon) -> None:
        subprocess.run([sys.executable, "-c", PUBLISH_SCRIPT, str(quiet.registry / "iris")],
                       check=True)
        assert status(quiet).state == pb.LOAD_STATE_STALE
        quiet.runtime.service.watcher.poll_once()
        assert predict(quiet) == 3
        now = status(quiet)
        assert (now.active_version, now.loaded_version, now.state) == (3, 3, pb.LOAD_STATE_READY)
        assert now.latest_version == 3 and now.version_count == 3

    def test_a_half_copied_version_is_ignored_until_complete(self, quiet: LiveDaemon) -> None:
        folder = quiet.registry / "iris/versions/3"
        folder.mkdir()
        for artifact in (quiet.registry / "iris/versions/1").iterdir():
            if artifact.name != "manifest.json":
                shutil.copy(artifact, folder / artifact.name)
        set_pointer(quiet, 3)
        quiet.runtime.service.watcher.poll_once()
        versions = quiet.stub.ListVersions(pb.ListVersionsRequest(model="iris")).versions
        assert [v.version for v in versions] == [2, 1]
        failed = status(quiet)
        assert (failed.state, failed.loaded_version) == (pb.LOAD_STATE_FAILED, 2)
        assert "version 3 of model 'iris' not found" in failed.last_error
        assert predict(quiet) == 2
        manifest = json.loads((quiet.registry / "iris/versions/1/manifest.json").read_text())
        manifest["version"] = 3
        (folder / "manifest.json").write_text(json.dumps(manifest))
        quiet.runtime.service.watcher.poll_once()
        assert predict(quiet) == 3 and status(quiet).state == pb.LOAD_STATE_READY

    def test_a_tampered_artifact_is_refused_and_the_old_version_answers(
            self, quiet: LiveDaemon) -> None:
        folder = copy_version(quiet, 1, 3)
        artifact = folder / "pipeline.joblib"
        data = bytearray(artifact.read_bytes())
        data[len(data) // 2] ^= 0xFF
        artifact.write_bytes(bytes(data))
        set_pointer(quiet, 3)
        quiet.runtime.service.watcher.poll_once()
        failed = status(quiet)
        assert (failed.state, failed.active_version, failed.loaded_version) == (
            pb.LOAD_STATE_FAILED, 3, 2)
        assert failed.last_error == "'iris' v3: artifact pipeline.joblib fails its sha256"
        assert predict(quiet) == 2
        data[len(data) // 2] ^= 0xFF  # repaired: the changed files trigger a new attempt
        artifact.write_bytes(bytes(data))
        quiet.runtime.service.watcher.poll_once()
        assert predict(quiet) == 3

    def test_a_pointer_to_a_missing_version_keeps_the_old_one(self, quiet: LiveDaemon) -> None:
        set_pointer(quiet, 9)
        quiet.runtime.service.watcher.poll_once()
        failed = status(quiet)
        assert (failed.state, failed.active_version, failed.loaded_version) == (
            pb.LOAD_STATE_FAILED, 9, 2)
        folder = quiet.registry / "iris" / "versions" / "9"
        assert failed.last_error == f"model 'iris' v9: folder {folder} is missing"
        assert predict(quiet) == 2

    def test_a_garbage_pointer_is_reported(self, quiet: LiveDaemon) -> None:
        set_pointer(quiet, "banana")
        quiet.runtime.service.watcher.poll_once()
        failed = status(quiet)
        assert failed.state == pb.LOAD_STATE_FAILED and "not a version number" in failed.last_error
        assert predict(quiet) == 2


class TestReloadRpc:
    def test_reload_answers_when_the_disk_is_served(self, quiet: LiveDaemon) -> None:
        set_pointer(quiet, 1)
        assert status(quiet).state == pb.LOAD_STATE_STALE
        [reloaded] = quiet.stub.Reload(pb.ReloadRequest(model="iris")).models
        assert (reloaded.loaded_version, reloaded.state) == (1, pb.LOAD_STATE_READY)
        assert predict(quiet) == 1

    def test_reload_of_an_unknown_model(self, quiet: LiveDaemon) -> None:
        with pytest.raises(grpc.RpcError) as err:
            quiet.stub.Reload(pb.ReloadRequest(model="ghost"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


class TestZeroDowntime:
    def test_the_old_version_answers_while_a_slow_one_loads(
            self, quiet: LiveDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
        started, release = threading.Event(), threading.Event()
        real_load = manager_module.LoadedModel.load

        def slow_load(*args: object, **kwargs: object) -> object:
            started.set()
            assert release.wait(10)
            return real_load(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(manager_module.LoadedModel, "load", slow_load)
        copy_version(quiet, 1, 3)  # not in the rollback cache: it must really load
        set_pointer(quiet, 3)
        reload = threading.Thread(target=quiet.runtime.service.watcher.poll_once)
        reload.start()
        assert started.wait(10)
        assert [predict(quiet) for _ in range(20)] == [2] * 20
        assert status(quiet).state == pb.LOAD_STATE_LOADING
        release.set()
        reload.join(10)
        assert predict(quiet) == 3 and status(quiet).state == pb.LOAD_STATE_READY

    def test_concurrent_predicts_during_swaps_never_fail(self, quiet: LiveDaemon) -> None:
        with callers(lambda: predict(quiet)) as answers:
            for i in range(20):
                set_pointer(quiet, 1 + i % 2)
                quiet.runtime.service.watcher.poll_once()
        assert set(answers) <= {1, 2} and len(answers) > 20

    def test_every_answer_comes_from_the_version_it_names(self, tmp_path: Path,
                                                         datasets: Path) -> None:
        """Two versions that answer differently; while the pointer flips, 8 callers'
        answers always carry the probabilities of the version they report."""
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path, watch=False, poll_interval=0.0)
        try:
            for c in ("0.02", "1.0"):
                job = live.train("iris", path="iris.csv", target="species",
                                 algorithm="logistic_regression", cv_folds=2, params={"C": c})
                assert job.state == pb.JOB_STATE_SUCCEEDED, job.error

            def answer(version: int = 0) -> tuple[int, tuple[float, ...]]:
                request = pb.PredictRequest(model="iris", version=version)
                request.records.rows.add().update(ROW)
                reply = live.stub.Predict(request)
                return reply.version, tuple(reply.probabilities)

            expected = dict(answer(v) for v in (1, 2))
            assert expected[1] != expected[2]
            with callers(answer) as seen:
                for i in range(30):
                    set_pointer(live, 1 + i % 2)
                    live.runtime.service.watcher.poll_once()
                    answered, deadline = len(seen), time.monotonic() + 5
                    while len(seen) < answered + 8 and time.monotonic() < deadline:
                        time.sleep(0.001)  # let the callers answer from this version too
            wrong = [(v, p) for v, p in seen if p != expected[v]]
            assert wrong == [] and {v for v, _ in seen} == {1, 2}
        finally:
            live.stop()


class TestWatching:
    def test_file_events_reload_without_any_call(self, tmp_path: Path, datasets: Path) -> None:
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path, poll_interval=0.0)  # events only, no re-scan
        try:
            for _ in range(2):
                live.train("iris", path="iris.csv", target="species",
                           algorithm="logistic_regression", cv_folds=2)
            set_pointer(live, 1)
            deadline = time.monotonic() + 10
            while predict(live) != 1:
                assert time.monotonic() < deadline, "the watcher never reloaded"
                time.sleep(0.01)
        finally:
            live.stop()

    def test_two_daemons_on_one_registry_follow_each_other(self, tmp_path: Path,
                                                           datasets: Path) -> None:
        shutil.copytree(datasets, tmp_path / "data")
        a = start_daemon(tmp_path, poll_interval=0.0)
        b = start_daemon(tmp_path, state_dir=tmp_path / "state-b", poll_interval=0.0)
        try:
            for _ in range(2):
                a.train("iris", path="iris.csv", target="species",
                        algorithm="logistic_regression", cv_folds=2)
            wait_for(lambda: predict(b) == 2)
            b.stub.Rollback(pb.RollbackRequest(model="iris", reason="from b"))
            assert predict(b) == 1
            wait_for(lambda: predict(a) == 1)
            assert status(a).active_version == 1
        finally:
            a.stop()
            b.stop()


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():  # type: ignore[operator]
                return
        except grpc.RpcError:
            pass  # the model may not be known to this daemon yet
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
