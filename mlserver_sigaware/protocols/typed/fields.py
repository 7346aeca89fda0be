"""MLflow types -> pydantic annotations and models: the field types of the typed API (:mod:`.api`).

Why these types mirror the V2 codec rather than "nice" ones: the typed API must accept exactly what the
V2 codec accepts, or a client that validates against the OpenAPI document (:mod:`.openapi`) would be
refused values the server takes, or sent to a 400 the document did not announce. ``tests/type_cases.py``
is the table both are tested against. Hence, like the codec: strict numbers (no ``"1"``, no ``1.5`` or
``True`` for an integer, ints accepted for floats), integers range-checked for their width, ``0``/``1``
accepted for booleans, nulls accepted in every column (a missing value, NaN for floats; documented only
for optional columns, see :class:`_NullNotAdvertised`), datetimes and binary values checked by the
codec's own column decoder (ISO-8601 text, base64 text).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import re
from typing import Annotated, Any, Optional

import numpy as np
import orjson
from mlflow.types.schema import AnyType, Array, DataType, Map, Object, ParamSchema
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, RootModel, Strict, create_model
from pydantic_core import PydanticCustomError

from ...codec import decode_column, validate_params
from ...errors import InvalidInput, SigawareError
from ...signature import FieldSpec, Layout, SchemaPlan, type_name

__all__ = [
    "DATETIME_PATTERN",
    "UniqueNames",
    "json_default",
    "output_record_model",
    "params_model",
    "record_model",
    "surely_a_datetime",
    "surely_base64",
    "tensor_record_type",
]

_INT_RANGES = {DataType.integer: (-(2**31), 2**31 - 1), DataType.long: (-(2**63), 2**63 - 1)}
_FORMATS = {
    DataType.integer: "int32",
    DataType.long: "int64",
    DataType.float: "float",
    DataType.double: "double",
    DataType.binary: "byte",
}
#: Datetimes are ISO-8601 as pandas reads it (``2024-02-01``, ``2024-01-31 12:00``, offsets or not):
#: wider than OpenAPI's ``date-time`` format (RFC 3339, offset required), so no format is claimed. The
#: pattern only documents the usual forms, years 1700-2259 (pandas' nanosecond range); validation is the
#: codec's (it also takes ``2024``, ``now``; it refuses ``2024-02-30``, which the pattern lets through).
DATETIME_PATTERN = (
    r"^(1[7-9][0-9]{2}|2[01][0-9]{2}|22[0-5][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?(Z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?)?$"
)
_DATETIME = {"pattern": DATETIME_PATTERN, "example": "2024-01-31T12:00:00"}


# ----------------------------------------------------------------------------------------- scalars


def _zero_one_as_bool(value: Any) -> Any:
    """The V2 codec takes 0 and 1 (and 0.0/1.0) for booleans (``v in (0, 1)``): so do we."""
    if not isinstance(value, bool) and isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    return value


Bool01 = Annotated[bool, BeforeValidator(_zero_one_as_bool), Strict()]
StrictStr = Annotated[str, Strict()]

_INPUT_PREFIX = re.compile(r"^input '[^']*': ")


_DATETIME_FAST = re.compile(DATETIME_PATTERN)


def surely_a_datetime(value: str) -> bool:
    """True for text the codec certainly reads as a datetime: the documented pattern with a real
    calendar date (``tests/protocols/test_typed.py`` checks this against the codec). Anything else is left to the
    codec itself, which is ~100x slower per value (pandas)."""
    found = _DATETIME_FAST.match(value)
    if found is None:
        return False
    try:
        _dt.date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


def surely_base64(value: str) -> bool:
    """True for text the codec certainly decodes as base64 (its own check: ``validate=True``)."""
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _by_codec(spec: FieldSpec) -> AfterValidator:
    """Check one text value with the codec's own column decoder (its rule for datetimes, binary),
    after a fast path that accepts only what the codec accepts."""
    from mlserver.types import Parameters, RequestInput, TensorData

    binary = spec.mlflow_type is DataType.binary
    parameters = Parameters(content_type="base64") if binary else None
    surely = surely_base64 if binary else surely_a_datetime

    def check(value: str) -> str:
        if surely(value):
            return value
        inp = RequestInput.model_construct(
            name=spec.name, datatype=spec.datatype, shape=[1], parameters=parameters,
            data=TensorData.model_construct(root=[value]),
        )
        try:
            decode_column(inp, spec, [value])
        except InvalidInput as exc:
            raise PydanticCustomError("codec", "{reason}", {"reason": _INPUT_PREFIX.sub("", str(exc))})
        return value

    return AfterValidator(check)


def _column_scalar(spec: FieldSpec) -> Any:
    """A top-level column value of a scalar MLflow type (``None`` is added by the caller)."""
    t = spec.mlflow_type
    extra = {"format": _FORMATS[t]} if t in _FORMATS else (_DATETIME if t is DataType.datetime else None)
    if t is DataType.boolean:
        return Bool01
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        return Annotated[int, Strict(), Field(ge=lo, le=hi, json_schema_extra=extra)]
    if t in (DataType.float, DataType.double):
        return Annotated[float, Strict(), Field(json_schema_extra=extra)]
    if t is DataType.string:
        return StrictStr
    # binary (base64 text) and datetime (ISO-8601 text): the codec's decoder is the judge.
    return Annotated[str, Strict(), _by_codec(spec), Field(json_schema_extra=extra)]


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("required", "required (a value, not null)")
    return value


#: Scalars inside Array/Object/Map values: the codec's ``_check_composite`` checks the JSON type only.
_COMPOSITE_SCALARS: dict[DataType, Any] = {
    DataType.boolean: Annotated[bool, Strict()],
    DataType.integer: Annotated[int, Strict(), Field(json_schema_extra={"format": "int32"})],
    DataType.long: Annotated[int, Strict(), Field(json_schema_extra={"format": "int64"})],
    DataType.float: Annotated[float, Strict(), Field(json_schema_extra={"format": "float"})],
    DataType.double: Annotated[float, Strict(), Field(json_schema_extra={"format": "double"})],
    DataType.string: StrictStr,
    DataType.binary: StrictStr,
    DataType.datetime: Annotated[str, Strict(), Field(json_schema_extra=_DATETIME)],
}


# ---------------------------------------------------------------------------------------- builders


class UniqueNames:
    """Unique OpenAPI-safe class names within one model's set of generated models."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def __call__(self, wanted: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", wanted) or "Model"
        name, n = base, 1
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name


def _nullable(t: Any) -> Any:
    """``Optional[t]``; ``Any`` already takes null (and ``Optional[Any]`` documents as ``anyOf: [{}, null]``)."""
    return t if t is Any else Optional[t]


class _NullNotAdvertised:
    """Documents ``Optional[X]`` as ``X``: for values where the codec takes a null (NaN, a missing value)
    that most models then fail on (a 500 from the model). Clients following the document never send
    one; clients that do get what ``/infer`` gives them for the same null."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        branches = schema.get("anyOf")
        if branches and {"type": "null"} in branches:
            rest = [b for b in branches if b != {"type": "null"}]
            if len(rest) == 1:
                del schema["anyOf"]
                schema = {**rest[0], **schema}
            else:
                schema["anyOf"] = rest
        return schema


def _quiet_null(t: Any) -> Any:
    """Accepts null (as the codec), documents only ``t``."""
    return t if t is Any else Annotated[Optional[t], _NullNotAdvertised()]


def _composite(t: Any, owner: str, names: UniqueNames) -> Any:
    """Array -> list, Map -> dict, Object -> nested model, Any -> anything; nested values may be
    null, as the codec allows (a required Object property may not)."""
    if isinstance(t, AnyType):
        return Any
    if isinstance(t, Array):
        return list[_quiet_null(_composite(t.dtype, owner, names))]
    if isinstance(t, Map):
        return dict[str, _quiet_null(_composite(t.value_type, owner, names))]
    if isinstance(t, Object):
        fields: dict[str, Any] = {}
        for i, prop in enumerate(t.properties):
            inner = _composite(prop.dtype, f"{owner}_{prop.name}", names)
            if prop.required:
                if inner is Any:
                    inner = Annotated[Any, AfterValidator(_not_null)]
                fields[f"p{i}"] = (inner, Field(alias=prop.name, title=prop.name))
            else:
                fields[f"p{i}"] = (_nullable(inner), Field(default=None, alias=prop.name, title=prop.name))
        return create_model(names(owner), __config__=ConfigDict(extra="forbid"), **fields)
    if isinstance(t, DataType):
        return _COMPOSITE_SCALARS[t]
    return Any


def _unsupported(value: Any) -> Any:
    raise PydanticCustomError("unsupported", "tensors of this dtype cannot be sent to this model")


def _tensor_element(dtype: np.dtype, outputs: bool = False) -> Any:
    """One element of a tensor of ``dtype``, as the codec's ``decode_tensor`` takes it (in outputs,
    a float may be null: NaN has no JSON number)."""
    kind = dtype.kind
    if kind == "f":
        fmt = {4: "float", 8: "double"}.get(dtype.itemsize)
        number = Annotated[float, Strict(), Field(json_schema_extra={"format": fmt} if fmt else None)]
        return Optional[number] if outputs else _quiet_null(number)  # null -> NaN
    if kind in "iu":
        info = np.iinfo(dtype)
        extra = {"format": "int64"} if dtype.itemsize == 8 and kind == "i" else None
        return Annotated[int, Strict(), Field(ge=int(info.min), le=int(info.max), json_schema_extra=extra)]
    if kind == "b":
        return Bool01
    if kind in "OUS":
        return _quiet_null(StrictStr)
    return Annotated[Any, AfterValidator(_unsupported)]  # datetime64, complex...: V2 cannot carry them


def tensor_record_type(spec: FieldSpec, outputs: bool = False) -> Any:
    """One record (a slice along the first axis) of a tensor: nested lists of the remaining rank,
    fixed dimensions as exact lengths, -1 dimensions free."""
    item = _tensor_element(np.dtype(spec.mlflow_type), outputs)
    for dim in reversed(spec.shape[1:]):
        if dim >= 0:
            item = Annotated[list[item], Field(min_length=dim, max_length=dim)]
        else:
            item = list[item]
    return item


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError(
            "null_in_required_column",
            "null in a required column: send a value, or mark the column optional in the model's "
            "signature (required=False) to accept missing values",
        )
    return value


def _not_nullable(t: Any) -> Any:
    """A required column's value: never null (MLflow's rule, as the codec applies it), with a message
    that says so (pydantic's own would be "Input should be a valid string")."""
    if t is Any:  # documented as "anything but null" (``{}`` alone would take null)
        return Annotated[Any, BeforeValidator(_refuse_null), Field(json_schema_extra={"not": {"type": "null"}})]
    return Annotated[t, BeforeValidator(_refuse_null)]


def _field_type(spec: FieldSpec, owner: str, names: UniqueNames) -> Any:
    """A column value: an optional column takes (and documents) null, a required one refuses it."""
    if spec.is_tensor:
        return tensor_record_type(spec)
    nullable = _nullable if not spec.required else _not_nullable
    if spec.is_composite:
        return nullable(_composite(spec.mlflow_type, f"{owner}_{spec.name}", names))
    return nullable(_column_scalar(spec))


def _description(spec: FieldSpec) -> str:
    need = "required" if spec.required else "optional"
    return f"{spec.type_label} ({need}; V2 {spec.datatype}, content_type {spec.content_type})"


def record_model(
    plan: SchemaPlan, name: str = "InputRecord", extra: str = "forbid", names: Optional[UniqueNames] = None
) -> type[BaseModel]:
    """One input record: a model with one field per column / named tensor (a required one must be
    present, and not null), or, for one unnamed tensor, the row
    itself (nested lists). Without a signature, any JSON object."""
    names = names or UniqueNames()
    if plan.layout is Layout.ANY:
        return type(names(name), (RootModel[dict[str, Any]],), {"__doc__": "Any JSON object: no signature."})
    if plan.layout is Layout.TENSOR:
        spec = plan.fields[0]
        root = RootModel[tensor_record_type(spec)]  # type: ignore[misc]
        return type(names(name), (root,), {"__doc__": f"One row of the {spec.type_label}."})
    fields: dict[str, Any] = {}
    for i, spec in enumerate(plan.fields):
        annotation = _field_type(spec, name, names)
        info = Field(alias=spec.name, title=spec.name, description=_description(spec))
        if not spec.required:
            info = Field(default=None, alias=spec.name, title=spec.name, description=_description(spec))
        fields[f"f{i}"] = (annotation, info)
    return create_model(names(name), __config__=ConfigDict(extra=extra), **fields)  # type: ignore[call-overload]


def output_record_model(plan: SchemaPlan, name: str = "OutputRecord", names: Optional[UniqueNames] = None) -> type[BaseModel]:
    """One output record: a field per output of the signature. No field is required (a model may
    return fewer outputs, or others), and any value may be null (NaN, a missing value)."""
    names = names or UniqueNames()
    if plan.layout is Layout.ANY:
        return type(names(name), (RootModel[dict[str, Any]],), {"__doc__": "Any JSON object: no signature."})
    fields: dict[str, Any] = {}
    for i, spec in enumerate(plan.fields):
        if spec.is_tensor:
            annotation = Optional[tensor_record_type(spec, outputs=True)]
        elif spec.is_composite:
            annotation = _nullable(_composite(spec.mlflow_type, f"{name}_{spec.name}", names))
        else:
            annotation = Optional[_OUTPUT_SCALARS[spec.mlflow_type]]
        fields[f"f{i}"] = (annotation, Field(default=None, alias=spec.name, title=spec.name, description=spec.type_label))
    return create_model(names(name), __config__=ConfigDict(extra="allow"), **fields)  # type: ignore[call-overload]


_OUTPUT_SCALARS: dict[DataType, Any] = {
    DataType.boolean: bool,
    DataType.integer: Annotated[int, Field(json_schema_extra={"format": "int32"})],
    DataType.long: Annotated[int, Field(json_schema_extra={"format": "int64"})],
    DataType.float: Annotated[float, Field(json_schema_extra={"format": "float"})],
    DataType.double: Annotated[float, Field(json_schema_extra={"format": "double"})],
    DataType.string: str,
    DataType.binary: Annotated[str, Field(json_schema_extra={"format": "byte"})],
    DataType.datetime: Annotated[str, Field(json_schema_extra=_DATETIME)],
}


# ------------------------------------------------------------------------------------------ params


def json_default(value: Any) -> Any:
    """A param default as JSON (numpy scalars and arrays, datetimes)."""
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC))


def _by_mlflow(spec: Any) -> AfterValidator:
    """A datetime param is checked by the codec's params validation (MLflow's rule)."""

    def check(value: Any) -> Any:
        try:
            validate_params({spec.name: value}, ParamSchema([spec]))
        except SigawareError as exc:
            raise PydanticCustomError("param", "{reason}", {"reason": str(exc)})
        return value

    return AfterValidator(check)


_PARAM_SCALARS: dict[DataType, Any] = {
    DataType.boolean: Annotated[bool, Strict()],
    DataType.integer: Annotated[int, Strict(), Field(json_schema_extra={"format": "int32"})],
    DataType.long: Annotated[int, Strict(), Field(json_schema_extra={"format": "int64"})],
    DataType.float: Annotated[float, Strict(), Field(json_schema_extra={"format": "float"})],
    DataType.double: Annotated[float, Strict(), Field(json_schema_extra={"format": "double"})],
    DataType.string: StrictStr,
}


def params_model(schema: Optional[ParamSchema], name: str = "Params") -> type[BaseModel]:
    """The params: one optional field per param, with its default. As the V2 route: strict types,
    no range check (MLflow's), a list for a ``(-1,)`` param, null only where the default is null;
    unknown params refused. Without a params schema, no params at all."""
    fields: dict[str, Any] = {}
    for i, spec in enumerate(schema.params if schema is not None else []):
        t = spec.dtype
        if t is DataType.datetime:
            item: Any = Annotated[str, Strict(), _by_mlflow(spec), Field(json_schema_extra=_DATETIME)]
        else:
            item = _PARAM_SCALARS.get(t, Any) if isinstance(t, DataType) else Any
        annotation = list[_quiet_null(item)] if spec.shape is not None else item
        default = json_default(spec.default)
        if default is None:
            annotation = Optional[annotation]
        shape = f" of shape {list(spec.shape)}" if spec.shape is not None else ""
        fields[f"p{i}"] = (
            annotation,
            Field(default=default, alias=spec.name, title=spec.name, description=f"{type_name(t)}{shape}"),
        )
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)  # type: ignore[call-overload]
