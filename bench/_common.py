"""What the benchmarks share: a daemon in a subprocess on 127.0.0.1, and small statistics.

The daemon runs in its own process (not in the benchmark's interpreter) so its
threads do not compete with the benchmark for one GIL: that is how it runs for
real, and the only honest way to time it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
SPAMBASE = ROOT / "data" / "spambase.csv"
HOST = "127.0.0.1"
# Never route a loopback benchmark through an http_proxy from the environment.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


@dataclass
class DaemonProcess:
    """A `modeld serve` subprocess with its folders under `base`, and a stub on 127.0.0.1."""

    base: Path
    process: subprocess.Popen[bytes]
    address: str
    channel: grpc.Channel
    stub: pb_grpc.ModelManagerStub
    spawned_at: float = 0.0
    """time.perf_counter() just before the process was started."""
    serving_at: float = 0.0
    """time.perf_counter() when its port file appeared (written once its models are loaded)."""

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def registry(self) -> Path:
        return self.base / "registry"

    @property
    def data_root(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    def new_channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no daemon log)"


@contextlib.contextmanager
def scratch_folder(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary folder for one run, removed when it ends (Ctrl-C included), unless `keep`:
    then its path is printed, for the daemon's log and what the run built."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield base
    finally:
        if keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def running_daemon(base: Path, extra_args: Sequence[str] = (),
                   start_timeout: float = 60.0) -> Iterator[DaemonProcess]:
    """Starts `python -m modeld_server serve` on 127.0.0.1:0 and stops it on exit.

    Args:
        base: holds registry/, data/ (already filled by the caller), state/ and the log.
        extra_args: more `modeld serve` flags; none means the daemon's defaults.
        start_timeout: seconds to wait for the port file and a ready channel.

    Yields:
        The running daemon. On exit: SIGTERM, then SIGKILL if it has not stopped in 15 s.
    """
    port_file = base / "port"
    port_file.unlink(missing_ok=True)  # left by an earlier daemon on the same folders
    argv = [sys.executable, "-m", "modeld_server", "serve", "--listen", f"{HOST}:0",
            "--registry", str(base / "registry"), "--data-root", str(base / "data"),
            "--state-dir", str(base / "state"), "--port-file", str(port_file),
            "--log-format", "json", *extra_args]
    spawned_at = time.perf_counter()
    with (base / "daemon.log").open("wb") as log:
        # Its own session: a Ctrl-C at the terminal reaches only the benchmark, whose
        # `finally` then stops the daemon in order.
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                   start_new_session=True)
    daemon: DaemonProcess | None = None
    try:
        port = _wait_port(port_file, process, start_timeout)
        serving_at = time.perf_counter()
        address = f"{HOST}:{port}"
        channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        grpc.channel_ready_future(channel).result(timeout=start_timeout)
        daemon = DaemonProcess(base, process, address, channel, pb_grpc.ModelManagerStub(channel),
                               spawned_at, serving_at)
        yield daemon
    finally:
        if daemon is not None:
            daemon.channel.close()
        _stop(process)


def _wait_port(port_file: Path, process: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited with code {process.returncode} before serving")
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(port_file.read_text().strip())
        time.sleep(0.005)  # cold-start figures read this moment
    raise TimeoutError(f"the daemon wrote no port file in {timeout:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        # Our own child's process group (start_new_session made it its leader).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def train_and_wait(stub: pb_grpc.ModelManagerStub, request: pb.TrainRequest,
                   timeout: float = 600.0) -> pb.Job:
    """Submits a job and follows WatchJob to its final state; returns the final job."""
    job: pb.Job = stub.Train(request, timeout=60)
    for event in stub.WatchJob(pb.WatchJobRequest(job_id=job.id), timeout=timeout):
        job = event.job
    return job


class RpcLog:
    """Reads the daemon's canonical per-RPC log lines (JSON) as they are appended.

    Each line's duration_ms is the handler's own time, from the rpc wrapper's start to its
    log call: no transport, no gRPC framework, no waiting for a thread.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def durations_ms(self) -> list[float]:
        """duration_ms of every `rpc` line appended since the last call."""
        return [ms for _, ms in self.lines()]

    def lines(self) -> list[tuple[str, float]]:
        """(method, duration_ms) of every `rpc` line appended since the last call."""
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self.offset += end
        out = []
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "rpc":
                    out.append((str(record.get("method")),
                                float(record.get("duration_ms", "nan"))))
        return out

    def wait_for(self, method: str, count: int, seconds: float = 2.0) -> list[float]:
        """duration_ms of the next `count` lines of `method` (a unary call's line is
        written just after its response is sent), or of those that came in `seconds`."""
        found: list[float] = []
        deadline = time.monotonic() + seconds
        while len(found) < count and time.monotonic() < deadline:
            found += [ms for m, ms in self.lines() if m == method]
            if len(found) < count:
                time.sleep(0.002)
        return found


def first_answer(call: Callable[..., object], payload: bytes, call_timeout: float,
                 give_up: float) -> float:
    """Calls `call(payload)` until it answers (a daemon still loading refuses); returns
    time.perf_counter() at the answer. Re-raises the last RpcError after `give_up` seconds."""
    deadline = time.perf_counter() + give_up
    while True:
        try:
            call(payload, timeout=call_timeout)
            return time.perf_counter()
        except grpc.RpcError:
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.002)


def write_pointer(path: Path, version: int) -> float:
    """Rewrites an ACTIVE pointer as an operator would: temp file beside it, fsync, os.replace.

    Returns:
        time.perf_counter() taken just before os.replace, the moment the change becomes visible.
    """
    tmp = path.with_name(f".{path.name}.bench-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{version}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    started = time.perf_counter()
    os.replace(tmp, path)
    return started


# ---- a peer server: Seldon MLServer with its XGBoost runtime, from its own venv --------------

MLSERVER_INSTALL = ("python3 -m venv DIR && DIR/bin/pip install mlserver==1.7.1 "
                    "mlserver-xgboost==1.7.1 uvloop==0.21.0")
"""How the peer's venv is made (newer uvloop breaks MLServer 1.7.1's start-up)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def mlserver_folder(folder: Path, model: str, model_file: Path, python: Path,
                    workers: int | None) -> tuple[list[str], str]:
    """Writes an MLServer repository serving `model_file` (XGBoost .ubj) as `model`.

    Args:
        folder: an empty folder for settings.json and the model's folder.
        python: the peer venv's interpreter; its `mlserver` script sits beside it.
        workers: parallel_workers; None keeps MLServer's default (1: a worker process),
            0 predicts in its main process.

    Returns:
        (argv that starts it, its gRPC address on 127.0.0.1).
    """
    grpc_port = free_port()
    settings: dict[str, object] = {"http_port": free_port(), "grpc_port": grpc_port,
                                   "metrics_port": free_port(), "host": HOST}
    if workers is not None:
        settings["parallel_workers"] = workers
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / model).mkdir()
    shutil.copy(model_file, folder / model / "model.ubj")
    (folder / model / "model-settings.json").write_text(json.dumps({
        "name": model, "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.ubj"}}))
    # Not resolved: a venv's python is a symlink out of the venv, its scripts are not.
    return [str(python.parent / "mlserver"), "start", str(folder)], f"{HOST}:{grpc_port}"


def mlserver_version(python: Path) -> str:
    """The peer venv's mlserver version (raises CalledProcessError when it has none)."""
    return subprocess.run([str(python), "-c", "import mlserver; print(mlserver.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def spawned(argv: list[str], folder: Path,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server process in its own session, its output in folder/server.log, `env` added to
    this process's environment; on exit its whole process group is stopped (SIGTERM, then
    SIGKILL), workers included."""
    with (folder / "server.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                   start_new_session=True, env={**os.environ, **(env or {})})
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        # MLServer's worker is in the same session: nothing of it may outlive the run.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def git_commit() -> str:
    """The checkout's commit, marked when the daemon's code differs from it."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=here, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "../server", "../client"],
                               capture_output=True, text=True, cwd=here).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" with uncommitted server/client changes" if dirty else "")


def load_note() -> str:
    """The 1-minute load average against the CPU count, flagged when others compete for CPU."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    busy = "  WARNING: the machine is busy, figures are not reliable" if load > 0.5 * cpus else ""
    return f"load average {load:.2f} on {cpus} CPUs{busy}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# ---- what a process costs, read from /proc (Linux) ----------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of every thread of `pid` so far (10 ms resolution)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB: resident memory now, and its peak."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def descendants(pid: int) -> list[int]:
    """`pid`'s child processes, their children, and so on (by scanning /proc for parents)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    pending = [pid]
    while pending:
        children = parents.get(pending.pop(), [])
        out.extend(children)
        pending.extend(children)
    return out


def pss_mib(pids: Sequence[int]) -> float:
    """Proportional set size summed over `pids`, in MiB: shared pages are split, not repeated."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total / 1024
