"""Triton's binary tensor data extension on REST: what ``tritonclient.http`` sends and reads by default.

A request body is a JSON header (its length in the ``Inference-Header-Content-Length`` request header)
followed by the raw bytes of the inputs whose ``parameters.binary_data_size`` says how many are theirs, in
the order of the inputs: little-endian, row-major, without padding; ``BOOL`` one byte per element;
``BYTES`` a 4-byte little-endian length before each element. Outputs go back the same way when the
request asks (``parameters.binary_data_output`` for all of them, an output's own
``parameters.binary_data`` for one). Specification: Triton's ``extension_binary_data.md``.

:func:`parse_binary_request` builds the :class:`InferenceRequest` MLServer would have built from the
equivalent JSON body, each binary input's ``data`` an ndarray of its datatype (``BYTES``: a list of
``bytes``, as MLServer's gRPC path makes them); a header or a binary section that does not fit is a 400
naming the input. :func:`render_response` writes the response, binary where asked and exactly
representable (an output holding nulls stays JSON, which ``tritonclient`` reads as well).
"""

from __future__ import annotations

import math
import struct
from typing import Any, Optional

import numpy as np
import orjson
from mlserver.types import InferenceRequest, InferenceResponse

from ..errors import InvalidInput

__all__ = [
    "HEADER_LENGTH",
    "NUMPY_DTYPES",
    "tensor_bytes",
    "parse_binary_request",
    "parse_header_length",
    "render_response",
    "wants_binary",
]

#: The request and response header that carries the JSON part's length (lower case, as ASGI gives it).
HEADER_LENGTH = "inference-header-content-length"

#: Each fixed-size V2 datatype as the little-endian numpy dtype of its binary form.
NUMPY_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

_LENGTH = struct.Struct("<I")


def parse_header_length(value: str, body_size: int) -> int:
    """The ``Inference-Header-Content-Length`` value as a length within the body, else a 400."""
    text = value.strip()
    if not text.isdigit():
        raise InvalidInput(
            f"Inference-Header-Content-Length: expected the JSON header's length in bytes, got {value!r}"
        )
    length = int(text)
    if length > body_size:
        raise InvalidInput(
            f"Inference-Header-Content-Length: {length} is longer than the {body_size}-byte request body"
        )
    return length


def _json_header(body: bytes, length: int) -> dict:
    try:
        header = orjson.loads(body[:length])
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"request body: the JSON header (the first {length} bytes, Inference-Header-Content-Length) "
            f"is not valid JSON: {exc}"
        ) from None
    if not isinstance(header, dict):
        raise InvalidInput("request body: the JSON header must be an object")
    return header


def _binary_size(raw: dict, index: int) -> Optional[int]:
    """An input's ``binary_data_size`` (``None`` without one); a 400 when it is not a byte count."""
    params = raw.get("parameters")
    if not isinstance(params, dict) or "binary_data_size" not in params:
        return None
    size = params["binary_data_size"]
    name = raw.get("name", f"inputs[{index}]")
    if type(size) is not int or size < 0:
        raise InvalidInput(f"input '{name}': parameters.binary_data_size must be a byte count, got {size!r}")
    if "data" in raw:
        raise InvalidInput(
            f"input '{name}': has both 'data' and parameters.binary_data_size; send its values one way"
        )
    return size


def _bytes_elements(raw: memoryview, name: str) -> list[bytes]:
    out: list[bytes] = []
    offset, size = 0, len(raw)
    while offset < size:
        if offset + 4 > size:
            raise InvalidInput(
                f"input '{name}': binary BYTES data ends inside a length prefix (at byte {offset} of {size})"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > size:
            raise InvalidInput(
                f"input '{name}': binary BYTES element {len(out)} needs {length} bytes, "
                f"only {size - offset} are left in its {size}-byte section"
            )
        out.append(bytes(raw[offset : offset + length]))
        offset += length
    return out


def _tensor(raw: memoryview, name: str, datatype: str, shape: list) -> Any:
    """An input's binary section as the ``data`` MLServer's JSON parsing would have made (see module doc)."""
    count = math.prod(shape) if all(type(d) is int and d >= 0 for d in shape) else None
    if datatype == "BYTES":
        values = _bytes_elements(raw, name)
        if count is not None and len(values) != count:
            raise InvalidInput(
                f"input '{name}': binary data holds {len(values)} BYTES element{'s' if len(values) != 1 else ''}, "
                f"shape {shape} needs {count}"
            )
        return values
    dtype = NUMPY_DTYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(f"input '{name}': datatype {datatype!r} cannot be sent as binary data")
    if count is not None and len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"input '{name}': binary_data_size is {len(raw)} bytes, shape {shape} of {datatype} needs "
            f"{count * dtype.itemsize}"
        )
    if len(raw) % dtype.itemsize:
        raise InvalidInput(
            f"input '{name}': binary_data_size {len(raw)} is not a whole number of {datatype} elements"
        )
    if datatype == "BOOL":
        octets = np.frombuffer(raw, dtype=np.uint8)
        if octets.size and octets.max() > 1:
            raise InvalidInput(f"input '{name}': binary BOOL data must be bytes 0 or 1")
    return np.frombuffer(raw, dtype=dtype)


def parse_binary_request(body: bytes, header_length: int) -> InferenceRequest:
    """The request of a binary-extension body (see the module docstring); a 400 naming what does not fit.

    A header that pydantic refuses raises pydantic's ``ValidationError`` (the caller answers it as MLServer's
    route answers a refused JSON body)."""
    header = _json_header(body, header_length)
    inputs = header.get("inputs")
    sections: list[tuple[int, int, str, str, list]] = []  # (input index, size, name, datatype, shape)
    if isinstance(inputs, list):
        for index, raw in enumerate(inputs):
            if not isinstance(raw, dict):
                continue
            size = _binary_size(raw, index)
            if size is None:
                continue
            raw["data"] = []  # validated like any input; the section replaces it below
            sections.append((index, size, str(raw.get("name")), raw.get("datatype"), raw.get("shape")))
    request = InferenceRequest.model_validate(header)
    view = memoryview(body)
    offset = header_length
    total = len(body)
    for index, size, name, _, _ in sections:
        if offset + size > total:
            raise InvalidInput(
                f"input '{name}': binary_data_size is {size} bytes, only {total - offset} bytes of binary "
                f"data are left in the request body"
            )
        inp = request.inputs[index]
        datatype = getattr(inp.datatype, "value", inp.datatype)
        inp.data.root = _tensor(view[offset : offset + size], name, datatype, list(inp.shape))
        offset += size
    if offset != total:
        raise InvalidInput(
            f"request body: {total - offset} bytes after the binary data of the inputs "
            f"(the inputs' binary_data_size add up to {offset - header_length}, the body has "
            f"{total - header_length} after its JSON header)"
        )
    return request


# ------------------------------------------------------------------------------------------ response


def wants_binary(request: InferenceRequest) -> dict[str, bool]:
    """Which outputs the client asked as binary: ``{name: bool}`` and ``"*"`` for the request's default."""
    asked: dict[str, bool] = {}
    params = request.parameters
    default = params is not None and (params.model_extra or {}).get("binary_data_output") is True
    asked["*"] = default
    for out in request.outputs or ():
        extra = out.parameters.model_extra if out.parameters is not None else None
        if extra and "binary_data" in extra:
            asked[out.name] = extra["binary_data"] is True
    return asked


def _bytes_section(values: list) -> Optional[bytes]:
    parts = []
    for value in values:
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, (bytes, bytearray)):
            return None  # a null (or anything else) has no binary form: the output stays JSON
        parts.append(_LENGTH.pack(len(value)))
        parts.append(bytes(value))
    return b"".join(parts)


def tensor_bytes(datatype: str, data: Any) -> Optional[bytes]:
    """An output's values as binary, or ``None`` when the binary form could not carry them exactly."""
    if datatype == "BYTES":
        values = data if isinstance(data, list) else list(np.asarray(data, dtype=object).ravel())
        return _bytes_section(values)
    dtype = NUMPY_DTYPES.get(datatype)
    if dtype is None:
        return None
    try:
        array = np.asarray(data)
        if array.dtype.kind == "O":  # nulls, or values of mixed kinds
            return None
        return np.ascontiguousarray(array.astype(dtype, copy=False)).tobytes()
    except (ValueError, TypeError, OverflowError):
        return None


def render_response(document: dict, asked: dict[str, bool]) -> tuple[bytes, Optional[int]]:
    """The response body of ``document`` (a dumped :class:`InferenceResponse`) and, when some output went
    binary, the JSON header's length (for ``Inference-Header-Content-Length``); else ``None``."""
    default = asked.get("*", False)
    sections: list[bytes] = []
    for output in document.get("outputs") or ():
        if not asked.get(output.get("name"), default) or "data" not in output:
            continue
        section = tensor_bytes(output.get("datatype"), output["data"])
        if section is None:
            continue
        del output["data"]
        params = output.get("parameters")
        output["parameters"] = dict(params or {}, binary_data_size=len(section))
        sections.append(section)
    header = encode_json(document)
    if not sections:
        return header, None
    return b"".join([header, *sections]), len(header)


def _numbers_as_written(document: dict) -> None:
    """ndarray outputs as what their lists would be written as: float32/float16 as float64 (orjson
    writes narrower floats in their own shortest form; the list holds Python floats, i.e. doubles)."""
    for output in document.get("outputs") or ():
        data = output.get("data")
        if isinstance(data, np.ndarray) and data.dtype.kind == "f" and data.dtype.itemsize < 8:
            output["data"] = data.astype(np.float64)


def encode_json(document: dict) -> bytes:
    """MLServer's JSON encoding (``encode_to_json_bytes``: orjson, ``bytes`` as text) of ``document``,
    whose outputs' ``data`` may be ndarrays: written as their ``tolist()`` would be, byte for byte."""
    from mlserver.codecs.json import _encode_object_to_bytes

    _numbers_as_written(document)
    return orjson.dumps(document, default=_encode_object_to_bytes, option=orjson.OPT_SERIALIZE_NUMPY)


def response_document(response: InferenceResponse) -> dict:
    """What MLServer's REST route serializes of ``response`` (unset and ``None`` fields left out)."""
    return response.model_dump(exclude_unset=True, exclude_none=True)
