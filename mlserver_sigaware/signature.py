"""MLflow signature -> V2 metadata: the one place that decides names, datatypes, shapes and content types.

The decoder, the encoder and the metadata endpoint all read the :class:`FieldSpec` lists built here, so
what metadata promises is by construction what ``/infer`` accepts and returns.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any, Optional, Union

import numpy as np
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import (
    AnyType,
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    Schema,
    TensorSpec,
)
from mlserver.types import MetadataTensor, Parameters

MlflowType = Union[DataType, Array, Object, Map, AnyType, np.dtype]

#: Content type of BYTES inputs/outputs whose elements are JSON documents (Array, Object, Map, Any).
JSON_CONTENT_TYPE = "json"
#: Name of the single output when the output schema has no names (as MLflow's `{"predictions": ...}`).
DEFAULT_OUTPUT_NAME = "predictions"


class Layout(str, Enum):
    """What the model's pyfunc expects: the decoder builds exactly this container."""

    COLUMNS = "columns"  # pandas DataFrame, one column per ColSpec
    TENSOR = "tensor"  # one ndarray (single unnamed TensorSpec)
    TENSORS = "tensors"  # dict of ndarrays (named TensorSpecs)
    ANY = "any"  # no signature: best effort


_COLUMN_TYPES: dict[DataType, tuple[str, str]] = {
    DataType.boolean: ("BOOL", "np"),
    DataType.integer: ("INT32", "np"),
    DataType.long: ("INT64", "np"),
    DataType.float: ("FP32", "np"),
    DataType.double: ("FP64", "np"),
    DataType.string: ("BYTES", "str"),
    DataType.binary: ("BYTES", "base64"),
    DataType.datetime: ("BYTES", "datetime"),
}

_NUMPY_KIND_TO_V2 = {
    "b": {1: "BOOL"},
    "i": {1: "INT8", 2: "INT16", 4: "INT32", 8: "INT64"},
    "u": {1: "UINT8", 2: "UINT16", 4: "UINT32", 8: "UINT64"},
    "f": {2: "FP16", 4: "FP32", 8: "FP64"},
}

V2_TO_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}


def numpy_to_v2(dtype: np.dtype) -> str:
    """V2 datatype of a numpy dtype; strings, bytes and objects travel as BYTES."""
    dtype = np.dtype(dtype)
    by_size = _NUMPY_KIND_TO_V2.get(dtype.kind)
    if by_size and dtype.itemsize in by_size:
        return by_size[dtype.itemsize]
    return "BYTES"


def type_name(t: Any) -> str:
    """Short human-readable type used in error messages and metadata (`double`, `array<string>`)."""
    if isinstance(t, DataType):
        return t.name
    if isinstance(t, Array):
        return f"array<{type_name(t.dtype)}>"
    if isinstance(t, Map):
        return f"map<string, {type_name(t.value_type)}>"
    if isinstance(t, Object):
        props = ", ".join(
            f"{p.name}{'' if p.required else '?'}: {type_name(p.dtype)}" for p in t.properties
        )
        return f"object{{{props}}}"
    if isinstance(t, AnyType):
        return "any"
    if isinstance(t, np.dtype):
        return str(t)
    return str(t)


@dataclass(frozen=True)
class FieldSpec:
    """One V2 tensor as the signature defines it."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    content_type: str
    required: bool
    mlflow_type: Any
    is_tensor: bool
    #: Position in the schema: unnamed columns are matched by position.
    index: int = 0
    named: bool = True

    @property
    def column(self) -> Any:
        """The label of this field's column in the DataFrame handed to the model.

        A named ColSpec's column is its name; an unnamed one's is its position (``0``, ``1``...),
        the label MLflow's own parsing gives it (``pd.DataFrame(list)``). The V2 name (``input-0``)
        is only how clients address it: flavors read the labels (the transformers flavor turns a
        frame into ``[{label: value}]``, and refuses or rewrites text under a string label).
        """
        return self.name if self.named else self.index

    @property
    def type_label(self) -> str:
        if self.is_tensor:
            return f"{type_name(self.mlflow_type)} tensor of shape {list(self.shape)}"
        return type_name(self.mlflow_type)

    @cached_property
    def is_composite(self) -> bool:
        # Cached: asked per column on every request, and isinstance against these classes is not free.
        return isinstance(self.mlflow_type, (Array, Object, Map, AnyType))

    def to_metadata(self) -> MetadataTensor:
        params: dict[str, Any] = {"content_type": self.content_type}
        if not self.required:
            params["required"] = False
        params["mlflow_type"] = type_name(self.mlflow_type)
        return MetadataTensor(
            name=self.name,
            datatype=self.datatype,
            shape=list(self.shape),
            parameters=Parameters(**params),
        )


def _column_field(spec: ColSpec, index: int, name: str) -> FieldSpec:
    t = spec.type
    if isinstance(t, DataType):
        datatype, content_type = _COLUMN_TYPES[t]
    else:
        datatype, content_type = "BYTES", JSON_CONTENT_TYPE
    return FieldSpec(
        name=name,
        datatype=datatype,
        shape=(-1,),
        content_type=content_type,
        required=spec.required,
        mlflow_type=t,
        is_tensor=False,
        index=index,
        named=spec.name is not None,
    )


def _tensor_field(spec: TensorSpec, index: int, name: str) -> FieldSpec:
    datatype = numpy_to_v2(spec.type)
    content_type = "np" if datatype != "BYTES" else "str"
    return FieldSpec(
        name=name,
        datatype=datatype,
        shape=tuple(int(d) for d in spec.shape),
        content_type=content_type,
        required=getattr(spec, "required", True),
        mlflow_type=np.dtype(spec.type),
        is_tensor=True,
        index=index,
        named=spec.name is not None,
    )


@dataclass(frozen=True)
class SchemaPlan:
    """A schema flattened into V2 fields plus the container the model wants."""

    layout: Layout
    fields: tuple[FieldSpec, ...] = ()
    by_name: dict[str, FieldSpec] = field(default_factory=dict)

    @property
    def required_names(self) -> list[str]:
        return [f.name for f in self.fields if f.required]


def plan_inputs(schema: Optional[Schema]) -> SchemaPlan:
    """Input fields; unnamed single inputs are called ``input-0`` like MLServer's MLflow runtime."""
    return _plan(schema, unnamed=lambda i, n: f"input-{i}")


def plan_outputs(schema: Optional[Schema]) -> SchemaPlan:
    """Output fields; a single unnamed output is ``predictions`` (what MLflow's scoring server calls it)."""
    return _plan(schema, unnamed=lambda i, n: DEFAULT_OUTPUT_NAME if n == 1 else f"output-{i}")


def _plan(schema: Optional[Schema], unnamed) -> SchemaPlan:
    if schema is None or not schema.inputs:
        return SchemaPlan(layout=Layout.ANY)
    specs = schema.inputs
    n = len(specs)
    fields = []
    for i, spec in enumerate(specs):
        name = spec.name if spec.name is not None else unnamed(i, n)
        if isinstance(spec, TensorSpec):
            fields.append(_tensor_field(spec, i, str(name)))
        else:
            fields.append(_column_field(spec, i, str(name)))
    if schema.is_tensor_spec():
        layout = Layout.TENSORS if schema.has_input_names() else Layout.TENSOR
    else:
        layout = Layout.COLUMNS
    return SchemaPlan(layout=layout, fields=tuple(fields), by_name={f.name: f for f in fields})


def _json_safe(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def params_metadata(params: Optional[ParamSchema]) -> list[dict[str, Any]]:
    """Each param's name, type, default and shape, for the model metadata's ``parameters.params``."""
    if params is None:
        return []
    return [
        {
            "name": p.name,
            "type": type_name(p.dtype),
            "default": _json_safe(p.default),
            "shape": list(p.shape) if p.shape is not None else None,
        }
        for p in params.params
    ]


def metadata_tensors(plan: SchemaPlan) -> Optional[list[MetadataTensor]]:
    if plan.layout is Layout.ANY:
        return None
    return [f.to_metadata() for f in plan.fields]


def signature_parts(
    signature: Optional[ModelSignature],
) -> tuple[Optional[Schema], Optional[Schema], Optional[ParamSchema]]:
    if signature is None:
        return None, None, None
    return signature.inputs, signature.outputs, signature.params


# ----------------------------------------------------------------------------- compatibility diff


def _fields_by_name(schema: Optional[Schema], outputs: bool) -> dict[str, FieldSpec]:
    plan = plan_outputs(schema) if outputs else plan_inputs(schema)
    return dict(plan.by_name)


def _params_by_name(params: Optional[ParamSchema]) -> dict[str, str]:
    if params is None:
        return {}
    return {
        p.name: type_name(p.dtype) + (f"{list(p.shape)}" if p.shape is not None else "")
        for p in params.params
    }


def signature_diff(
    base: Optional[ModelSignature], candidate: Optional[ModelSignature], policy: str = "strict"
) -> list[str]:
    """Why ``candidate`` cannot serve in place of ``base``; empty when it can.

    ``strict``: the signatures must be equal. ``compatible``: every required input of ``base`` exists
    in ``candidate`` with the same type, ``candidate`` requires nothing ``base`` does not provide for,
    new optional inputs and new params are fine, and every output of ``base`` is still there with the
    same type — so every request valid for ``base`` stays valid, and every answer keeps its fields.
    """
    b_in, b_out, b_par = signature_parts(base)
    c_in, c_out, c_par = signature_parts(candidate)
    if (b_in is None) != (c_in is None):
        return ["one version has an input signature and the other has none"]
    problems: list[str] = []
    bi, ci = _fields_by_name(b_in, False), _fields_by_name(c_in, False)
    for name, f in bi.items():
        other = ci.get(name)
        if other is None:
            if f.required or policy == "strict":
                problems.append(f"input '{name}' ({f.type_label}) missing")
        elif other.type_label != f.type_label:
            problems.append(f"input '{name}' is {other.type_label}, expected {f.type_label}")
        elif other.required and not f.required:
            problems.append(f"input '{name}' ({f.type_label}) became required")
        elif policy == "strict" and other.required != f.required:
            problems.append(f"input '{name}' ({f.type_label}) became optional")
    for name, f in ci.items():
        if name in bi:
            continue
        if f.required:
            problems.append(f"unexpected required input '{name}' ({f.type_label})")
        elif policy == "strict":
            problems.append(f"unexpected optional input '{name}' ({f.type_label})")
    bo, co = _fields_by_name(b_out, True), _fields_by_name(c_out, True)
    for name, f in bo.items():
        other = co.get(name)
        if other is None:
            problems.append(f"output '{name}' ({f.type_label}) missing")
        elif other.type_label != f.type_label:
            problems.append(f"output '{name}' is {other.type_label}, expected {f.type_label}")
    if policy == "strict":
        problems += [f"unexpected output '{n}' ({f.type_label})" for n, f in co.items() if n not in bo]
    bp, cp = _params_by_name(b_par), _params_by_name(c_par)
    for name, t in bp.items():
        if name not in cp:
            problems.append(f"param '{name}' ({t}) missing")
        elif cp[name] != t:
            problems.append(f"param '{name}' is {cp[name]}, expected {t}")
    if policy == "strict":
        problems += [f"unexpected param '{n}' ({t})" for n, t in cp.items() if n not in bp]
    return problems
