"""Records <-> V2 tensors: the bridge that lets the typed API (:mod:`.api`) reuse the V2 codec.

Why not decode records directly: ``/infer`` and ``/predict`` must give a model the same data for the
same values. So records become the V2 inputs a V2 client would send for them (one column per field,
datatype and content type from the signature, composite values as JSON text) and go through
:class:`~mlserver_sigaware.codec.RequestDecoder`; the V2 outputs of
:class:`~mlserver_sigaware.codec.ResponseEncoder` (its naming and casting) become one record per row.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any, Optional

import orjson
from mlserver.types import InferenceRequest, Parameters, RequestInput, ResponseOutput, TensorData

from ...errors import InvalidInput, OutputEncodingError
from ...signature import JSON_CONTENT_TYPE, FieldSpec, Layout, SchemaPlan

__all__ = ["outputs_to_records", "records_to_request"]


def _input(name: str, datatype: str, shape: list[int], data: list, content_type: Optional[str] = None) -> RequestInput:
    return RequestInput.model_construct(
        name=name,
        shape=shape,
        datatype=datatype,
        parameters=Parameters(content_type=content_type) if content_type else None,
        data=TensorData.model_construct(root=data),
    )


def _json_texts(values: list) -> list:
    return [None if v is None else orjson.dumps(v).decode("utf-8") for v in values]


def _nested(rows: list, path: str) -> tuple[list[int], list]:
    """Shape of one row and the flat values of regular nested ``rows``; a 400 naming ``path`` when ragged."""
    shape: list[int] = []
    level = rows
    while level and all(isinstance(v, list) for v in level):
        lengths = {len(v) for v in level}
        if len(lengths) != 1:
            raise InvalidInput(f"{path}: rows of different lengths {sorted(lengths)} do not form a tensor")
        shape.append(lengths.pop())
        level = list(chain.from_iterable(level))
    if any(isinstance(v, list) for v in level):
        raise InvalidInput(f"{path}: lists mixed with values do not form a tensor")
    return shape, level


def _column(spec: FieldSpec, values: list) -> RequestInput:
    n = len(values)
    if spec.is_composite:
        return _input(spec.name, "BYTES", [n], _json_texts(values), JSON_CONTENT_TYPE)
    content_type = "base64" if spec.content_type == "base64" else None
    return _input(spec.name, spec.datatype, [n], values, content_type)


def _tensor(spec: FieldSpec, rows: list) -> RequestInput:
    if not spec.shape:  # rank 0: the one record is the whole tensor
        return _input(spec.name, spec.datatype, [], rows[:1])
    inner, flat = _nested(rows, f"input '{spec.name}'")
    return _input(spec.name, spec.datatype, [len(rows)] + inner, flat)


_V2_OF_JSON = {frozenset({bool}): "BOOL", frozenset({int}): "INT64", frozenset({float}): "FP64", frozenset({int, float}): "FP64"}


def _untyped(name: str, values: list) -> RequestInput:
    """A column of a model without signature, typed as a V2 client would send its JSON values."""
    types = {type(v) for v in values} - {type(None)}
    if types and types <= {dict, list}:
        return _input(name, "BYTES", [len(values)], _json_texts(values), JSON_CONTENT_TYPE)
    return _input(name, _V2_OF_JSON.get(frozenset(types), "BYTES"), [len(values)], values)


def records_to_request(plan: SchemaPlan, records: list) -> InferenceRequest:
    """The V2 request carrying these (already validated) records: what ``/infer`` would receive."""
    if plan.layout is Layout.TENSOR:
        inputs = [_tensor(plan.fields[0], records)]
    elif plan.layout is Layout.ANY:
        names: dict[str, None] = {}
        for record in records:
            names.update(dict.fromkeys(record))
        inputs = [_untyped(n, [r.get(n) for r in records]) for n in names]
    else:
        inputs = []
        for spec in plan.fields:
            if not any(spec.name in r for r in records):
                continue  # an optional input nobody sent (required ones were checked already)
            values = [r.get(spec.name) for r in records]
            inputs.append(_tensor(spec, values) if spec.is_tensor else _column(spec, values))
    return InferenceRequest.model_construct(inputs=inputs, parameters=None, outputs=None, id=None)


# ------------------------------------------------------------------------------------------ outputs


def _value(v: Any, content_type: Optional[str]) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return orjson.loads(v) if content_type == JSON_CONTENT_TYPE else bytes(v).decode("utf-8")
    if isinstance(v, float) and not math.isfinite(v):
        return None  # NaN (a missing value) and infinities have no JSON number
    return v


def _nest(flat: list, dims: list[int]) -> Any:
    if not dims:
        return flat[0]
    if len(dims) == 1:
        return flat
    step = math.prod(dims[1:])
    return [_nest(flat[i * step : (i + 1) * step], dims[1:]) for i in range(dims[0])]


def _rows(output: ResponseOutput) -> list:
    data = output.data.root if hasattr(output.data, "root") else output.data
    content_type = output.parameters.content_type if output.parameters is not None else None
    flat = [_value(v, content_type) for v in data]
    shape = list(output.shape)
    if not shape:
        return flat[:1]
    n, inner = shape[0], shape[1:]
    per = math.prod(inner) if inner else 1
    return [_nest(flat[i * per : (i + 1) * per], inner) for i in range(n)]


def outputs_to_records(outputs: list[ResponseOutput]) -> list[dict[str, Any]]:
    """One record per row: ``{output name: that row's value}`` (a row of a tensor output is a nested list)."""
    columns = {out.name: _rows(out) for out in outputs}
    counts = {name: len(rows) for name, rows in columns.items()}
    if len(set(counts.values())) > 1:
        raise OutputEncodingError(
            f"outputs have different numbers of rows {counts}: the typed API returns one record per row"
        )
    n = next(iter(counts.values()), 0)
    return [{name: rows[i] for name, rows in columns.items()} for i in range(n)]
