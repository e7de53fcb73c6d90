"""V2 over HTTP: the JSON request and answer of infer, with the binary tensor extension.

A body may carry tensors as JSON `data` (flattened or nested, row-major) or, as
tritonclient.http sends them by default, as raw bytes after the JSON: the header
`Inference-Header-Content-Length` gives the JSON's length and each such input has the
parameter `binary_data_size`. Outputs go back binary when the request parameter
`binary_data_output` or the output's parameter `binary_data` is true.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeld_server.errors import InvalidArgument, quoted
from modeld_server.oip.core import InferAnswer
from modeld_server.oip.tensors import (
    BYTES,
    NUMBER_TYPES,
    Tensor,
    check_header,
    numbers_from_raw,
    output_to_raw,
    strings_from_raw,
)

HEADER_LENGTH = "inference-header-content-length"


@dataclass(frozen=True)
class InferCall:
    """An infer body, decoded."""

    request_id: str
    inputs: list[Tensor]
    per_column: bool
    wanted: list[str]
    binary_outputs: set[str]
    all_binary: bool


def parse_json(text: bytes, what: str) -> dict[str, Any]:
    """A JSON object from `text`; an empty body is {}."""
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def infer_call(body: bytes, header_length: str | None) -> InferCall:
    """Decodes an infer body (JSON, then any binary tensors)."""
    split = _header_length(header_length, len(body))
    doc = parse_json(body[:split], "the request body")
    binary, offset = body[split:], 0
    inputs = doc.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidArgument("inputs is required: a list of tensors {name, datatype, shape, "
                              "data}")
    tensors = []
    for i, item in enumerate(inputs):
        name, datatype, shape, parameters = _tensor_header(i, item)
        size = parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise InvalidArgument(f"inputs[{i}] {quoted(name)}: binary_data_size {size!r} "
                                      f"exceeds the {len(binary) - offset} bytes left after "
                                      "the JSON")
            raw = binary[offset:offset + size]
            offset += size
            data = (strings_from_raw(i, name, shape, raw) if datatype == BYTES
                    else numbers_from_raw(i, name, datatype, shape, raw))
        else:
            data = _json_data(i, name, datatype, shape, item.get("data"))
        tensors.append(Tensor(name, datatype, shape, data))
    if offset != len(binary):
        raise InvalidArgument(f"{len(binary) - offset} bytes after the JSON belong to no "
                              "input's binary_data_size")
    parameters = doc.get("parameters") or {}
    wanted, binary_outputs = _outputs(doc.get("outputs") or [])
    return InferCall(str(doc.get("id") or ""), tensors, parameters.get("content_type") == "pd",
                     wanted, binary_outputs, parameters.get("binary_data_output") is True)


def _header_length(value: str | None, size: int) -> int:
    if value is None:
        return size
    if not value.isdigit() or int(value) > size:
        raise InvalidArgument(f"Inference-Header-Content-Length {quoted(value)} must be a "
                              f"byte count of at most the body's {size}")
    return int(value)


def _tensor_header(i: int, item: Any) -> tuple[str, str, tuple[int, ...], dict[str, Any]]:
    if not isinstance(item, dict):
        raise InvalidArgument(f"inputs[{i}] must be an object {{name, datatype, shape, data}}")
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if not isinstance(name, str) or not isinstance(datatype, str) or not isinstance(shape, list) \
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidArgument(f"inputs[{i}] needs name (a string), datatype (a string) and "
                              "shape (a list of integers)")
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidArgument(f"inputs[{i}] {quoted(name)}: parameters must be an object")
    return name, datatype, tuple(shape), parameters


def _json_data(i: int, name: str, datatype: str, shape: tuple[int, ...],
               data: Any) -> np.ndarray:
    count = check_header(i, name, datatype, shape)
    if not isinstance(data, list):
        raise InvalidArgument(f"inputs[{i}] {quoted(name)}: data is required, a list of "
                              f"{count} elements (or binary_data_size)")
    flat = list(_flatten(data))
    if len(flat) != count:
        raise InvalidArgument(f"inputs[{i}] {quoted(name)}: data has {len(flat)} elements, "
                              f"but shape {list(shape)} needs {count}")
    if datatype == BYTES:
        out = np.empty(count, dtype=object)
        for j, value in enumerate(flat):
            if value is not None and not isinstance(value, str):
                raise InvalidArgument(f"inputs[{i}] {quoted(name)} element {j} must be a string "
                                      f"or null, got {quoted(value)}")
            out[j] = value or None
        return out
    if any(isinstance(v, (str, list, dict)) for v in flat):
        bad = next(v for v in flat if isinstance(v, (str, list, dict)))
        raise InvalidArgument(f"inputs[{i}] {quoted(name)} is {datatype}: element "
                              f"{quoted(bad)} is not a number")
    # null is a missing value: NaN, which the float types hold
    dtype = NUMBER_TYPES[datatype] if None not in flat else np.dtype(np.float64)
    try:
        return np.asarray(flat, dtype=dtype)
    except (OverflowError, TypeError, ValueError):
        raise InvalidArgument(f"inputs[{i}] {quoted(name)}: data does not fit {datatype}") \
            from None


def _flatten(data: list[Any]) -> Any:
    for value in data:
        if isinstance(value, list):
            yield from _flatten(value)
        else:
            yield value


def _outputs(items: Sequence[Any]) -> tuple[list[str], set[str]]:
    wanted, binary = [], set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidArgument(f"outputs[{i}] must be an object with a name")
        wanted.append(item["name"])
        if (item.get("parameters") or {}).get("binary_data") is True:
            binary.add(item["name"])
    return wanted, binary


def answer_body(answer: InferAnswer, call: InferCall) -> tuple[bytes, int | None]:
    """The answer's body, and the JSON's length when binary outputs follow it."""
    outputs, tails = [], []
    for output in answer.outputs:
        item: dict[str, Any] = {"name": output.name, "datatype": output.datatype,
                                "shape": list(output.shape)}
        parameters: dict[str, Any] = dict(output.parameters)
        if call.all_binary or output.name in call.binary_outputs:
            raw = output_to_raw(output)
            parameters["binary_data_size"] = len(raw)
            tails.append(raw)
        else:
            item["data"] = output.data.ravel().tolist()
        if parameters:
            item["parameters"] = parameters
        outputs.append(item)
    doc: dict[str, Any] = {"model_name": answer.model, "model_version": str(answer.version),
                           "outputs": outputs}
    if call.request_id:
        doc["id"] = call.request_id
    head = json.dumps(doc).encode()
    if not tails:
        return head, None
    return head + b"".join(tails), len(head)
