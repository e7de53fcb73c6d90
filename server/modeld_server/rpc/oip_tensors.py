"""V2 tensors between their protobuf form (raw or typed contents) and oip.tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modeld.oip.v2 import inference_pb2 as pb
from modeld_server.errors import InvalidArgument, quoted
from modeld_server.oip.core import InferAnswer
from modeld_server.oip.tensors import (
    BYTES,
    NUMBER_TYPES,
    Output,
    Tensor,
    check_header,
    numbers_from_raw,
    output_to_raw,
    strings_from_bytes,
    strings_from_raw,
)

_TYPED_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", BYTES: "bytes_contents",
}
"""Which InferTensorContents field carries each datatype (FP16 travels raw only)."""


def inputs_from_pb(request: pb.ModelInferRequest) -> list[Tensor]:
    """The request's inputs, decoded from raw_input_contents or from typed contents.

    Raises:
        InvalidArgument: raw and typed mixed, a count or size mismatch (naming the input).
    """
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(f"raw_input_contents has {len(raw)} entries for "
                              f"{len(request.inputs)} inputs: send one per input, in order")
    tensors = []
    for i, tensor in enumerate(request.inputs):
        shape = tuple(tensor.shape)
        if raw:
            if tensor.HasField("contents"):
                raise InvalidArgument(f"inputs[{i}] {quoted(tensor.name)} has contents, but "
                                      "raw_input_contents is set: send one form or the other")
            data = (strings_from_raw(i, tensor.name, shape, raw[i]) if tensor.datatype == BYTES
                    else numbers_from_raw(i, tensor.name, tensor.datatype, shape, raw[i]))
        else:
            data = _typed(i, tensor, shape)
        tensors.append(Tensor(tensor.name, tensor.datatype, shape, data))
    return tensors


def _typed(index: int, tensor: Any, shape: tuple[int, ...]) -> np.ndarray:
    count = check_header(index, tensor.name, tensor.datatype, shape)
    field = _TYPED_FIELD.get(tensor.datatype)
    if field is None:
        raise InvalidArgument(f"inputs[{index}] {quoted(tensor.name)} is {tensor.datatype}, "
                              "which travels in raw_input_contents only")
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise InvalidArgument(f"inputs[{index}] {quoted(tensor.name)}: contents.{field} has "
                              f"{len(values)} elements, but shape {list(shape)} needs {count}")
    if tensor.datatype == BYTES:
        return strings_from_bytes(index, tensor.name, list(values))
    return np.asarray(values, dtype=NUMBER_TYPES[tensor.datatype])


def content_type(parameters: Mapping[str, pb.InferParameter]) -> str:
    """The request's content_type parameter, or ""."""
    value = parameters.get("content_type")
    return value.string_param if value is not None else ""


def answer_to_pb(answer: InferAnswer, request_id: str, raw: bool) -> pb.ModelInferResponse:
    """The answer in raw form when the request was raw (tritonclient decodes only raw
    numbers), otherwise in typed contents."""
    response = pb.ModelInferResponse(model_name=answer.model, model_version=str(answer.version),
                                     id=request_id)
    for output in answer.outputs:
        tensor = response.outputs.add(name=output.name, datatype=output.datatype,
                                      shape=output.shape)
        for key, value in output.parameters.items():
            tensor.parameters[key].string_param = value
        if raw:
            response.raw_output_contents.append(output_to_raw(output))
        else:
            _fill(tensor.contents, output)
    return response


def _fill(contents: Any, output: Output) -> None:
    if output.datatype == BYTES:
        contents.bytes_contents.extend(str(v).encode("utf-8") for v in output.data.tolist())
    else:
        contents.fp64_contents.extend(output.data.ravel().tolist())
