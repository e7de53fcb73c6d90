"""Crash safety, proven: SIGKILL the daemon at random moments and check the registry each time.

A daemon subprocess runs on one registry. Each iteration issues a random mix of Train
(small iris jobs), Rollback and out-of-band publishes (the test copies a version into
versions/<n+1> through staging and a rename under the model lock, as another replica
would; some of those are abandoned half-copied, as a replica that died), kills the
daemon with SIGKILL 0-300 ms later, restarts it on the same folders and checks:

- it starts (its port file appears) and GetStatus answers, the model READY;
- every version acknowledged before a kill (a job the test saw SUCCEEDED, a replica
  publish that completed) is present, and its artifacts match the manifest's sha256/size;
- no partial version is visible: every versions/<n> has a manifest that parses, describes
  version n and verifies;
- ACTIVE names a complete version, the one the last acknowledged change left when known;
- events.jsonl parses (a torn last line only if the daemon's reader skips it) and names
  only versions that exist;
- every job is final: those cut short are FAILED "interrupted by restart" and published
  nothing, those whose version was published (even if the record never said so) SUCCEEDED.

Retention is off (--keep-versions 0) so "acknowledged" implies "present". Run with
`make test-slow` or `pytest -m slow -s` to see the counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from modeld_server.registry.store import RegistryStore
from tests.conftest import write_datasets

pytestmark = pytest.mark.slow

ITERATIONS = 50
MODEL = "iris"
INTERRUPTED = "interrupted by restart"
FINAL = (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED)
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
TRAIN = pb.TrainRequest(model=MODEL, algorithm="logistic_regression", cv_folds=2,
                        dataset=pb.Dataset(path="iris.csv", target="species"))


# ---- the daemon as a process ----------------------------------------------------------------

class Daemon:
    """`modeld serve` in a subprocess on folders under `base`; killed, never asked, to stop."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.registry = base / "registry"
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.stub: pb_grpc.ModelManagerStub

    def start(self) -> None:
        """Starts and waits for the port file: proof that it started."""
        port_file = self.base / "port"
        port_file.unlink(missing_ok=True)
        with (self.base / "daemon.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "modeld_server", "serve", "--listen", "127.0.0.1:0",
                 "--registry", str(self.registry), "--data-root", str(self.base / "data"),
                 "--state-dir", str(self.base / "state"), "--port-file", str(port_file),
                 "--grace-period", "2", "--keep-versions", "0", "--log-format", "json"],
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert self.process.poll() is None, f"daemon exited at start-up: {self.log_tail()}"
            assert time.monotonic() < deadline, "daemon did not write its port file in 60 s"
            time.sleep(0.02)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port_file.read_text().strip()}")
        self.stub = pb_grpc.ModelManagerStub(self.channel)

    def kill(self) -> None:
        """SIGKILL: no handler runs, no file is closed cleanly."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        if self.channel is not None:
            self.channel.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.channel is not None:
            self.channel.close()

    def log_tail(self) -> str:
        return (self.base / "daemon.log").read_text(errors="replace")[-3000:]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    write_datasets(tmp_path / "data")
    live = Daemon(tmp_path)
    try:
        yield live
    finally:
        live.stop()


# ---- reading the registry as a verifier would ----------------------------------------------

def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verified_versions(model_dir: Path) -> dict[int, dict[str, Any]]:
    """Every version folder, each checked complete: manifest parses, describes it, verifies."""
    versions: dict[int, dict[str, Any]] = {}
    folder = model_dir / "versions"
    for name in sorted(os.listdir(folder)) if folder.is_dir() else []:
        assert name.isdigit() and not name.startswith("0"), f"stray entry versions/{name}"
        number = int(name)
        manifest = json.loads((folder / name / "manifest.json").read_bytes())
        assert manifest["version"] == number, f"versions/{name} holds v{manifest['version']}"
        artifacts = manifest["artifacts"]
        assert artifacts, f"v{number} lists no artifacts"
        for file, meta in artifacts.items():
            path = folder / name / file
            assert path.stat().st_size == meta["size"], f"v{number}/{file}: size differs"
            assert sha256(path) == meta["sha256"], f"v{number}/{file}: sha256 differs"
        versions[number] = manifest
    return versions


def read_active(model_dir: Path) -> int:
    path = model_dir / "ACTIVE"
    if not path.exists():
        return 0
    text = path.read_text()
    assert text.strip().isdigit() and text.endswith("\n"), f"ACTIVE holds {text!r}"
    return int(text)


def checked_events(registry: Path, versions: dict[int, dict[str, Any]]) -> tuple[int, bool]:
    """(complete lines, whether a torn last line was skipped); every complete line parses
    and names only versions that exist."""
    raw = (registry / MODEL / "events.jsonl").read_bytes()
    lines = raw.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    for line in lines:
        event = json.loads(line)
        assert isinstance(event, dict), line
        if "version" in event and event.get("event") != "deleted":
            assert event["version"] in versions, f"event names a missing version: {event}"
    if torn:
        # Allowed only because the daemon's own reader skips it.
        assert len(RegistryStore(registry).read_events(MODEL)) == len(lines)
    return len(lines), bool(torn)


# ---- what the test knows --------------------------------------------------------------------

@dataclass
class Ledger:
    """What the daemon (or a replica) acknowledged before each kill, and the counts."""

    acknowledged: dict[int, str] = field(default_factory=dict)
    """version -> who published it (a job id, or "replica")."""
    in_flight: set[str] = field(default_factory=set)
    """Jobs issued whose end the test did not see before the kill."""
    expected_active: int | None = 0
    """ACTIVE as the last acknowledged change left it; None when an unacknowledged change
    (a job in flight, a rollback cut short) may have moved it."""
    counts: Counter[str] = field(default_factory=Counter)
    refusals: set[str] = field(default_factory=set)


class Replica:
    """Publishes a copy of an existing version as the next one, the way another replica of
    the daemon would: staging under its own lock, then a rename under the model lock."""

    def __init__(self, registry: Path) -> None:
        self.model_dir = registry / MODEL

    def publish(self, rng: random.Random, *, abandon: bool) -> int | None:
        numbers = [int(n) for n in os.listdir(self.model_dir / "versions") if n.isdigit()]
        if not numbers:
            return None
        source = self.model_dir / "versions" / str(rng.choice(numbers))
        staging_root = self.model_dir / ".staging"
        staging_root.mkdir(exist_ok=True)
        token = f"replica-{uuid.uuid4().hex[:12]}"
        staging = staging_root / token
        with _flock(staging_root / f"{token}.lock"):
            staging.mkdir()
            files = sorted(p for p in source.iterdir() if p.name != "manifest.json")
            for file in files[: len(files) // 2] if abandon else files:
                shutil.copyfile(file, staging / file.name)
                _fsync(staging / file.name)
            if abandon:
                return None  # the replica "dies": its lock goes, the half copy stays
            manifest = json.loads((source / "manifest.json").read_bytes())
            with _flock(self.model_dir / ".lock"):
                existing = [int(n) for n in os.listdir(self.model_dir / "versions")
                            if n.isdigit()]
                version = max(existing) + 1
                manifest.update(version=version, job_id="", published_by="replica",
                                created_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                         time.gmtime()))
                (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
                _fsync(staging / "manifest.json")
                _fsync(staging)
                os.rename(staging, self.model_dir / "versions" / str(version))
                _fsync(self.model_dir / "versions")
                _append_event(self.model_dir / "events.jsonl",
                              {"time": time.time(), "event": "published", "version": version,
                               "job_id": "", "by": "replica"})
        (staging_root / f"{token}.lock").unlink(missing_ok=True)
        return version


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _append_event(path: Path, record: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# ---- one iteration --------------------------------------------------------------------------

def wait_final(stub: pb_grpc.ModelManagerStub, job_id: str,
               until: Callable[[pb.Job], bool] = lambda job: False) -> pb.Job:
    """Follows a job until it ends or `until` holds; returns the last state seen."""
    last = None
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=120):
        last = event.job
        if last.state in FINAL or until(last):
            break
    assert last is not None
    return last


def train_and_wait(daemon: Daemon, ledger: Ledger) -> None:
    """A Train the test sees through to SUCCEEDED: its version is acknowledged."""
    job = daemon.stub.Train(TRAIN, timeout=30)
    final = wait_final(daemon.stub, job.id)
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.error
    ledger.acknowledged[final.version] = final.id
    if final.activated:
        ledger.expected_active = final.version
    ledger.counts["versions acknowledged"] += 1


def train_in_flight(daemon: Daemon, ledger: Ledger, rng: random.Random) -> None:
    """A Train left running into the kill, sometimes followed to a late phase first."""
    job = daemon.stub.Train(TRAIN, timeout=30)
    ledger.in_flight.add(job.id)
    ledger.expected_active = None
    # No "final_fit": logistic regression's final fit runs beside its folds (parallel.py).
    phase = rng.choice(["queued", "queued", "loading", "validating", "cross_validation",
                        "saving", "publishing"])
    seen = wait_final(daemon.stub, job.id, until=lambda j: j.phase == phase)
    if seen.state == pb.JOB_STATE_SUCCEEDED:  # it beat us to the end: acknowledged after all
        ledger.in_flight.discard(job.id)
        ledger.acknowledged[seen.version] = seen.id
        ledger.expected_active = seen.version if seen.activated else None
        ledger.counts["versions acknowledged"] += 1


def rollback(daemon: Daemon, ledger: Ledger, rng: random.Random,
             pool: ThreadPoolExecutor) -> Future[Any] | None:
    """A Rollback to another complete version: answered before the kill (acknowledged), or
    sent from a thread and left in flight into the kill."""
    model_dir = daemon.registry / MODEL
    active = read_active(model_dir)
    targets = [v for v in verified_versions(model_dir) if v != active]
    if not targets:
        return None
    request = pb.RollbackRequest(model=MODEL, to_version=rng.choice(targets),
                                 reason="crash test")
    stub = daemon.stub

    def call() -> pb.RollbackResponse | None:
        try:
            reply: pb.RollbackResponse = stub.Rollback(request, timeout=30)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                # A job in flight moved ACTIVE between our read and the call: a fair refusal.
                ledger.counts["rollbacks refused"] += 1
                ledger.refusals.add(exc.details())
            return None
        ledger.counts["rollbacks"] += 1
        return reply

    if rng.random() < 0.5:
        ledger.expected_active = None
        return pool.submit(call)
    reply = call()
    if reply is not None and not ledger.in_flight:
        ledger.expected_active = reply.active_version
    return None


def check_after_restart(daemon: Daemon, ledger: Ledger) -> None:
    """Everything the module docstring promises, read from disk and from the daemon."""
    model_dir = daemon.registry / MODEL
    versions = verified_versions(model_dir)
    lost = set(ledger.acknowledged) - set(versions)
    assert not lost, f"acknowledged versions missing after restart: {sorted(lost)}"
    active = read_active(model_dir)
    assert active == 0 or active in versions, f"ACTIVE names v{active}, not a complete version"
    if ledger.expected_active is not None:
        assert active == ledger.expected_active, "ACTIVE lost an acknowledged change"
        ledger.counts["ACTIVE checked against an acknowledged change"] += 1
    _, torn = checked_events(daemon.registry, versions)
    ledger.counts["torn event lines skipped"] += torn

    for job_id in sorted(ledger.in_flight):
        job = daemon.stub.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)
        assert job.state in FINAL, f"job {job_id} is {pb.JobState.Name(job.state)} after restart"
        if job.state == pb.JOB_STATE_SUCCEEDED:
            assert job.version in versions
            assert versions[job.version]["job_id"] == job.id, job
            ledger.acknowledged[job.version] = job.id
            ledger.counts["jobs finished unobserved"] += 1
            if "recorded at restart" in job.message:
                # Killed between the rename and the job record (see the test below).
                ledger.counts["jobs recorded as published at restart"] += 1
        else:
            assert (job.state, job.error) == (pb.JOB_STATE_FAILED, INTERRUPTED), job
            published = sorted(v for v, m in versions.items() if m.get("job_id") == job_id)
            assert not published, f"job {job_id} is FAILED but published {published}"
            ledger.counts["jobs interrupted"] += 1
    ledger.in_flight.clear()
    ledger.expected_active = active

    token = ""
    while True:
        page = daemon.stub.ListJobs(pb.ListJobsRequest(page_size=1000, page_token=token),
                                    timeout=10)
        for job in page.jobs:
            assert job.state in FINAL, job
            assert job.state != pb.JOB_STATE_FAILED or job.error, job
        token = page.next_page_token
        if not token:
            break
    status = daemon.stub.GetStatus(pb.GetStatusRequest(), timeout=10)
    if versions:
        (model,) = [m for m in status.models if m.model == MODEL]
        assert (model.active_version, model.state) == (active, pb.LOAD_STATE_READY), model
        assert model.loaded_version == active
        row = pb.DenseRows(columns=FEATURES, values=[5.1, 3.5, 1.4, 0.2])
        answer = daemon.stub.Predict(pb.PredictRequest(model=MODEL, dense=row), timeout=10)
        assert (answer.version, len(answer.labels)) == (active, 1)
    leftovers = [p for p in (model_dir / ".staging").glob("*") if p.is_dir()]
    ledger.counts["staging leftovers after restart"] += len(leftovers)


def test_sigkill_at_random_moments_never_corrupts_the_registry(daemon: Daemon) -> None:
    """At least 50 SIGKILLs mid-Train/Rollback/publish; the registry stays whole each time."""
    seed = int(os.environ.get("MODELD_CRASH_SEED", str(time.time_ns() % 2**32)))
    rng = random.Random(seed)
    ledger = Ledger()
    replica = Replica(daemon.registry)
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            daemon.start()
            train_and_wait(daemon, ledger)  # a first version to roll back to and copy
            for _ in range(ITERATIONS):
                ledger.counts["iterations"] += 1
                iterate(daemon, ledger, replica, rng, pool)
    finally:
        print(f"\ncrash safety: seed={seed} (MODELD_CRASH_SEED replays it), "
              f"{time.monotonic() - started:.0f} s")
        for name in COUNTS:
            print(f"  {name}: {ledger.counts[name]}")
        for details in sorted(ledger.refusals):
            print(f"  rollback refused: {details}")
    assert ledger.counts["kills"] >= 50


COUNTS = ("iterations", "kills", "versions acknowledged", "jobs interrupted", "rollbacks",
          "rollbacks refused", "replica publishes", "replica publishes abandoned",
          "jobs finished unobserved", "ACTIVE checked against an acknowledged change",
          "jobs recorded as published at restart", "torn event lines skipped",
          "staging leftovers after restart")


def iterate(daemon: Daemon, ledger: Ledger, replica: Replica, rng: random.Random,
            pool: ThreadPoolExecutor) -> None:
    """Random operations, a SIGKILL 0-300 ms later, a restart and the checks."""
    if rng.random() < 0.25:
        train_and_wait(daemon, ledger)
    pending: list[Future[Any]] = []
    for op in rng.sample(["train", "rollback", "publish", "abandon"], rng.randint(1, 3)):
        if op == "train":
            train_in_flight(daemon, ledger, rng)
        elif op == "rollback":
            if (future := rollback(daemon, ledger, rng, pool)) is not None:
                pending.append(future)
        elif (version := replica.publish(rng, abandon=op == "abandon")) is not None:
            ledger.acknowledged[version] = "replica"
            ledger.counts["replica publishes"] += 1
            ledger.counts["versions acknowledged"] += 1
        else:
            ledger.counts["replica publishes abandoned"] += 1
    time.sleep(rng.uniform(0.0, 0.3))
    daemon.kill()
    ledger.counts["kills"] += 1
    for future in pending:
        future.result(timeout=60)
    daemon.start()
    check_after_restart(daemon, ledger)


def test_a_job_killed_after_publishing_does_not_report_failure(daemon: Daemon) -> None:
    """Kill the instant versions/<n> appears: after the restart the job SUCCEEDED with it."""
    daemon.start()
    versions = daemon.registry / MODEL / "versions"
    for attempt in range(3):
        before = set(os.listdir(versions)) if versions.is_dir() else set()
        job = daemon.stub.Train(TRAIN, timeout=30)
        deadline = time.monotonic() + 120
        while not (versions.is_dir() and set(os.listdir(versions)) - before):
            if time.monotonic() > deadline:
                pytest.fail("no version appeared")
            time.sleep(0.0005)
        daemon.kill()
        (new,) = set(os.listdir(versions)) - before
        daemon.start()
        record = daemon.stub.GetJob(pb.GetJobRequest(job_id=job.id), timeout=10)
        manifest = json.loads((versions / new / "manifest.json").read_bytes())
        if manifest["job_id"] != job.id:
            pytest.fail(f"v{new} was published by {manifest['job_id']!r}, not {job.id}")
        assert record.state == pb.JOB_STATE_SUCCEEDED, (
            f"attempt {attempt}: v{new} of job {job.id} is published but the job is "
            f"{pb.JobState.Name(record.state)}: {record.error!r}")
        assert record.version == int(new)


def test_the_replica_publish_helper_makes_versions_the_daemon_serves(daemon: Daemon) -> None:
    """The control for the loop: an out-of-band copy is a complete version to the daemon."""
    daemon.start()
    ledger = Ledger()
    train_and_wait(daemon, ledger)
    version = Replica(daemon.registry).publish(random.Random(1), abandon=False)
    assert version == 2
    deadline = time.monotonic() + 30
    while True:
        listed = daemon.stub.ListVersions(pb.ListVersionsRequest(model=MODEL), timeout=10)
        if [v.version for v in listed.versions] == [2, 1] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [v.version for v in listed.versions] == [2, 1]
    reply = daemon.stub.Rollback(pb.RollbackRequest(model=MODEL, to_version=2), timeout=30)
    assert reply.active_version == 2
