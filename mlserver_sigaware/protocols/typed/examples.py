"""Example values by MLflow type, for the OpenAPI document's request examples.

Why generated rather than taken from the model: an MLflow model's ``input_example`` is optional and
often absent; these are built from the signature so that every example is one the codec accepts
(``tests/protocols/test_openapi.py`` sends each example to the model).
"""

from __future__ import annotations

import base64
from typing import Any, Optional

import numpy as np
from mlflow.types.schema import AnyType, Array, DataType, Map, Object, ParamSchema

from ...signature import FieldSpec, Layout, SchemaPlan
from .fields import json_default

__all__ = ["example_params", "example_record", "example_value"]

_SCALARS: dict[DataType, Any] = {
    DataType.boolean: True,
    DataType.integer: 1,
    DataType.long: 1,
    DataType.float: 0.5,
    DataType.double: 0.5,
    DataType.string: "text",
    DataType.binary: base64.b64encode(b"bytes").decode("ascii"),
    DataType.datetime: "2024-01-31T12:00:00",
}


def example_value(t: Any) -> Any:
    """One value of an MLflow column type (scalars, Array, Object, Map, Any)."""
    if isinstance(t, DataType):
        return _SCALARS[t]
    if isinstance(t, Array):
        return [example_value(t.dtype)]
    if isinstance(t, Map):
        return {"key": example_value(t.value_type)}
    if isinstance(t, Object):
        return {p.name: example_value(p.dtype) for p in t.properties}
    if isinstance(t, AnyType):
        return {"any": "JSON"}
    return None


def _element(dtype: np.dtype) -> Any:
    kind = np.dtype(dtype).kind
    return {"f": 0.5, "i": 1, "u": 1, "b": True, "O": "text", "U": "text", "S": "text"}.get(kind)


def _tensor_row(spec: FieldSpec) -> Any:
    """One record of a tensor: a free (-1) dimension gets 2 elements."""
    row: Any = _element(spec.mlflow_type)
    for dim in reversed(spec.shape[1:]):
        row = [row] * (dim if dim >= 0 else 2)
    return row


def example_record(plan: SchemaPlan) -> Any:
    """One input (or output) record, with every field, optional ones included."""
    if plan.layout is Layout.ANY:
        return {"x": 1.0}
    if plan.layout is Layout.TENSOR:
        return _tensor_row(plan.fields[0])
    return {f.name: _tensor_row(f) if f.is_tensor else example_value(f.mlflow_type) for f in plan.fields}


def example_records(plan: SchemaPlan) -> list:
    """As many records as the model takes: one, or a fixed first dimension's worth."""
    n = 1
    for spec in plan.fields:
        if spec.is_tensor and spec.shape and spec.shape[0] >= 0:
            n = spec.shape[0]
            break
    return [example_record(plan) for _ in range(max(n, 1))]


def example_params(schema: Optional[ParamSchema]) -> dict[str, Any]:
    """Every param at its default (what a request without params gets)."""
    if schema is None:
        return {}
    return {p.name: json_default(p.default) for p in schema.params}
