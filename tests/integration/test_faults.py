"""Truth under faults: hostile datasets, undecodable requests, a read-only or full registry.

Each class sets up a real fault (a gzip bomb, a FIFO, a read-only bind mount, a full
tmpfs) and asserts the exact status and message a client gets, and what the daemon did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld.v1 import model_manager_pb2_grpc as pb_grpc
from modeld_server.training.sample import MAX_HEADER_BYTES, SAMPLE_BYTES
from tests.conftest import LiveDaemon, start_daemon, wait_job
from tests.faultkit import fill, read_only, tmpfs

CODE = grpc.StatusCode
MiB = 1 << 20


def write_gzip(path: Path, head: bytes, unit: bytes, total: int, tail: bytes = b"") -> None:
    """A gzip file of `head`, then `unit` repeated to about `total` bytes, then `tail`,
    compressed chunk by chunk so the test never holds the uncompressed bytes."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    block = unit * max(1, MiB // len(unit))
    with path.open("wb") as out:
        out.write(packer.compress(head))
        for _ in range(total // len(block)):
            out.write(packer.compress(block))
        out.write(packer.compress(tail))
        out.write(packer.flush())


def peak_rss_reset() -> bool:
    """Resets this process's peak resident size (VmHWM); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@pytest.fixture
def small_limit_daemon(tmp_path: Path, datasets: Path) -> Iterator[LiveDaemon]:
    """A daemon (in this process) whose datasets may hold 64 MiB uncompressed."""
    import shutil

    shutil.copytree(datasets, tmp_path / "data")
    live = start_daemon(tmp_path, max_dataset_bytes=64 * MiB)
    yield live
    live.stop()


class TestBoundedTrain:
    """Train reads a bounded prefix of a dataset in the daemon; the rest happens in the job."""

    def test_a_gzip_bomb_header_is_refused_without_inflating_it(
            self, small_limit_daemon: LiveDaemon) -> None:
        """A 300 MB header line in a ~1 MB .csv.gz: once read whole into the daemon (GBs of
        RSS); now INVALID_ARGUMENT naming the header limit, the daemon's peak barely moved."""
        path = small_limit_daemon.data_root / "bomb.csv.gz"
        write_gzip(path, b"", b"0,", 300 * MiB)
        assert path.stat().st_size < 2 * MiB
        if not peak_rss_reset():
            pytest.skip("cannot reset VmHWM through /proc/self/clear_refs")
        before = peak_rss_mib()
        with pytest.raises(grpc.RpcError) as err:
            small_limit_daemon.stub.Train(pb.TrainRequest(
                model="bomb", algorithm="xgboost",
                dataset=pb.Dataset(path="bomb.csv.gz", target="0")), timeout=120)
        assert err.value.code() == CODE.INVALID_ARGUMENT
        assert err.value.details() == (
            f"dataset.path 'bomb.csv.gz' has a header line longer than {MAX_HEADER_BYTES} "
            "bytes, the most Train reads")
        assert peak_rss_mib() - before < 64, "the daemon inflated the bomb"

    def test_a_gzip_bomb_of_rows_is_queued_and_the_job_stops_at_max_dataset_bytes(
            self, small_limit_daemon: LiveDaemon) -> None:
        """300 MB of rows in a ~1 MB file: the daemon infers the task from its first
        SAMPLE_BYTES (once it read the whole column with pandas), the job stops inflating
        at max_dataset_bytes and fails RESOURCE_EXHAUSTED-style naming the limit."""
        path = small_limit_daemon.data_root / "rows.csv.gz"
        write_gzip(path, b"a,b\n", b"1,0\n2,1\n", 300 * MiB)
        if not peak_rss_reset():
            pytest.skip("cannot reset VmHWM through /proc/self/clear_refs")
        before = peak_rss_mib()
        job = small_limit_daemon.stub.Train(pb.TrainRequest(
            model="rows", algorithm="xgboost", dataset=pb.Dataset(path="rows.csv.gz",
                                                                  target="b")), timeout=120)
        grew = peak_rss_mib() - before
        assert job.request.task == pb.TASK_CLASSIFICATION
        assert grew < 64, f"the daemon's peak RSS grew {grew:.0f} MiB during Train"
        done = wait_job(small_limit_daemon.stub, job.id)
        assert done.state == pb.JOB_STATE_FAILED
        assert done.error == (
            f"ResourceExhausted: dataset.path 'rows.csv.gz' holds more than {64 * MiB} bytes "
            f"uncompressed, over max_dataset_bytes={64 * MiB}")

    def test_a_task_the_whole_column_contradicts_fails_the_job_by_name(
            self, daemon: LiveDaemon) -> None:
        """The first SAMPLE_BYTES say classification (integers 0/1), later rows are
        fractions: the worker, which reads it all, fails the job and asks for `task`."""
        path = daemon.data_root / "late.csv.gz"
        write_gzip(path, b"a,b\n", b"1,0\n2,1\n", SAMPLE_BYTES + MiB,
                   tail=b"".join(b"%d,%d.5\n" % (i, i) for i in range(40)))
        job = daemon.stub.Train(pb.TrainRequest(
            model="late", algorithm="random_forest",
            dataset=pb.Dataset(path="late.csv.gz", target="b")), timeout=120)
        assert job.request.task == pb.TASK_CLASSIFICATION
        done = wait_job(daemon.stub, job.id)
        assert done.state == pb.JOB_STATE_FAILED
        assert done.error == (
            f"InvalidArgument: dataset.target 'b': Train inferred classification from the "
            f"first {SAMPLE_BYTES} bytes of 'late.csv.gz', but the whole column is "
            "regression: set task in the request")


class TestNotARegularFile:
    """A dataset.path naming a FIFO, socket, device or directory is INVALID_ARGUMENT
    "not a regular file" naming the path (once NOT_FOUND: is_file() said no)."""

    def refusal(self, daemon: LiveDaemon, name: str) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as err:
            daemon.stub.Train(pb.TrainRequest(model="m", algorithm="xgboost",
                                              dataset=pb.Dataset(path=name, target="y")),
                              timeout=60)
        return err.value.code(), err.value.details()

    def test_a_fifo(self, daemon: LiveDaemon) -> None:
        os.mkfifo(daemon.data_root / "pipe.csv")
        assert self.refusal(daemon, "pipe.csv") == (
            CODE.INVALID_ARGUMENT, "dataset.path 'pipe.csv' is not a regular file (it is a FIFO)")

    def test_a_socket(self, daemon: LiveDaemon) -> None:
        with socket.socket(socket.AF_UNIX) as bound:
            bound.bind(str(daemon.data_root / "s.csv"))
            assert self.refusal(daemon, "s.csv") == (
                CODE.INVALID_ARGUMENT,
                "dataset.path 's.csv' is not a regular file (it is a socket)")

    def test_a_device(self, daemon: LiveDaemon) -> None:
        """A device node made under the data root (a symlink to /dev/null leaves the root:
        PERMISSION_DENIED, see test_a_symlink_out_of_the_data_root_is_refused)."""
        try:
            os.mknod(daemon.data_root / "null.csv", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("mknod needs CAP_MKNOD")
        assert self.refusal(daemon, "null.csv") == (
            CODE.INVALID_ARGUMENT,
            "dataset.path 'null.csv' is not a regular file (it is a character device)")

    def test_an_empty_directory(self, daemon: LiveDaemon) -> None:
        """A folder is a dataset of Parquet files (hive-style subfolders allowed)."""
        (daemon.data_root / "folder.csv").mkdir()
        assert self.refusal(daemon, "folder.csv") == (
            CODE.INVALID_ARGUMENT, "dataset.path 'folder.csv' is a folder without Parquet files")


class TestUndecodableRequest:
    """Bytes that are not the request message are INVALID_ARGUMENT naming the message
    (once INTERNAL "Exception deserializing request!" from grpcio)."""

    GARBAGE = b"\xff\xff\xff\xff garbage"

    @pytest.mark.parametrize(("method", "message"), [
        ("Train", "TrainRequest"), ("Predict", "PredictRequest"),
        ("GetStatus", "GetStatusRequest"), ("Rollback", "RollbackRequest")])
    def test_a_unary_call(self, daemon: LiveDaemon, method: str, message: str) -> None:
        call = daemon.channel.unary_unary(f"/modeld.v1.ModelManager/{method}",
                                          request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as err:
            call(self.GARBAGE, timeout=30)
        assert err.value.code() == CODE.INVALID_ARGUMENT
        assert err.value.details().startswith(
            f"the request is not a valid modeld.v1.{message} message (")

    def test_a_streaming_call(self, daemon: LiveDaemon) -> None:
        call = daemon.channel.unary_stream("/modeld.v1.ModelManager/WatchJob",
                                           request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as err:
            list(call(self.GARBAGE, timeout=30))
        assert err.value.code() == CODE.INVALID_ARGUMENT
        assert err.value.details().startswith(
            "the request is not a valid modeld.v1.WatchJobRequest message (")


def lifecycle_calls(model: str) -> dict[str, Callable[[pb_grpc.ModelManagerStub], object]]:
    """Each RPC that writes the registry, aimed at version 2 (published, not active)."""
    train = pb.TrainRequest(model=model, algorithm="logistic_regression",
                            dataset=pb.Dataset(path="iris.csv", target="species"))
    return {
        "Rollback": lambda s: s.Rollback(pb.RollbackRequest(model=model, to_version=2),
                                         timeout=60),
        "Promote": lambda s: s.Promote(pb.PromoteRequest(model=model, version=2,
                                                         reason="by hand"), timeout=60),
        "SetAlias": lambda s: s.SetAlias(pb.SetAliasRequest(model=model, alias="champion",
                                                            version=2), timeout=60),
        "SetPolicy": lambda s: s.SetPolicy(pb.SetPolicyRequest(policy=pb.Policy(
            model=model, primary_metric="accuracy")), timeout=60),
        "SetSchedule": lambda s: s.SetSchedule(pb.SetScheduleRequest(schedule=pb.Schedule(
            model=model, interval_seconds=3600, train=train)), timeout=60),
    }


def two_versions(daemon: LiveDaemon, model: str = "iris") -> None:
    """Version 1 active, version 2 published inactive."""
    for activate in (True, False):
        job = daemon.train(model, path="iris.csv", target="species",
                           algorithm="logistic_regression", cv_folds=2, no_activate=not activate)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error


def refusal(call: Callable[[pb_grpc.ModelManagerStub], object],
            stub: pb_grpc.ModelManagerStub) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call(stub)
    return err.value.code(), err.value.details()


@pytest.fixture
def read_only_registry(daemon: LiveDaemon) -> Iterator[LiveDaemon]:
    """The daemon's registry, with two versions of 'iris', bind-mounted read-only on itself."""
    two_versions(daemon)
    with read_only(daemon.registry):
        yield daemon


@pytest.fixture
def full_registry(tmp_path: Path, datasets: Path) -> Iterator[LiveDaemon]:
    """A daemon whose registry is a 4 MiB tmpfs holding two versions of 'iris', then filled."""
    with tmpfs(tmp_path / "registry", "4m") as registry:
        shutil.copytree(datasets, tmp_path / "data")
        live = start_daemon(tmp_path)
        try:
            two_versions(live)
            fill(registry)
            yield live
        finally:
            live.stop()


class TestStorageFaults:
    """A read-only or full registry answers each lifecycle RPC with one mapping of errno
    (errors.from_os_error): EROFS/EACCES/EPERM -> FAILED_PRECONDITION, ENOSPC/EDQUOT ->
    RESOURCE_EXHAUSTED, naming the path; once INTERNAL "internal error"."""

    @pytest.mark.parametrize("rpc", list(lifecycle_calls("iris")))
    def test_a_read_only_registry(self, read_only_registry: LiveDaemon, rpc: str) -> None:
        code, details = refusal(lifecycle_calls("iris")[rpc], read_only_registry.stub)
        assert code == CODE.FAILED_PRECONDITION
        prefix = f"read-only file system: cannot write '{read_only_registry.registry}/iris/"
        assert details.startswith(prefix), details

    @pytest.mark.parametrize("rpc", list(lifecycle_calls("iris")))
    def test_a_full_registry(self, full_registry: LiveDaemon, rpc: str) -> None:
        code, details = refusal(lifecycle_calls("iris")[rpc], full_registry.stub)
        assert code == CODE.RESOURCE_EXHAUSTED
        prefix = f"no space left on device writing '{full_registry.registry}/iris/"
        assert details.startswith(prefix), details


class TestJobErrorPrefix:
    """Every failed job's error reads 'Kind: message' (once the runner wrote 'internal
    error: ...' and the worker 'Internal: ...'), and a disk fault names its errno's kind."""

    def test_a_job_on_a_read_only_registry(self, read_only_registry: LiveDaemon) -> None:
        job = read_only_registry.train("iris", path="iris.csv", target="species",
                                       algorithm="logistic_regression", cv_folds=2)
        assert job.state == pb.JOB_STATE_FAILED
        assert job.error.startswith(
            f"FailedPrecondition: read-only file system: cannot write "
            f"'{read_only_registry.registry}/iris/"), job.error


class TestTrainChecks:
    """Hyperparameters and column selections Train can check, it checks: INVALID_ARGUMENT
    naming field and value, instead of a job that fails later (or, for class_weight keyed
    by label, always failed: the job trains on class indices)."""

    def train(self, daemon: LiveDaemon, **fields: object) -> pb.Job:
        values: dict[str, object] = {
            "model": "iris", "algorithm": "random_forest", "cv_folds": 2,
            "dataset": pb.Dataset(path="iris.csv", target="species")}
        values.update(fields)
        return daemon.stub.Train(pb.TrainRequest(**values), timeout=60)  # type: ignore[arg-type]

    @pytest.mark.parametrize(("weights", "details"), [
        ('{"x": 1}', "params: class_weight names 'x', which is not a class of the target "
                     "(classes: setosa, versicolor, virginica)"),
        ('{"setosa": "heavy"}', "params: class_weight['setosa'] must be a number >= 0, got "
                                "'heavy'"),
        ('{"setosa": -1}', "params: class_weight['setosa'] must be a number >= 0, got -1"),
        ("[1, 2]", 'params: class_weight [1, 2] is a list, which only multi-output targets '
                   'take: give an object of class -> weight, "balanced" or null'),
    ])
    def test_a_bad_class_weight(self, daemon: LiveDaemon, weights: str, details: str) -> None:
        with pytest.raises(grpc.RpcError) as err:
            self.train(daemon, params={"class_weight": weights})
        assert (err.value.code(), err.value.details()) == (CODE.INVALID_ARGUMENT, details)

    def test_a_class_weight_keyed_by_label_trains(self, daemon: LiveDaemon) -> None:
        """Once FAILED in the job: 'The classes, [...], are not in class'."""
        job = self.train(daemon, params={"class_weight": '{"setosa": 5, "virginica": 0.5}'})
        done = wait_job(daemon.stub, job.id)
        assert done.state == pb.JOB_STATE_SUCCEEDED, done.error

    def test_drop_columns_leaving_no_feature(self, daemon: LiveDaemon) -> None:
        drop = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)",
                "petal width (cm)"]
        with pytest.raises(grpc.RpcError) as err:
            self.train(daemon, dataset=pb.Dataset(path="iris.csv", target="species",
                                                  drop_columns=drop))
        assert err.value.code() == CODE.INVALID_ARGUMENT
        assert err.value.details() == (
            f"dataset.drop_columns {str(drop)[:80]}... leaves no feature column of 'iris.csv' "
            "to train on")


class _TrainFault(grpc.ServerInterceptor):
    """Wraps the real Train handler: `slow` holds each call until its deadline has passed
    (a validation that outlasts the client); `lose_first` runs the first call, then
    answers UNAVAILABLE as a dropped connection would, the job queued all the same."""

    def __init__(self, *, slow: bool = False, lose_first: bool = False) -> None:
        self.slow, self.lose_first = slow, lose_first
        self.calls = 0
        self.done = threading.Event()

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or not details.method.endswith("/Train"):
            return handler
        real = handler.unary_unary

        def train(request: Any, context: grpc.ServicerContext) -> Any:
            self.calls += 1
            try:
                if self.slow:
                    deadline = time.monotonic() + 60
                    while context.time_remaining() > 0 and time.monotonic() < deadline:
                        time.sleep(0.01)
                reply = real(request, context)
                if self.lose_first and self.calls == 1:
                    context.abort(CODE.UNAVAILABLE, "connection lost (injected)")
                return reply
            finally:
                self.done.set()

        return grpc.unary_unary_rpc_method_handler(
            train, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


@contextlib.contextmanager
def faulty_daemon(base: Path, datasets: Path, fault: _TrainFault) -> Iterator[str]:
    """A ModelManager built with the public builders behind `fault`; yields its address."""
    import shutil
    from concurrent import futures

    from modeld_server.compose import build_service
    from modeld_server.config import Settings
    from modeld_server.rpc.server import add_model_manager
    from modeld_server.rpc.servicer import ModelManagerServicer

    shutil.copytree(datasets, base / "data")
    service = build_service(Settings(registry=base / "registry", data_root=base / "data",
                                    state_dir=base / "state"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=[fault])
    add_model_manager(ModelManagerServicer(service), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)
        service.close()


class TestTrainDeadline:
    """A Train whose deadline passes while it validates queues nothing; one whose answer
    is lost is retried by the client with the same request_id and queues one job."""

    def test_a_train_that_outlives_its_deadline_queues_no_job(
            self, tmp_path: Path, datasets: Path) -> None:
        """Once the job was queued though the client had gone with DEADLINE_EXCEEDED."""
        fault = _TrainFault(slow=True)
        with faulty_daemon(tmp_path, datasets, fault) as address, \
                grpc.insecure_channel(address) as channel:
            stub = pb_grpc.ModelManagerStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.Train(pb.TrainRequest(model="iris", algorithm="logistic_regression",
                                           dataset=pb.Dataset(path="iris.csv",
                                                              target="species")),
                           timeout=0.5)
            assert err.value.code() == CODE.DEADLINE_EXCEEDED
            assert fault.done.wait(60), "the handler never ended"
            assert list(stub.ListJobs(pb.ListJobsRequest(), timeout=30).jobs) == []

    def test_the_client_retries_a_lost_answer_into_the_same_job(
            self, tmp_path: Path, datasets: Path) -> None:
        from modeld import Client, RetryPolicy

        fault = _TrainFault(lose_first=True)
        with faulty_daemon(tmp_path, datasets, fault) as address, \
                Client(address, retry=RetryPolicy(initial=0.01, maximum=0.05)) as client:
            handle = client.train("iris", "iris.csv", "species",
                                  algorithm="logistic_regression", folds=2)
            jobs = client.stub.ListJobs(pb.ListJobsRequest(), timeout=30).jobs
            assert fault.calls == 2
            assert [job.id for job in jobs] == [handle.id]

    def test_the_client_names_the_request_id_when_its_deadline_passes(
            self, tmp_path: Path, datasets: Path) -> None:
        from modeld import Client, DeadlineExceeded

        with faulty_daemon(tmp_path, datasets, _TrainFault(slow=True)) as address, \
                Client(address) as client:
            with pytest.raises(DeadlineExceeded) as err:
                client.train("iris", "iris.csv", "species", algorithm="logistic_regression",
                             request_id="nightly-7", timeout=0.5)
            assert err.value.message.endswith(
                "(a job may have been queued all the same: Train again with "
                "request_id='nightly-7' returns it, or queues it once)")


class TestValueWithNoKind:
    """Predict over the wire: a records Value with no kind set is INVALID_ARGUMENT naming
    row and column, never INTERNAL (the daemon parses records as bytes, PredictRequestWire)."""

    def test_predict_names_the_row_and_column(self, daemon: LiveDaemon) -> None:
        job = daemon.train("iris", path="iris.csv", target="species",
                           algorithm="logistic_regression", cv_folds=2)
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.error
        row = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
               "petal width (cm)": 0.2}
        for empty_row in (0, 2):  # alone in its shape, and after rows of the fast path
            request = pb.PredictRequest(model="iris")
            for i in range(3):
                struct = request.records.rows.add()
                struct.update(row)
                if i == empty_row:
                    struct.fields["petal width (cm)"].Clear()
            with pytest.raises(grpc.RpcError) as err:
                daemon.stub.Predict(request, timeout=60)
            assert (err.value.code(), err.value.details()) == (
                CODE.INVALID_ARGUMENT, f"rows[{empty_row}].petal width (cm) is a Value with no "
                "kind set: send null_value for a missing value")
