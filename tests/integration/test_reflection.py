"""Server reflection answers under grpc.reflection.v1 (what grpcurl asks first) and v1alpha."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as rpb

from tests.conftest import LiveDaemon

SERVICES = ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection", "modeld.v1.ModelManager"]


def ask(daemon: LiveDaemon, version: str,
        *requests: rpb.ServerReflectionRequest) -> list[rpb.ServerReflectionResponse]:
    """v1 and v1alpha share their messages field for field, so one set serves both."""
    call = daemon.channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString)
    return list(call(iter(requests), timeout=30))


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_both_versions_list_the_services_and_describe_model_manager(
        daemon: LiveDaemon, version: str) -> None:
    listed, described = ask(daemon, version, rpb.ServerReflectionRequest(list_services=""),
                            rpb.ServerReflectionRequest(
                                file_containing_symbol="modeld.v1.ModelManager"))
    assert sorted(s.name for s in listed.list_services_response.service) == SERVICES
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in described.file_descriptor_response.file_descriptor_proto]
    assert files[0].name == "modeld/v1/model_manager.proto"
    assert "Predict" in [m.name for m in files[0].service[0].method]


def test_v1_describes_itself_under_its_own_package(daemon: LiveDaemon) -> None:
    (answer,) = ask(daemon, "v1", rpb.ServerReflectionRequest(
        file_containing_symbol="grpc.reflection.v1.ServerReflection"))
    (raw,) = answer.file_descriptor_response.file_descriptor_proto
    proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
    assert (proto.name, proto.package) == ("grpc/reflection/v1/reflection.proto",
                                           "grpc.reflection.v1")
    method = proto.service[0].method[0]
    assert (method.input_type, method.output_type) == (
        ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse")


def test_an_unknown_symbol_is_not_found_in_the_answer(daemon: LiveDaemon) -> None:
    (answer,) = ask(daemon, "v1", rpb.ServerReflectionRequest(file_containing_symbol="nope.X"))
    assert answer.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
