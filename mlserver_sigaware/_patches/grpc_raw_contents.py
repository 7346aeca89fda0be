"""gRPC ``raw_input_contents`` that do not fit their inputs are a 400 (``INVALID_ARGUMENT``) naming the input.

MLServer 1.7.1 unpacks raw contents (what ``tritonclient.grpc`` sends) with ``struct`` and no checks
(``mlserver/raw.py``): a buffer of the wrong length, fewer buffers than inputs, or a malformed ``BYTES``
buffer raised ``struct.error`` / ``IndexError`` and the call failed ``INTERNAL`` with ``struct``'s text;
extra buffers were silently ignored. We check every buffer against its input's shape and datatype first
and then let MLServer's own unpacking run.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from ..errors import InvalidInput

__all__ = ["apply", "check_raw_contents"]

#: Bytes per element of each fixed-size V2 datatype, as MLServer's ``raw.py`` unpacks it.
_ITEM_SIZE = {
    "BOOL": struct.calcsize("?"),
    "UINT8": struct.calcsize("B"),
    "UINT16": struct.calcsize("H"),
    "UINT32": struct.calcsize("I"),
    "UINT64": struct.calcsize("L"),
    "INT8": struct.calcsize("b"),
    "INT16": struct.calcsize("h"),
    "INT32": struct.calcsize("i"),
    "INT64": struct.calcsize("l"),
    "FP16": struct.calcsize("e"),
    "FP32": struct.calcsize("f"),
    "FP64": struct.calcsize("d"),
}


def _datatype(elem: Any) -> str:
    datatype = getattr(elem.datatype, "value", elem.datatype)
    return str(datatype)


def _count_bytes_elements(raw: bytes, name: str, index: int) -> int:
    """Elements of a ``BYTES`` buffer (each a 4-byte little-endian length, then its bytes)."""
    offset, count, size = 0, 0, len(raw)
    while offset < size:
        if offset + 4 > size:
            raise InvalidInput(
                f"input '{name}': raw_input_contents[{index}] is not a valid BYTES buffer "
                f"(a length prefix is cut off at byte {offset})"
            )
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4 + length
        if offset > size:
            raise InvalidInput(
                f"input '{name}': raw_input_contents[{index}] is not a valid BYTES buffer "
                f"(element {count} needs {length} bytes, the buffer ends first)"
            )
        count += 1
    return count


def check_raw_contents(inputs: list[Any], raw_contents: list[bytes]) -> None:
    """400 unless each input without ``contents`` has exactly one buffer that fits its shape and datatype."""
    targets = [elem for elem in inputs if not elem.data]
    if len(raw_contents) != len(targets):
        raise InvalidInput(
            f"raw_input_contents: {len(raw_contents)} buffer{'s' if len(raw_contents) != 1 else ''} for "
            f"{len(targets)} input{'s' if len(targets) != 1 else ''} without contents "
            f"({[e.name for e in targets]}); send one buffer per such input, in order"
        )
    for index, (elem, raw) in enumerate(zip(targets, raw_contents)):
        shape = list(elem.shape or [])
        if any((not isinstance(d, int)) or d < 0 for d in shape):
            raise InvalidInput(f"input '{elem.name}': shape {shape} must be non-negative integers")
        expected = math.prod(shape)
        datatype = _datatype(elem)
        if datatype == "BYTES":
            got = _count_bytes_elements(raw, elem.name, index)
            if got != expected:
                raise InvalidInput(
                    f"input '{elem.name}': raw_input_contents[{index}] holds {got} BYTES element"
                    f"{'s' if got != 1 else ''}, shape {shape} needs {expected}"
                )
            continue
        item = _ITEM_SIZE.get(datatype)
        if item is None:
            raise InvalidInput(f"input '{elem.name}': unsupported datatype {datatype!r} for raw_input_contents")
        if len(raw) != expected * item:
            raise InvalidInput(
                f"input '{elem.name}': raw_input_contents[{index}] has {len(raw)} bytes, shape {shape} "
                f"of {datatype} needs {expected * item}"
            )


def apply() -> None:
    from mlserver.grpc import converters

    if getattr(converters.inject_raw, "_sigaware_patched", False):
        return
    original = converters.inject_raw

    def inject_raw(elems: list[Any], raw_contents: list[bytes]) -> list[Any]:
        check_raw_contents(elems, list(raw_contents))
        return original(elems, raw_contents)

    inject_raw._sigaware_patched = True  # type: ignore[attr-defined]
    converters.inject_raw = inject_raw
