"""V2's wire contract: Triton's field numbers under modeld.oip.v2, beside tritonclient."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from tritonclient.grpc import service_pb2 as triton_pb

from modeld.oip.v2 import inference_pb2 as pb
from modeld_server.rpc.oip import METHODS, OipServicer
from modeld_server.rpc.status import WRAPPED_ATTR


def _messages(container: Any) -> Iterator[Any]:
    for message in getattr(container, "message_types_by_name", {}).values() or \
            container.nested_types:
        yield message
        yield from _messages(message)


def _fields(message: Any) -> list[tuple[object, ...]]:
    return sorted((f.name, f.number, f.type, f.is_repeated,
                   f.message_type.name if f.message_type else None) for f in message.fields)


def test_every_message_has_tritons_fields_and_numbers() -> None:
    """Field names, numbers, types and labels of each message equal Triton's."""
    ours = list(_messages(pb.DESCRIPTOR))
    assert len(ours) == 33
    for message in ours:
        name = "inference." + message.full_name.removeprefix("modeld.oip.v2.")
        theirs = triton_pb.DESCRIPTOR.pool.FindMessageTypeByName(name)
        assert _fields(message) == _fields(theirs), name


def test_every_method_uses_tritons_request_and_response() -> None:
    service = triton_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for name, (request, response) in METHODS.items():
        method = service.methods_by_name[name]
        assert (request.DESCRIPTOR.name, response.DESCRIPTOR.name) == (
            method.input_type.name, method.output_type.name)


def test_every_method_is_wrapped() -> None:
    """A method missing @rpc could leak UNKNOWN; this catches it."""
    for name in METHODS:
        assert getattr(getattr(OipServicer, name), WRAPPED_ATTR, False), name


@pytest.mark.parametrize("imports", [
    "import modeld, modeld.oip.v2.inference_pb2, modeld.v1.model_manager_pb2, "
    "modeld_server.rpc.oip; import tritonclient.grpc, tritonclient.http",
    "import tritonclient.grpc, tritonclient.grpc.aio, tritonclient.http; "
    "import modeld, modeld.oip.v2.inference_pb2, modeld_server.rpc.oip",
])
def test_modeld_and_tritonclient_import_in_one_process(imports: str) -> None:
    """No 'duplicate symbol inference.*': our messages are not in package inference."""
    done = subprocess.run([sys.executable, "-W", "error", "-c", imports + "; print('ok')"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
