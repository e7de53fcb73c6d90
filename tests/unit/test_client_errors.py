"""modeld.errors: each status code becomes its own exception, raised from the RpcError."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc
import pytest

import modeld
from modeld import errors
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Fail, Running, running_fake

CODE_TO_CLASS = [
    (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
    (grpc.StatusCode.NOT_FOUND, errors.NotFound),
    (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
    (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
    (grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
    (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
    (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
    (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
    (grpc.StatusCode.CANCELLED, errors.Cancelled),
    (grpc.StatusCode.UNIMPLEMENTED, errors.Unimplemented),
    (grpc.StatusCode.INTERNAL, errors.Internal),
]
UNMAPPED = [grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED, grpc.StatusCode.OUT_OF_RANGE,
            grpc.StatusCode.DATA_LOSS]


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    """What a stub raises: an RpcError that is also a Call with code() and details()."""

    def __init__(self, code: grpc.StatusCode, details: str | None) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


class TestFromRpcError:
    @pytest.mark.parametrize(("code", "cls"), CODE_TO_CLASS, ids=lambda v: getattr(v, "name", ""))
    def test_each_code_has_its_class(self, code: grpc.StatusCode, cls: type) -> None:
        """Every code the daemon returns maps to exactly its class, with code and message."""
        exc = errors.from_rpc_error(FakeRpcError(code, "the daemon's words"))
        assert type(exc) is cls
        assert exc.code == code
        assert exc.message == "the daemon's words"

    @pytest.mark.parametrize("code", UNMAPPED, ids=lambda c: c.name)
    def test_other_codes_are_unknown_error_keeping_the_code(self, code: grpc.StatusCode) -> None:
        """Codes without a class become UnknownError, still carrying the real code."""
        exc = errors.from_rpc_error(FakeRpcError(code, "odd"))
        assert type(exc) is errors.UnknownError
        assert exc.code == code

    def test_str_is_code_name_then_message(self) -> None:
        """str() reads like the CLI prints it: CODE: message."""
        exc = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, "model 'x' not found"))
        assert str(exc) == "NOT_FOUND: model 'x' not found"

    def test_empty_details_fall_back_to_the_code_name(self) -> None:
        """A call that failed without details still says something."""
        exc = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.CANCELLED, None))
        assert exc.message == "CANCELLED"

    def test_a_bare_rpc_error_is_unknown(self) -> None:
        """An RpcError that is not a Call (no code()) maps to UnknownError/UNKNOWN."""
        exc = errors.from_rpc_error(grpc.RpcError())
        assert type(exc) is errors.UnknownError
        assert exc.code == grpc.StatusCode.UNKNOWN


class TestTree:
    def test_every_class_is_a_modeld_error(self) -> None:
        """`except ModeldError` catches every failure the client raises."""
        for _, cls in CODE_TO_CLASS:
            assert issubclass(cls, errors.ModeldError)
        assert issubclass(errors.UnknownError, errors.ModeldError)

    def test_model_not_found_is_not_found(self) -> None:
        """The spec's name ModelNotFound is the NotFound class itself."""
        assert errors.ModelNotFound is errors.NotFound
        assert modeld.ModelNotFound is modeld.NotFound

    def test_connection_failed_is_unavailable(self) -> None:
        """Code that retries on Unavailable also catches connection failures."""
        assert issubclass(errors.ConnectionFailed, errors.Unavailable)

    def test_the_tree_is_drawn_in_the_docstring(self) -> None:
        """Every public exception class appears in the module docstring's tree."""
        doc = errors.__doc__ or ""
        for name in errors.__all__:
            if name != "from_rpc_error":
                assert name in doc, name


class TestRaisedByTheClient:
    def test_server_error_is_raised_from_the_rpc_error(self, live: Running) -> None:
        """The typed exception chains the original RpcError as __cause__."""
        live.fake.on("GetVersion", Fail(grpc.StatusCode.NOT_FOUND, "model 'ghost' not found"))
        with modeld.Client(live.address) as client, pytest.raises(errors.NotFound) as caught:
            client.get_version("ghost")
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        assert caught.value.message == "model 'ghost' not found"
        cause = caught.value.__cause__
        assert isinstance(cause, grpc.RpcError)
        assert cause.code() == grpc.StatusCode.NOT_FOUND

    def test_unavailable_from_a_connected_daemon_is_not_a_connection_failure(
            self, live: Running) -> None:
        """A model still loading is the daemon answering UNAVAILABLE, not a lost connection."""
        live.fake.on("GetStatus", pb.GetStatusResponse())
        live.fake.on("Predict", Fail(grpc.StatusCode.UNAVAILABLE, "model 'spam' is loading"))
        with modeld.Client(live.address) as client:
            client.status()  # connect first
            with pytest.raises(errors.Unavailable) as caught:
                client.predict("spam", [{"a": 1.0}])
        assert type(caught.value) is errors.Unavailable
        assert caught.value.message == "model 'spam' is loading"

    def test_unreachable_daemon_is_connection_failed_naming_the_address(self) -> None:
        """A refused connection raises ConnectionFailed whose message names the address."""
        # A bound socket that never listens: connecting to it is refused, and no one else
        # can take the port while the test runs.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{sock.getsockname()[1]}"
            with modeld.Client(address, retry=None) as client, \
                    pytest.raises(errors.ConnectionFailed) as caught:
                client.status(timeout=2)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert caught.value.message.startswith(f"cannot connect to {address}: ")

    def test_connect_times_out_with_connection_failed(self) -> None:
        """connect() waits for the channel and gives up with DEADLINE_EXCEEDED."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{sock.getsockname()[1]}"
            with modeld.Client(address) as client, \
                    pytest.raises(errors.ConnectionFailed) as caught:
                client.connect(timeout=0.2)
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert caught.value.message == f"cannot connect to {address} within 0.2 s"
