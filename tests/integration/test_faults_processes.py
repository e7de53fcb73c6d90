"""Truth under faults: what the daemon does when it is killed, stopped, or given bad files.

Each class starts real daemons as subprocesses (`python -m modeld_server serve`), the way an
operator runs them, and observes them from outside: exit codes, stderr, /proc, gRPC status.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from modeld_server.auth import TokenFileError, TokenTable
from tests.conftest import LiveDaemon, start_daemon, wait_job, write_datasets
from tests.faultkit import read_only

SERVE = [sys.executable, "-m", "modeld_server", "serve", "--listen", "127.0.0.1:0"]
SLOW_CV = pb.TrainRequest(model="slow", algorithm="random_forest", cv_folds=10,
                          dataset=pb.Dataset(path="spambase.csv", target="is_spam"),
                          params={"n_estimators": "3000"})


def serve_args(base: Path, *extra: str) -> list[str]:
    """The command line of a daemon with its folders under `base`."""
    return [*SERVE, "--registry", str(base / "registry"), "--data-root", str(base / "data"),
            "--state-dir", str(base / "state"), *extra]


class Served:
    """A daemon subprocess on `base`'s folders, with a stub; SIGTERMed on exit if alive."""

    def __init__(self, base: Path, *extra: str, state: str = "state",
                 prefix: list[str] | None = None) -> None:
        if not (base / "data" / "spambase.csv").exists():
            write_datasets(base / "data")
        port_file = base / f"{state}.port"
        port_file.unlink(missing_ok=True)
        args = serve_args(base, "--port-file", str(port_file), *extra)
        args[args.index("--state-dir") + 1] = str(base / state)
        self.process = subprocess.Popen(
            [*(prefix or []), *args], stdout=subprocess.DEVNULL,
            stderr=(base / f"{state}.log").open("ab"))
        deadline = time.monotonic() + 120
        while not port_file.exists():
            assert self.process.poll() is None, "daemon exited during start-up"
            assert time.monotonic() < deadline, "daemon did not start in 120 s"
            time.sleep(0.05)
        self.address = f"127.0.0.1:{port_file.read_text().strip()}"
        self.channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.ModelManagerStub(self.channel)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def process_tree(pid: int) -> dict[int, tuple[int, str]]:
    """{pid: (depth below `pid`, start time)} for `pid` and every descendant, any thread's."""
    found: dict[int, tuple[int, str]] = {}
    pending = [(pid, 0)]
    while pending:
        current, depth = pending.pop()
        started = _start_time(current)
        if started is None:
            continue
        found[current] = (depth, started)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            pending.extend((int(child), depth + 1) for child in children)
    return found


def _start_time(pid: int) -> str | None:
    """The process's start time (so a reused pid is not mistaken for it); None if it is gone
    or a zombie (dead, waiting for a parent that may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def still_running(tree: dict[int, tuple[int, str]]) -> list[int]:
    return [pid for pid, (_, started) in tree.items() if _start_time(pid) == started]


class TestTokenFile:
    """A `#` inside a token is part of it; a bad file stops the daemon with one line, exit 2."""

    GOOD = "operator-token-0123456789"

    def load(self, tmp_path: Path, text: str | bytes) -> TokenTable:
        path = tmp_path / "tokens"
        if isinstance(text, str):
            text = text.encode()
        path.write_bytes(text)
        return TokenTable.load(path)

    def test_a_hash_inside_a_token_is_part_of_it(self, tmp_path: Path) -> None:
        """`operator abcd#efgh...` is the whole word; the part before `#` is no token."""
        table = self.load(tmp_path, "operator shortpart#0123456789abcdef\n")
        assert table.role_of("shortpart#0123456789abcdef") == "operator"
        assert table.role_of("shortpart") is None

    def test_a_hash_that_would_leave_a_short_secret_is_refused(self, tmp_path: Path) -> None:
        """Before, `operator abc#...` silently set the secret `abc`; now the token is whole."""
        table = self.load(tmp_path, "operator abc#defghijklmnopqrstu\n")
        assert table.role_of("abc") is None
        assert table.role_of("abc#defghijklmnopqrstu") == "operator"

    def test_comments_start_a_line_or_follow_whitespace(self, tmp_path: Path) -> None:
        """`#` at a line's start, or after a space or a tab, starts a comment."""
        table = self.load(tmp_path, f"# role token\n  # indented\noperator {self.GOOD} # mine\n"
                                    f"reader reader-token-0123456789\t#tabbed\r\n")
        assert table.role_of(self.GOOD) == "operator"
        assert table.role_of("reader-token-0123456789") == "reader"

    @pytest.mark.parametrize(("text", "message"), [
        ("operator short#x\n", "tokens:1: token shorter than 16 characters (7)"),
        ("admin operator-token-0123456789\n",
         "tokens:1: expected 'reader TOKEN' or 'operator TOKEN', got unknown role 'admin'"),
        ("operator-token-0123456789\n",
         "tokens:1: expected 'reader TOKEN' or 'operator TOKEN', got 1 word"),
        ("operator operator-token-0123456789 extra\n",
         "tokens:1: expected 'reader TOKEN' or 'operator TOKEN', got 3 words"),
        ("operator operator-token\x0b0123456789\n",
         "tokens:1: character 0x0b is not allowed; roles and tokens are printable ASCII, "
         "separated by spaces or tabs"),
        (f"operator {GOOD}\nreader {GOOD}\n", "tokens:2: the same token as line 1"),
        ("# nothing but comments\n", "tokens: no tokens"),
    ])
    def test_bad_lines_name_line_and_reason(self, tmp_path: Path, text: str,
                                            message: str) -> None:
        """Every refusal names the file, the line and the reason, and never the token."""
        with pytest.raises(TokenFileError) as err:
            self.load(tmp_path, text)
        assert str(err.value) == f"{tmp_path}/{message}"

    @pytest.mark.parametrize("case", ["missing", "empty", "unknown role", "unreadable",
                                      "garbage bytes"])
    def test_a_bad_file_stops_the_daemon_with_one_line(self, tmp_path: Path, case: str) -> None:
        """No traceback: exit code 2 and one line on stderr that names the file."""
        path = tmp_path / "tokens"
        expected = {
            "missing": f"{path}: cannot read the token file: No such file or directory",
            "empty": f"{path}: no tokens",
            "unknown role": f"{path}:1: expected 'reader TOKEN' or 'operator TOKEN', got "
                            "unknown role 'root'",
            "unreadable": f"{path}: cannot read the token file: Is a directory",
            "garbage bytes": f"{path}:2: byte 0xff is not ASCII; roles and tokens are "
                             "printable ASCII",
        }[case]
        if case == "empty":
            path.write_text("")
        elif case == "unknown role":
            path.write_text(f"root {self.GOOD}\n")
        elif case == "unreadable":
            path.mkdir()
        elif case == "garbage bytes":
            path.write_bytes(f"operator {self.GOOD}\n".encode() + b"\xff\xfe\x00garbage\n")
        result = subprocess.run(serve_args(tmp_path, "--token-file", str(path)),
                                capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stderr.splitlines()) == (2, [f"modeld: {expected}"])


class TestDaemonKilled:
    """SIGKILL runs no cleanup: the training processes must die with the daemon by themselves."""

    def test_sigkill_mid_cross_validation_takes_every_training_process(
            self, tmp_path: Path) -> None:
        """Forkserver, resource tracker, worker and its fit processes end at once (death
        signals, not the next progress message a fold later); allowed 10 s on a loaded box."""
        with Served(tmp_path) as daemon:
            job = daemon.stub.Train(SLOW_CV)
            deadline = time.monotonic() + 120
            tree = process_tree(daemon.process.pid)
            # daemon -> forkserver -> job worker -> fit processes
            while max(depth for depth, _ in tree.values()) < 3:
                assert time.monotonic() < deadline, f"no fit process started: {tree}"
                time.sleep(0.1)
                tree = process_tree(daemon.process.pid)
            state = daemon.stub.GetJob(pb.GetJobRequest(job_id=job.id))
            assert (state.state, state.phase) == (pb.JOB_STATE_RUNNING, "cross_validation")
            assert len(tree) >= 5, tree  # with the resource tracker
            daemon.process.kill()
            killed = time.monotonic()
            daemon.process.wait(10)
            while (left := still_running(tree)) and time.monotonic() - killed < 10:
                time.sleep(0.05)
            assert left == [], f"still running {time.monotonic() - killed:.1f} s later: {left}"


IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
SHUTTING_DOWN = ("the daemon is shutting down and takes no new calls; retry on another "
                 "replica")


def metrics_port(log: Path) -> int:
    """The metrics port the daemon logged (its log is JSON lines when not on a terminal)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if '"metrics_serving"' in line:
                return int(json.loads(line)["address"].rsplit(":", 1)[1])
        time.sleep(0.05)
    raise AssertionError(f"no metrics_serving line in {log}")


def started(port: int) -> float:
    """modeld_rpc_started_total: the calls the daemon has taken from the network."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    for line in text.decode().splitlines():
        if line.startswith("modeld_rpc_started_total "):
            return float(line.split()[1])
    raise AssertionError("no modeld_rpc_started_total in /metrics")


class TestGracefulStop:
    """SIGTERM: calls taken before it end with their own answer, later ones UNAVAILABLE."""

    def test_sigterm_finishes_taken_calls_and_refuses_new_ones(self, tmp_path: Path) -> None:
        """30 slow Predicts in flight, then SIGTERM: all 30 OK; a call after NOT_SERVING is
        UNAVAILABLE with the reason; 30 more racing the signal are OK or UNAVAILABLE, never
        CANCELLED (gRPC's answer to a call it had not handed over when it stopped)."""
        with Served(tmp_path, "--grace-period", "120",
                    "--metrics-listen", "127.0.0.1:0") as daemon:
            metrics = metrics_port(tmp_path / "state.log")
            job = daemon.stub.Train(pb.TrainRequest(
                model="iris", algorithm="random_forest", cv_folds=2,
                params={"n_estimators": "300"},
                dataset=pb.Dataset(path="iris.csv", target="species")))
            for _ in daemon.stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=300):
                pass
            rng = np.random.default_rng(0)
            slow = pb.PredictRequest(model="iris", dense=pb.DenseRows(
                columns=IRIS_COLUMNS, values=rng.uniform(0, 8, size=4 * 4000).tolist()))
            before = started(metrics)
            taken = [daemon.stub.Predict.future(slow, timeout=300) for _ in range(30)]
            deadline = time.monotonic() + 60
            while started(metrics) < before + 30:
                assert time.monotonic() < deadline, "the daemon did not take the 30 calls"
                time.sleep(0.02)
            assert not all(f.done() for f in taken), "too fast to be in flight at SIGTERM"

            daemon.process.send_signal(signal.SIGTERM)
            racing = [daemon.stub.Predict.future(slow, timeout=300) for _ in range(30)]
            deadline = time.monotonic() + 60
            health = health_pb2_grpc.HealthStub(daemon.channel)
            request = health_pb2.HealthCheckRequest(service="modeld.v1.ModelManager")
            serving = health_pb2.HealthCheckResponse.SERVING
            while health.Check(request, timeout=30).status == serving:
                assert time.monotonic() < deadline, "SIGTERM did not flip health"
                time.sleep(0.01)
            with pytest.raises(grpc.RpcError) as err:
                daemon.stub.Predict(slow, timeout=30)
            assert (err.value.code(), err.value.details()) == (
                grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)

            assert [outcome(f) for f in taken] == ["OK"] * 30
            assert {outcome(f) for f in racing} <= {"OK", f"UNAVAILABLE: {SHUTTING_DOWN}"}
            assert daemon.process.wait(120) == 0


    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_a_stop_signal_that_lands_on_another_thread_stops_the_daemon(
            self, tmp_path: Path, signum: signal.Signals) -> None:
        """Linux may hand a process's signal to any thread; the daemon stops whichever one
        (before, a main thread blocked in Event.wait() never woke: SIGTERM was ignored)."""
        with Served(tmp_path) as daemon:
            main = daemon.process.pid
            # The kernel gives a process's signal to a thread that does not block it
            # (jemalloc's background thread blocks all): here, grpc's first such thread.
            takers = [task for task in sorted(Path(f"/proc/{main}/task").iterdir())
                      if int(task.name) != main and not blocks(task, signum)]
            assert takers, "the daemon runs no other thread that takes the signal"
            tgkill = ctypes.CDLL(None, use_errno=True).tgkill
            assert tgkill(main, int(takers[0].name), int(signum)) == 0, ctypes.get_errno()
            assert daemon.process.wait(60) == 0
        assert '"event": "stopped"' in (tmp_path / "state.log").read_text()


def blocks(task: Path, signum: int) -> bool:
    """Whether the thread /proc/PID/task/TID has `signum` in its blocked mask."""
    for line in (task / "status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    raise AssertionError(f"no SigBlk in {task}/status")


def outcome(future: Any) -> str:
    try:
        future.result()
    except grpc.RpcError as err:
        return f"{err.code().name}: {err.details()}"
    return "OK"


class TestRequestIdAcrossReplicas:
    """Two daemons on one registry honour a Train request_id as one daemon does."""

    @pytest.fixture
    def replicas(self, tmp_path: Path, datasets: Path) -> Iterator[tuple[LiveDaemon, LiveDaemon]]:
        shutil.copytree(datasets, tmp_path / "data")
        first = start_daemon(tmp_path)
        second = start_daemon(tmp_path, state_dir=tmp_path / "state-2")
        yield first, second
        first.stop()
        second.stop()

    @staticmethod
    def iris(request_id: str, **fields: Any) -> pb.TrainRequest:
        return pb.TrainRequest(model="iris", algorithm="logistic_regression", cv_folds=2,
                               request_id=request_id, **fields,
                               dataset=pb.Dataset(path="iris.csv", target="species"))

    def test_a_retry_on_the_other_replica_answers_with_the_first_job(
            self, replicas: tuple[LiveDaemon, LiveDaemon]) -> None:
        """The second daemon trains nothing: it answers with the job, state and version the
        first recorded; a different request under the id is ALREADY_EXISTS, word for word
        as the first daemon says it."""
        first, second = replicas
        job = first.stub.Train(self.iris("retry-1"))
        done = wait_job(first.stub, job.id)
        assert (done.state, done.version) == (pb.JOB_STATE_SUCCEEDED, 1)

        again = second.stub.Train(self.iris("retry-1"))
        assert (again.id, again.state, again.version, again.message) == (
            job.id, pb.JOB_STATE_SUCCEEDED, 1, "published version 1")
        assert list(second.stub.ListJobs(pb.ListJobsRequest()).jobs) == []
        versions = first.stub.ListVersions(pb.ListVersionsRequest(model="iris")).versions
        assert [v.version for v in versions] == [1]

        different = self.iris("retry-1", params={"C": "0.5"})
        answers = []
        for daemon in (first, second):
            with pytest.raises(grpc.RpcError) as err:
                daemon.stub.Train(different)
            answers.append((err.value.code(), err.value.details()))
        assert answers == [(grpc.StatusCode.ALREADY_EXISTS,
                            f"request_id 'retry-1' was used for job {job.id} with a "
                            "different request")] * 2

    def test_the_same_request_id_at_once_on_both_runs_one_job(
            self, replicas: tuple[LiveDaemon, LiveDaemon]) -> None:
        """Sent to both daemons at the same moment, one job is queued; both name it."""
        start = threading.Barrier(2)

        def train(daemon: LiveDaemon) -> pb.Job:
            start.wait()
            return daemon.stub.Train(self.iris("race-1"))

        with ThreadPoolExecutor(2) as pool:
            jobs = list(pool.map(train, replicas))
        assert jobs[0].id == jobs[1].id
        owners = [d for d in replicas if d.stub.ListJobs(pb.ListJobsRequest()).jobs]
        assert len(owners) == 1
        assert wait_job(owners[0].stub, jobs[0].id).state == pb.JOB_STATE_SUCCEEDED
        versions = owners[0].stub.ListVersions(pb.ListVersionsRequest(model="iris")).versions
        assert [v.version for v in versions] == [1]


    def test_a_registry_that_cannot_record_the_claim_refuses_the_train(
            self, replicas: tuple[LiveDaemon, LiveDaemon]) -> None:
        """A read-only registry: FAILED_PRECONDITION naming the file, and no job."""
        first, _ = replicas
        with read_only(first.registry):
            with pytest.raises(grpc.RpcError) as err:
                first.stub.Train(self.iris("ro-1"))
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert err.value.details().startswith(
                f"read-only file system: cannot write '{first.registry / 'iris'}"), (
                err.value.details())
            assert list(first.stub.ListJobs(pb.ListJobsRequest()).jobs) == []


IGNORING_SIGINT = [sys.executable, "-c", "import os, signal, sys; "
                   "signal.signal(signal.SIGINT, signal.SIG_IGN); "
                   "os.execv(sys.argv[1], sys.argv[1:])"]
FOREGROUND = [sys.executable, "-c", "import os, signal, sys; "
              "signal.signal(signal.SIGINT, signal.SIG_DFL); "
              "os.execv(sys.argv[1], sys.argv[1:])"]
"""As a terminal's foreground job starts: SIGINT at its default. The suite itself may run
with SIGINT ignored (a background job, `nohup`, some CI runners), which a child inherits."""


class TestSigint:
    """Ctrl-C stops a daemon in the foreground; one started with SIGINT ignored keeps it so."""

    @staticmethod
    def ignored(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status").read_text()
        mask = int(next(line for line in status.splitlines()
                        if line.startswith("SigIgn:")).split()[1], 16)
        return bool(mask & (1 << (signal.SIGINT - 1)))

    def test_sigint_stops_a_foreground_daemon(self, tmp_path: Path) -> None:
        with Served(tmp_path, prefix=FOREGROUND) as daemon:
            assert not self.ignored(daemon.process.pid)
            daemon.process.send_signal(signal.SIGINT)
            assert daemon.process.wait(60) == 0

    def test_a_daemon_started_with_sigint_ignored_keeps_it_ignored(
            self, tmp_path: Path) -> None:
        """As a shell's background job (or `nohup ... &` in a script) is: the signal is
        dropped, the daemon serves on, and SIGTERM still stops it cleanly."""
        with Served(tmp_path, prefix=IGNORING_SIGINT) as daemon:
            assert self.ignored(daemon.process.pid)
            daemon.process.send_signal(signal.SIGINT)  # the kernel drops it at once
            daemon.stub.GetStatus(pb.GetStatusRequest(), timeout=30)
            assert daemon.process.poll() is None
            daemon.process.send_signal(signal.SIGTERM)
            assert daemon.process.wait(60) == 0
