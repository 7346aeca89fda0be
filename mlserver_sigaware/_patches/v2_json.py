"""A V2 JSON body parsed into the :class:`InferenceRequest` MLServer would build, without a Python float per value.

MLServer parses a V2 body with ``orjson`` into Python objects, then validates them into pydantic models.
On a 10,000-row request of 13 columns, the 130,000 Python floats are most of the request's cost: parsing
them, pickling them to the inference worker and unpickling them there. :func:`parse_v2_json` hands the
same request over with each large array of JSON floats (the ``data`` of an input) as one float64 ndarray
instead:

* the body's ``"data": [ ... ]`` arrays are found by their key (:func:`data_arrays`), each parsed by simdjson into a
  buffer of doubles (``Array.as_buffer``: C++, no Python objects), and replaced in the body by a
  placeholder string;
* what is left (names, shapes, datatypes, parameters, small arrays: a few hundred bytes) is parsed by
  orjson and validated into an :class:`InferenceRequest` by pydantic, exactly as MLServer does;
* each placeholder is then swapped for its array.

An array is taken this way only when it is exactly what its list would be: a flat array of JSON *float*
literals (an integer literal would come back from the array as a float; ``ndarray.tolist()`` returns the
very floats orjson would have made, both parsers round correctly), and only where the placeholders all
land in inputs' ``data``. Anything else, and every body with a backslash (where a ``"data"`` key could
hide in a string), is parsed the ordinary way; an invalid body gives ``None`` and the caller hands it to
MLServer's own route, which owns every error message. A property test compares both on random valid and
invalid bodies (``tests/test_v2_rest_parsing.py``).
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np
import orjson
from mlserver.types import InferenceRequest
from pydantic import ValidationError

__all__ = ["LARGE_BODY_BYTES", "data_arrays", "parse_v2_json"]

#: From this body size on, arrays are cut out for simdjson; below, one orjson parse is the cheapest.
LARGE_BODY_BYTES = 32 * 1024
#: Arrays shorter than this stay in the body for orjson (the cut costs more than it saves).
_MIN_CUT_BYTES = 2048

#: Deleted from an array's text: what is left of an integer literal is nothing at all, so two
#: separators meet (``[,`` ``,,`` ``,]`` or ``[]``); a float literal leaves its ``.`` or exponent.
_INT_TOKEN_CHARS = b"0123456789+- \t\r\n"
_PLACEHOLDER = "\x00sigaware-array-"


_SPACE = b" \t\r\n"


def data_arrays(body: bytes, min_bytes: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each ``"data": [`` array of ``body`` spanning at least ``min_bytes``: ``start``
    at its ``[``, ``end`` at the first ``]`` after it (the array's end when it is flat).

    ``bytes.find`` only: the key by substring search between arrays, each array skipped by one search for
    its ``]`` (memchr speed), so a 660 kB V2 body of 13 arrays is scanned in ~0.05 ms (a regex over the
    whole body, numbers included, takes ~0.2 ms). A ``"data"`` in a string holding escaped quotes can
    match: callers either exclude bodies with a backslash or check what they find."""
    size = len(body)
    search = 0
    while True:
        key = body.find(b'"data"', search)
        if key < 0:
            return
        start = key + 6
        search = start
        while start < size and body[start] in _SPACE:
            start += 1
        if body[start : start + 1] != b":":
            continue
        start += 1
        while start < size and body[start] in _SPACE:
            start += 1
        if body[start : start + 1] != b"[":
            continue
        end = body.find(b"]", start)
        if end < 0:
            return
        search = end + 1
        if end - start >= min_bytes:
            yield start, end


def _doubles(parser: Any, span: bytes) -> Optional[np.ndarray]:
    """The span (``[`` to the first ``]``) as float64, when it is a flat array of numbers only."""
    try:
        parsed = parser.parse(span)
        buffer = parsed.as_buffer(of_type="d")
    except (ValueError, TypeError, RuntimeError, AttributeError):
        # not JSON (e.g. the first ``]`` closed a nested array or a string), or not all numbers
        return None
    finally:
        parsed = None  # the parser may be reused only once its documents are gone
    values = np.frombuffer(buffer, dtype=np.float64)
    if not values.size:
        return None
    # Only an integral value can have been written as an integer literal; when there is one, a number
    # has at most one ".": as many as there are values, and every one is a float literal.
    if (values == np.trunc(values)).any() and _dots(span) != values.size:
        left = span.translate(None, _INT_TOKEN_CHARS)
        if left == b"[]" or b",," in left or left.startswith(b"[,") or left.endswith(b",]"):
            return None  # an integer literal: orjson keeps it an int, the list way
    return values


def _dots(span: bytes) -> int:
    """How many ``.`` ``span`` holds (numpy's compare is several times faster than ``bytes.count``)."""
    return int(np.count_nonzero(np.frombuffer(span, dtype=np.uint8) == ord(".")))


def _validated(document: Any) -> Optional[InferenceRequest]:
    try:
        return InferenceRequest.model_validate(document)
    except ValidationError:
        return None


def parse_v2_json(body: bytes) -> Optional[InferenceRequest]:
    """The request MLServer would build from ``body``, large float arrays as ndarrays; ``None`` when
    MLServer's own parsing must answer (invalid JSON, a body pydantic refuses)."""
    if len(body) < LARGE_BODY_BYTES or b"\\" in body:
        try:
            return _validated(orjson.loads(body))
        except orjson.JSONDecodeError:
            return None
    import simdjson

    parser = simdjson.Parser()
    pieces: list[bytes] = []
    arrays: list[np.ndarray] = []
    pos = 0
    for start, end in data_arrays(body, _MIN_CUT_BYTES):
        values = _doubles(parser, body[start : end + 1])
        if values is None:
            continue
        pieces.append(body[pos:start])
        pieces.append(orjson.dumps(f"{_PLACEHOLDER}{len(arrays)}"))
        arrays.append(values)
        pos = end + 1
    if arrays:
        pieces.append(body[pos:])
        skeleton = b"".join(pieces)
    else:
        skeleton = body
    del pieces
    try:
        request = _validated(orjson.loads(skeleton))
    except orjson.JSONDecodeError:
        return None
    if request is None or not arrays:
        return request
    placed = 0
    for inp in request.inputs:
        root = inp.data.root
        if type(root) is str and root.startswith(_PLACEHOLDER):
            inp.data.root = arrays[int(root[len(_PLACEHOLDER) :])]
            placed += 1
    # Each placeholder is unique: all of them in inputs' data, or one sat elsewhere (a "data" key in
    # parameters) or was dropped (a repeated key): then the ordinary way.
    return request if placed == len(arrays) else _validated(orjson.loads(body))
