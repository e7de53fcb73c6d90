"""The ModelManager handlers are registered from the contract's descriptor."""

from __future__ import annotations

import grpc

from modeld.v1 import model_manager_pb2 as pb
from modeld_server.rpc.server import model_manager_handlers
from modeld_server.rpc.servicer import ModelManagerServicer
from modeld_server.rpc.status import Undecodable
from modeld_server.rpc.struct_rows import PredictRequestWire


def handlers() -> dict[str, grpc.RpcMethodHandler]:
    return model_manager_handlers(ModelManagerServicer(object()))  # type: ignore[arg-type]


def test_every_rpc_has_a_handler_of_its_kind_with_its_messages() -> None:
    service = pb.DESCRIPTOR.services_by_name["ModelManager"]
    registered = handlers()
    assert set(registered) == {m.name for m in service.methods}
    for method in service.methods:
        handler = registered[method.name]
        assert (handler.unary_stream is not None) == method.server_streaming, method.name
        assert handler.response_serializer == getattr(pb, method.output_type.name).SerializeToString
        if method.name != "Predict":
            request = getattr(pb, method.input_type.name)
            parsed = handler.request_deserializer(request().SerializeToString())
            assert type(parsed) is request, method.name


def test_bytes_that_are_not_the_request_decode_to_undecodable_not_an_exception() -> None:
    """grpcio answers a deserializer that raises with INTERNAL; Undecodable lets rpc()
    answer INVALID_ARGUMENT instead."""
    for name, handler in handlers().items():
        parsed = handler.request_deserializer(b"\xff\xff\xff\xff")
        assert isinstance(parsed, Undecodable), name
        assert parsed.message.startswith("modeld.v1.") and parsed.message.endswith("Request")


def test_predict_keeps_the_rows_as_bytes_and_everything_else_as_sent() -> None:
    request = pb.PredictRequest(model="m", version=3, alias="a")
    request.records.rows.add().update({"x": 1.5})
    parsed = handlers()["Predict"].request_deserializer(request.SerializeToString())
    assert isinstance(parsed, PredictRequestWire)
    assert (parsed.model, parsed.version, parsed.alias) == ("m", 3, "a")
    assert parsed.records == request.records.SerializeToString()
    dense = pb.PredictRequest(model="m", dense=pb.DenseRows(columns=["x"], values=[1.0, 2.0]))
    parsed = handlers()["Predict"].request_deserializer(dense.SerializeToString())
    assert parsed.WhichOneof("rows") == "dense"
    assert parsed.dense == dense.dense.SerializeToString()


def test_rows_sent_in_more_than_one_field_are_merged_as_protobuf_merges_them() -> None:
    """A message field sent twice is merged (its repeated fields concatenated); a bytes
    field keeps only the last. Predict's rows must not lose the first part."""
    from modeld_server.rpc import convert

    first = pb.PredictRequest(model="m", dense=pb.DenseRows(columns=["x", "y"]))
    second = pb.PredictRequest(dense=pb.DenseRows(values=[1.0, 2.0]))
    raw = first.SerializeToString() + second.SerializeToString()
    assert pb.PredictRequest.FromString(raw).dense.columns == ["x", "y"]
    rows = convert.rows_from_pb(handlers()["Predict"].request_deserializer(raw))
    assert (tuple(rows.columns), list(rows.values)) == (("x", "y"), [1.0, 2.0])

    one, two = pb.PredictRequest(model="m"), pb.PredictRequest()
    one.records.rows.add().update({"x": 1.0})
    two.records.rows.add().update({"x": 2.0})
    parsed = handlers()["Predict"].request_deserializer(
        one.SerializeToString() + two.SerializeToString())
    assert [dict(r) for r in convert.rows_from_pb(parsed).records] == [{"x": 1.0}, {"x": 2.0}]
    assert parsed.model == "m"
