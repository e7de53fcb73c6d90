"""The rpc edge: every method is wrapped, every domain error has a precise code."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server import errors
from modeld_server.rpc.servicer import ModelManagerServicer
from modeld_server.rpc.status import MAX_DETAILS_BYTES, WRAPPED_ATTR, fit_details, status_for


def test_every_rpc_in_the_contract_is_implemented_and_wrapped() -> None:
    """A method missing the wrapper could leak UNKNOWN; this catches it."""
    rpcs = pb.DESCRIPTOR.services_by_name["ModelManager"].methods_by_name
    for name in rpcs:
        method = getattr(ModelManagerServicer, name)
        assert getattr(method, WRAPPED_ATTR, False), f"{name} is not wrapped with @rpc"


@pytest.mark.parametrize(("exc", "code"), [
    (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.IntegrityError("x"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PermissionDenied("x"), grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
    (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
])
def test_domain_errors_map_by_mro(exc: errors.ModeldError, code: grpc.StatusCode) -> None:
    assert status_for(exc) == code


def test_every_domain_error_class_has_a_code_other_than_internal() -> None:
    for cls in errors.ModeldError.__subclasses__():
        assert status_for(cls("x")) != grpc.StatusCode.INTERNAL, cls.__name__


class _Context:
    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise RuntimeError("aborted")


class _Broken:
    def list_versions(self, *args: object) -> object:
        raise KeyError("secret internals")


def test_an_unexpected_exception_is_internal_with_a_generic_message() -> None:
    servicer = ModelManagerServicer(_Broken())  # type: ignore[arg-type]
    context = _Context()
    with pytest.raises(RuntimeError):
        servicer.ListVersions(pb.ListVersionsRequest(model="m"), context)  # type: ignore[arg-type]
    assert context.aborted == (grpc.StatusCode.INTERNAL,
                               "internal error; the daemon log has the details")


class _Jobs:
    def get_job(self, job_id: str) -> object:
        raise errors.NotFound(f"job {job_id} not found")  # quoting it whole, as a bug would


def _wire_size(details: str) -> int:
    """Bytes of grpc-message: printable ASCII as is, every other byte percent-encoded."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in details.encode())


class TestDetailsCap:
    """Whatever a domain error quotes, a default client (8 KiB of metadata) gets its code."""

    def test_a_domain_error_with_a_huge_message_keeps_its_code(self) -> None:
        servicer = ModelManagerServicer(_Jobs())  # type: ignore[arg-type]
        context = _Context()
        with pytest.raises(RuntimeError):
            servicer.GetJob(pb.GetJobRequest(job_id="j" * 20_000), context)  # type: ignore[arg-type]
        assert context.aborted is not None
        code, details = context.aborted
        assert code == grpc.StatusCode.NOT_FOUND
        assert details == "job " + "j" * (MAX_DETAILS_BYTES - 22) + " ... (message cut)"
        assert _wire_size(details) == MAX_DETAILS_BYTES

    def test_a_message_within_the_limit_is_untouched(self) -> None:
        fits = "x" * MAX_DETAILS_BYTES
        assert fit_details(fits) == fits
        assert fit_details("é" * 100) == "é" * 100

    def test_percent_encoded_bytes_count_three_times(self) -> None:
        """Non-ASCII and '%' cost 3 wire bytes per UTF-8 byte; the cut never splits one."""
        for char in ("é", "模", "🙂", "%", "\x00"):
            details = fit_details(char * 5000)
            assert details.endswith(" ... (message cut)")
            assert MAX_DETAILS_BYTES - 12 < _wire_size(details) <= MAX_DETAILS_BYTES, char


class TestCanonicalLogLine:
    def test_one_line_per_rpc_with_method_code_duration_and_the_model(self) -> None:
        import structlog

        servicer = ModelManagerServicer(_Jobs())  # type: ignore[arg-type]
        merge = [structlog.contextvars.merge_contextvars]
        with structlog.testing.capture_logs(processors=merge) as logs, \
                pytest.raises(RuntimeError):
            servicer.GetJob(pb.GetJobRequest(job_id="j1"), _Context())  # type: ignore[arg-type]
        [line] = logs
        assert (line["event"], line["method"], line["code"], line["job_id"]) == (
            "rpc", "GetJob", "NOT_FOUND", "j1")
        assert line["duration_ms"] >= 0

    def test_the_request_ids_do_not_outlive_the_call(self) -> None:
        """Pool threads are reused: a later line must not carry an earlier call's model."""
        import structlog

        structlog.contextvars.bind_contextvars(model="outer")
        try:
            servicer = ModelManagerServicer(_Broken())  # type: ignore[arg-type]
            with pytest.raises(RuntimeError):
                servicer.ListVersions(pb.ListVersionsRequest(model="m"),  # type: ignore[arg-type]
                                      _Context())
            assert structlog.contextvars.get_contextvars() == {"model": "outer"}
        finally:
            structlog.contextvars.clear_contextvars()


class _CallbackContext(_Context):
    """A context that keeps its callbacks, as grpc's does until the RPC ends."""

    def __init__(self, accepts: bool = True) -> None:
        super().__init__()
        self.accepts = accepts
        self.callbacks: list[Any] = []

    def add_callback(self, callback: Any) -> bool:
        if self.accepts:
            self.callbacks.append(callback)
        return self.accepts


class TestLineAfterTheResponse:
    """A unary call's line is written by grpc's end-of-RPC callback, off the caller's
    latency; the metrics are counted before the response leaves."""

    def _count(self, method: str, code: str) -> float:
        from modeld_server.telemetry import RPC_REQUESTS

        return RPC_REQUESTS.labels(method, code)._value.get()  # type: ignore[no-any-return]

    def test_counted_now_written_by_the_callback_with_the_request_ids(self) -> None:
        import structlog

        servicer = ModelManagerServicer(_Jobs())  # type: ignore[arg-type]
        context = _CallbackContext()
        before = self._count("GetJob", "NOT_FOUND")
        merge = [structlog.contextvars.merge_contextvars]
        with structlog.testing.capture_logs(processors=merge) as logs:
            with pytest.raises(RuntimeError):
                servicer.GetJob(pb.GetJobRequest(job_id="j7"), context)  # type: ignore[arg-type]
            assert logs == [] and len(context.callbacks) == 1
            assert self._count("GetJob", "NOT_FOUND") == before + 1
            assert structlog.contextvars.get_contextvars() == {}
            # grpc runs it on its polling thread, where none of the call's ids are bound.
            done = threading.Thread(target=context.callbacks[0])
            done.start()
            done.join()
        [line] = logs
        assert (line["event"], line["method"], line["code"], line["job_id"]) == (
            "rpc", "GetJob", "NOT_FOUND", "j7")

    def test_written_at_once_when_the_rpc_has_ended(self) -> None:
        import structlog

        servicer = ModelManagerServicer(_Jobs())  # type: ignore[arg-type]
        context = _CallbackContext(accepts=False)
        with structlog.testing.capture_logs() as logs, pytest.raises(RuntimeError):
            servicer.GetJob(pb.GetJobRequest(job_id="j8"), context)  # type: ignore[arg-type]
        assert [line["method"] for line in logs] == ["GetJob"]
