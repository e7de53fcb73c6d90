"""The rpc edge: every method is wrapped, every domain error has a precise code."""

from __future__ import annotations

import grpc
import pytest

from modeld.v1 import model_manager_pb2 as pb
from modeld_server import errors
from modeld_server.rpc.servicer import ModelManagerServicer
from modeld_server.rpc.status import WRAPPED_ATTR, status_for


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
