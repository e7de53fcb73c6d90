"""The Open Inference Protocol (KServe V2) over gRPC, as `inference.GRPCInferenceService`.

The messages are modeld.oip.v2's, which carry Triton's field numbers under a private
proto package (see proto/modeld/oip/v2/inference.proto), so they are registered here by
hand under the standard service name; methods not listed answer UNIMPLEMENTED. Every
method wears @rpc: the same error table, metrics and log line as modeld.v1.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from modeld.oip.v2 import inference_pb2 as pb
from modeld_server.oip.core import OpenInference
from modeld_server.rpc import oip_tensors
from modeld_server.rpc.status import rpc

SERVICE_NAME = "inference.GRPCInferenceService"
METHODS: dict[str, tuple[Any, Any]] = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
    "RepositoryIndex": (pb.RepositoryIndexRequest, pb.RepositoryIndexResponse),
    "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, pb.RepositoryModelLoadResponse),
    "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest,
                              pb.RepositoryModelUnloadResponse),
}
Ctx: TypeAlias = grpc.ServicerContext


class OipServicer:
    """The thin edge: decode, one call into OpenInference, encode."""

    def __init__(self, core: OpenInference) -> None:
        self._core = core

    @rpc
    def ServerLive(self, request: pb.ServerLiveRequest, context: Ctx) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @rpc
    def ServerReady(self, request: pb.ServerReadyRequest,
                    context: Ctx) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._core.serving)

    @rpc
    def ModelReady(self, request: pb.ModelReadyRequest, context: Ctx) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._core.model_ready(request.name, request.version))

    @rpc
    def ServerMetadata(self, request: pb.ServerMetadataRequest,
                       context: Ctx) -> pb.ServerMetadataResponse:
        name, version, extensions = self._core.server_metadata()
        return pb.ServerMetadataResponse(name=name, version=version, extensions=extensions)

    @rpc
    def ModelMetadata(self, request: pb.ModelMetadataRequest,
                      context: Ctx) -> pb.ModelMetadataResponse:
        meta = self._core.model_metadata(request.name, request.version)
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name, versions=meta.versions, platform=meta.platform,
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape)
                     for t in meta.outputs])

    @rpc
    def ModelInfer(self, request: pb.ModelInferRequest, context: Ctx) -> pb.ModelInferResponse:
        answer = self._core.infer(
            request.model_name, request.model_version, oip_tensors.inputs_from_pb(request),
            oip_tensors.content_type(request.parameters) == "pd",
            [o.name for o in request.outputs])
        return oip_tensors.answer_to_pb(answer, request.id, bool(request.raw_input_contents))

    @rpc
    def RepositoryIndex(self, request: pb.RepositoryIndexRequest,
                        context: Ctx) -> pb.RepositoryIndexResponse:
        entry = pb.RepositoryIndexResponse.ModelIndex
        return pb.RepositoryIndexResponse(models=[
            entry(name=e.name, version=e.version, state=e.state, reason=e.reason)
            for e in self._core.index(request.ready)])

    @rpc
    def RepositoryModelLoad(self, request: pb.RepositoryModelLoadRequest,
                            context: Ctx) -> pb.RepositoryModelLoadResponse:
        parameters = {key: getattr(value, value.WhichOneof("parameter_choice") or "string_param")
                      for key, value in request.parameters.items()}
        self._core.load(request.model_name, parameters)
        return pb.RepositoryModelLoadResponse()

    @rpc
    def RepositoryModelUnload(self, request: pb.RepositoryModelUnloadRequest,
                              context: Ctx) -> pb.RepositoryModelUnloadResponse:
        self._core.unload(request.model_name)


def oip_handlers(servicer: OipServicer) -> dict[str, grpc.RpcMethodHandler]:
    """One unary handler per method, with modeld.oip.v2's (de)serializers."""
    return {name: grpc.unary_unary_rpc_method_handler(
                getattr(servicer, name), request_deserializer=request.FromString,
                response_serializer=response.SerializeToString)
            for name, (request, response) in METHODS.items()}


def add_oip(servicer: OipServicer, server: grpc.Server) -> None:
    handlers = oip_handlers(servicer)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
