"""The fast path of ``/invocations``: a regular payload turned into V2 inputs for the one codec.

Payload shapes that MLflow reads differently from what our codec would do with them raise
:class:`UseMlflow`, and the request goes through MLflow's own parsing instead (:mod:`.invocations`).
"""

from __future__ import annotations

import re
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import orjson
import pandas as pd
from mlflow.types.schema import DataType
from mlserver.types import Parameters, RequestInput, TensorData

from ...codec.values import NUMERIC_KINDS, PLAIN_NUMBERS
from ...errors import InvalidInput
from ...signature import FieldSpec, Layout, SchemaPlan
from .reading import DF_RECORDS, DF_SPLIT, INPUTS, INSTANCES, ScoringRequest

if TYPE_CHECKING:  # pragma: no cover
    from ...model.served import ServedModel

__all__ = ["UseMlflow", "check_decoded", "fast_inputs", "fast_path_allowed", "uniform_frame"]


class UseMlflow(Exception):
    """The fast path does not take this payload shape: MLflow's own reading decides."""


def uniform_frame(served: "ServedModel", request: ScoringRequest) -> Optional[pd.DataFrame]:
    """The frame of a plain numeric ``dataframe_split``/``dataframe_records`` table for an all-float
    signature (the common tabular request), or ``None``.

    The general fast path turns each column into a V2 input for the decoder (~40 µs a column); a table
    of numbers needs none of that: one ``np.asarray`` of the rows is the model's block. Taken only when
    the table names exactly the signature's columns and holds only ints and floats (no null, bool or
    text, which MLflow reads in ways of its own), so the frame is the one the general path builds (a
    test compares them).
    """
    decoder = served.invocations_decoder
    if decoder.uniform_target is None or served.always_enforce or request.kind != "json":
        return None
    formats = request.payload
    if len(formats) != 1:
        return None
    fmt, payload = next(iter(formats.items()))
    names = decoder.uniform_names
    if fmt == DF_SPLIT:
        if type(payload) is not dict or payload.keys() != {"columns", "data"}:
            return None
        columns, rows = payload["columns"], payload["data"]
        if (
            type(columns) is not list
            or set(map(type, columns)) != {str}
            or len(set(columns)) != len(columns)
            or sorted(columns) != sorted(names)
        ):
            return None
        if type(rows) is not list or not rows or set(map(type, rows)) != {list}:
            return None
    elif fmt == DF_RECORDS:
        if type(payload) is not list or not payload or set(map(type, payload)) != {dict}:
            return None
        keys = payload[0].keys()
        if sorted(keys) != sorted(names) or not all(map(keys.__eq__, map(dict.keys, payload))):
            return None
        columns = list(keys)
        # By key, not by position: records may list the same keys in different orders.
        rows = list(map(itemgetter(*columns), payload))
    else:
        return None
    if set(map(len, rows)) != {len(names)} or not set(map(type, chain.from_iterable(rows))) <= PLAIN_NUMBERS:
        return None
    table = np.asarray(rows)
    if table.dtype.kind not in NUMERIC_KINDS:  # e.g. an int beyond 64 bits
        return None
    block = table.T if columns == list(names) else table.T[[columns.index(n) for n in names]]
    return decoder.uniform_frame(np.ascontiguousarray(block))


def fast_path_allowed(served: "ServedModel", request: ScoringRequest) -> bool:
    if request.kind not in ("json", "csv"):
        return False
    plan = served.inputs
    if plan.layout is Layout.ANY:
        return False
    if plan.layout is Layout.COLUMNS and not all(f.named for f in plan.fields):
        return False  # MLflow matches unnamed columns by position
    try:
        return not served.predictor.pyfunc.metadata._is_signature_from_type_hint()
    except AttributeError:  # pragma: no cover - older MLflow
        return True


_FLOAT_TYPES = (DataType.float, DataType.double)
_DIGITS = re.compile(r"\d")


def fast_inputs(served: "ServedModel", request: ScoringRequest) -> list[RequestInput]:
    """The payload as V2 inputs for our decoder, or :class:`UseMlflow` for shapes MLflow reads
    differently from what our codec would do with them:

    * anything but a regular table (``dataframe_split`` with ``columns`` and rows of equal length and
      no ``index``; ``dataframe_records``/``instances``/``inputs`` records with the same keys;
      ``inputs`` as a dict of equal-length lists or of scalars; a list of scalars for a
      one-column model) or a regular nested list for tensors;
    * a null outside a float column (MLflow: an error for integers, ``False`` for booleans, the text
      ``"None"`` for strings in ``inputs``...);
    * binary, datetime or composite (array/object/map) values outside ``dataframe_*`` (MLflow does not
      base64-decode binary there, parses datetimes with numpy, and reads a dict of composite values
      as one row), binary in CSV (passed on as text);
    * datetimes not all written in one format, or with a UTC offset (MLflow: an error).
    """
    plan = served.inputs
    if plan.layout is Layout.COLUMNS:
        columns = _table(request, plan)
        return [_column_input(plan.by_name.get(name), values, request, name) for name, values in columns.items()]
    if plan.layout is Layout.TENSOR:
        value = _tensor_payload(request)
        return [_tensor_input(plan.fields[0], plan.fields[0].name, value)]
    if plan.layout is Layout.TENSORS:
        columns = _table(request, plan)
        return [_tensor_input(plan.by_name.get(name), name, values) for name, values in columns.items()]
    raise UseMlflow


def _format(request: ScoringRequest) -> tuple[str, Any]:
    if request.kind == "csv":
        return "csv", request.payload
    formats = request.payload
    if len(formats) != 1:
        raise UseMlflow  # MLflow's "exactly one of the input fields" error
    return next(iter(formats.items()))


def _records(rows: Any) -> dict[str, list]:
    # (C-level scans: these run over every row of big requests)
    if not isinstance(rows, list) or not rows or set(map(type, rows)) != {dict}:
        raise UseMlflow
    keys = rows[0].keys()
    if not all(map(keys.__eq__, map(dict.keys, rows))):
        raise UseMlflow
    return {k: list(map(itemgetter(k), rows)) for k in keys}


def _table(request: ScoringRequest, plan: SchemaPlan) -> dict[str, list]:
    """Column name -> values of a tabular payload."""
    fmt, payload = _format(request)
    if fmt == "csv":
        frame: pd.DataFrame = payload
        if not frame.columns.is_unique or not all(isinstance(c, str) for c in frame.columns):
            raise UseMlflow
        return {c: frame[c].tolist() for c in frame.columns}
    if fmt == DF_SPLIT:
        if not isinstance(payload, dict) or set(payload) != {"columns", "data"}:
            raise UseMlflow
        names, rows = payload["columns"], payload["data"]
        if (
            not isinstance(names, list)
            or not names
            or set(map(type, names)) != {str}
            or len(set(names)) != len(names)
            or not isinstance(rows, list)
            or not rows
            or set(map(type, rows)) != {list}
            or set(map(len, rows)) != {len(names)}
        ):
            raise UseMlflow
        return {n: list(map(itemgetter(i), rows)) for i, n in enumerate(names)}
    if fmt in (DF_RECORDS, INSTANCES):
        if fmt == INSTANCES and isinstance(payload, list) and payload and not isinstance(payload[0], dict):
            return _single_column(payload, plan)
        return _records(payload)
    if fmt == INPUTS:
        if isinstance(payload, dict):
            values = list(payload.values())
            if not values:
                raise UseMlflow
            if all(isinstance(v, list) for v in values):
                if len({len(v) for v in values}) != 1 or not values[0]:
                    raise UseMlflow
                return dict(payload)
            if any(isinstance(v, (list, dict)) for v in values):
                raise UseMlflow
            return {k: [v] for k, v in payload.items()}  # one row
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            return _records(payload)
        return _single_column(payload, plan)
    raise UseMlflow


def _single_column(payload: Any, plan: SchemaPlan) -> dict[str, list]:
    """A bare list of values is the column of a one-column model (MLflow's ``_cast_schema_type``)."""
    if not isinstance(payload, list) or not payload or len(plan.fields) != 1:
        raise UseMlflow
    return {plan.fields[0].name: payload}


_V2_OF_JSON = {
    frozenset({bool}): "BOOL",
    frozenset({int}): "INT64",
    frozenset({float}): "FP64",
    frozenset({int, float}): "FP64",
}


def _v2_datatype(types: set, spec: FieldSpec) -> str:
    """The V2 datatype a client would send values of these JSON ``types`` as (nulls aside):
    BOOL, INT64, FP64, or BYTES for text and anything mixed; the spec's own when all are null."""
    types = types - {type(None)}
    if not types:
        return spec.datatype
    return _V2_OF_JSON.get(frozenset(types), "BYTES")


def _v2_input(
    name: str, datatype: str, shape: list[int], data: list, content_type: Optional[str] = None
) -> RequestInput:
    return RequestInput.model_construct(
        name=name,
        shape=shape,
        datatype=datatype,
        parameters=Parameters(content_type=content_type) if content_type else None,
        data=TensorData.model_construct(root=data),
    )


def _column_input(spec: Optional[FieldSpec], values: list, request: ScoringRequest, name: str) -> RequestInput:
    fmt = "csv" if request.kind == "csv" else next(iter(request.payload))
    dataframe_format = fmt in (DF_SPLIT, DF_RECORDS)
    if spec is None:
        if not dataframe_format and fmt != "csv":
            raise UseMlflow  # MLflow still runs np.array() on unknown inputs/instances keys
        return _v2_input(name, "BYTES", [len(values)], [])  # ignored by the decoder, as by MLflow
    t = spec.mlflow_type
    types = set(map(type, values))
    if t not in _FLOAT_TYPES and type(None) in types:
        raise UseMlflow
    if not spec.is_composite and (list in types or dict in types):
        raise UseMlflow  # MLflow keeps the object as one cell (our V2 decoder would flatten lists)
    if spec.is_composite:
        if not dataframe_format:
            raise UseMlflow
        return _v2_input(spec.name, "BYTES", [len(values)], [orjson.dumps(v) for v in values], "json")
    if t is DataType.binary and not dataframe_format:
        raise UseMlflow
    if t is DataType.datetime:
        if not dataframe_format:
            raise UseMlflow
        # MLflow lets pandas infer one format from the first value; ours reads any ISO 8601 mix.
        # (Zoned values are caught after decoding, see check_decoded.)
        if all(isinstance(v, str) for v in values) and len({_DIGITS.sub("0", v) for v in values}) != 1:
            raise UseMlflow
    return _v2_input(spec.name, _v2_datatype(types, spec), [len(values)], values)


def _nested(value: Any, name: str) -> tuple[list[int], list]:
    """Shape and flat values of a (regular) nested list; :class:`InvalidInput` when ragged."""
    shape: list[int] = []
    level = [value]
    while level and type(level[0]) is list:
        if set(map(type, level)) != {list}:
            raise InvalidInput(f"input '{name}': ragged nested lists (lists mixed with values)")
        lengths = set(map(len, level))
        if len(lengths) != 1:
            raise InvalidInput(f"input '{name}': ragged nested lists (lengths {sorted(lengths)})")
        shape.append(lengths.pop())
        level = list(chain.from_iterable(level))
    if list in set(map(type, level)):
        raise InvalidInput(f"input '{name}': ragged nested lists (lists mixed with values)")
    return shape, level


def _tensor_payload(request: ScoringRequest) -> Any:
    fmt, payload = _format(request)
    if fmt in (INPUTS, INSTANCES):
        if not isinstance(payload, list) or (payload and isinstance(payload[0], dict)):
            raise UseMlflow
        return payload
    if fmt == DF_SPLIT:
        if not isinstance(payload, dict) or not set(payload) <= {"columns", "data"} or "data" not in payload:
            raise UseMlflow
        rows = payload["data"]
        if not isinstance(rows, list) or not rows or set(map(type, rows)) != {list}:
            raise UseMlflow
        if set(map(len, rows)) != {len(payload.get("columns") or rows[0])}:
            raise UseMlflow
        return rows
    raise UseMlflow


def _tensor_input(spec: Optional[FieldSpec], name: str, value: Any) -> RequestInput:
    if spec is None:
        # MLflow ignores unknown tensors of a dict but still runs np.array() on them in `instances`
        raise UseMlflow
    shape, flat = _nested(value, name)
    types = set(map(type, flat))
    if type(None) in types and spec.mlflow_type.kind != "f":
        raise UseMlflow
    return _v2_input(name, _v2_datatype(types, spec), shape, flat)


def check_decoded(served: "ServedModel", data: Any) -> None:
    """Decoded values MLflow would not have produced: zoned datetimes (MLflow: 400)."""
    if isinstance(data, pd.DataFrame):
        for spec in served.inputs.fields:
            if spec.mlflow_type is DataType.datetime and spec.column in data.columns:
                if isinstance(data[spec.column].dtype, pd.DatetimeTZDtype):
                    raise UseMlflow

