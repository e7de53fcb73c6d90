"""A daemon restarted on the same registry finds everything as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from tests.conftest import start_daemon, write_datasets

SLOW = pb.TrainRequest(model="slow", algorithm="random_forest",
                       dataset=pb.Dataset(path="spambase.csv", target="is_spam"),
                       params={"n_estimators": "3000"})


def wait_running(stub: pb_grpc.ModelManagerStub, job_id: str) -> None:
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=60):
        if event.job.phase == "cross_validation":
            return


def test_in_process_restart_keeps_versions_pointer_and_jobs(tmp_path: Path) -> None:
    first = start_daemon(tmp_path)
    for _ in range(2):
        first.train("iris", path="iris.csv", target="species", algorithm="logistic_regression",
                    cv_folds=2)
    first.stub.Rollback(pb.RollbackRequest(model="iris", to_version=1))
    running = first.stub.Train(SLOW)
    wait_running(first.stub, running.id)
    before = first.stub.ListJobs(pb.ListJobsRequest())
    first.stop()
    # Stopped means its runners are done: the worker's fit processes, which may hold its
    # pipe open for a while, are not waited for, and no half-built version is left.
    assert not half_built(tmp_path / "registry" / "slow" / ".staging")

    second = start_daemon(tmp_path)
    try:
        status = second.stub.GetStatus(pb.GetStatusRequest(model="iris")).models[0]
        assert (status.active_version, status.loaded_version, status.state) == (
            1, 1, pb.LOAD_STATE_READY)
        versions = second.stub.ListVersions(pb.ListVersionsRequest(model="iris"))
        assert [v.version for v in versions.versions] == [2, 1]
        jobs = second.stub.ListJobs(pb.ListJobsRequest())
        assert [j.id for j in jobs.jobs] == [j.id for j in before.jobs]
        interrupted = second.stub.GetJob(pb.GetJobRequest(job_id=running.id))
        assert interrupted.state == pb.JOB_STATE_FAILED
        assert interrupted.error == "interrupted by shutdown"
        assert not half_built(tmp_path / "registry" / "slow" / ".staging")
    finally:
        second.stop()


def serve(base: Path) -> tuple[subprocess.Popen[bytes], pb_grpc.ModelManagerStub]:
    port_file = base / "port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "modeld_server", "serve", "--listen", "127.0.0.1:0",
         "--registry", str(base / "registry"), "--data-root", str(base / "data"),
         "--state-dir", str(base / "state"), "--port-file", str(port_file),
         "--grace-period", "2"],
        stdout=subprocess.DEVNULL, stderr=(base / "daemon.log").open("ab"))
    deadline = time.monotonic() + 60
    while not port_file.exists():
        assert process.poll() is None, "daemon exited during start-up"
        assert time.monotonic() < deadline, "daemon did not start"
        time.sleep(0.05)
    channel = grpc.insecure_channel(f"127.0.0.1:{port_file.read_text().strip()}")
    return process, pb_grpc.ModelManagerStub(channel)


def half_built(staging: Path) -> list[Path]:
    """Version folders under construction in a model's .staging (none when it is gone)."""
    return [p for p in staging.glob("*") if p.is_dir()]


def test_sigkill_mid_training_leaves_a_clean_registry(tmp_path: Path) -> None:
    """After SIGKILL the job is FAILED 'interrupted by restart' and its staging is swept,
    once the old worker (which may outlive the daemon a while) is gone: never under it."""
    write_datasets(tmp_path / "data")
    process, stub = serve(tmp_path)
    job = stub.Train(SLOW)
    wait_running(stub, job.id)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    staging = tmp_path / "registry" / "slow" / ".staging"
    assert half_built(staging)  # the crash left a half-built version

    process, stub = serve(tmp_path)
    try:
        record = stub.GetJob(pb.GetJobRequest(job_id=job.id))
        assert (record.state, record.error) == (pb.JOB_STATE_FAILED, "interrupted by restart")
        deadline = time.monotonic() + 300  # the orphaned worker dies at its next report
        while half_built(staging):
            assert time.monotonic() < deadline, "a half-built version outlived the worker"
            time.sleep(0.1)
        with pytest.raises(grpc.RpcError) as err:
            stub.GetStatus(pb.GetStatusRequest(model="slow"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


def test_sigterm_finishes_in_flight_calls_and_exits_cleanly(tmp_path: Path) -> None:
    write_datasets(tmp_path / "data")
    process, stub = serve(tmp_path)
    job = stub.Train(pb.TrainRequest(model="iris", algorithm="logistic_regression",
                                     dataset=pb.Dataset(path="iris.csv", target="species")))
    watch = stub.WatchJob(pb.WatchJobRequest(job_id=job.id))
    assert next(watch).job.id == job.id
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(20) == 0
