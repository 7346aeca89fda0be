"""THE table of what a value of each MLflow type may be, shared by two tests:

* ``tests/protocols/test_typed.py`` validates each value with the typed API's generated record model
  (:mod:`mlserver_sigaware.protocols.typed`);
* ``tests/codec/test_type_cases_codec.py`` sends each value, as a V2 client would (:func:`v2_request`),
  through the V2 codec (:class:`mlserver_sigaware.codec.RequestDecoder`).

Both must say ``accepted``. Where the codec does something else, the row says what (``codec=``) and
why (``why=``): these are the places the typed API is stricter on purpose, and each one is reported to
the codec's owners. ``codec_bug=`` marks a codec crash (an exception other than a 400), an ``xfail``.

A column value is one cell (one record ``{"c": value}``) of a *required* column ``c``, where a null is
refused as MLflow's signatures mean it (a column that may be missing is ``required=False``; nulls in
optional columns are tested beside the table); a tensor value is one record, i.e. one slice along the
tensor's first axis (a number for shape ``(-1,)``, a list for ``(-1, 4)``...).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from itertools import chain
from typing import Any, Optional

from mlflow.types.schema import AnyType, Array, DataType, Map, Object, Property
from mlserver.types import InferenceRequest

from mlserver_sigaware.codec import RequestDecoder
from mlserver_sigaware.errors import InvalidInput
from mlserver_sigaware.signature import plan_inputs

__all__ = ["CASES", "PARAM_CASES", "ParamCase", "Tensor", "TypeCase", "codec_accepts", "input_schema", "param_schema", "v2_request"]


@dataclass(frozen=True)
class Tensor:
    """A TensorSpec's dtype and shape (the table's "MLflow type" for tensor rows)."""

    dtype: str
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"tensor<{self.dtype}{list(self.shape)}>"


@dataclass(frozen=True)
class TypeCase:
    value: Any
    mlflow_type: Any  # DataType, Array, Object, Map, AnyType or Tensor
    accepted: bool
    #: What the V2 codec does where it differs from ``accepted`` (then ``why`` says why we differ).
    codec: Optional[bool] = None
    #: The codec raises this instead of answering 400 (a codec bug: xfail on the codec side).
    codec_bug: Optional[type] = None
    why: str = ""

    @property
    def codec_accepts(self) -> bool:
        return self.accepted if self.codec is None else self.codec

    @property
    def id(self) -> str:
        t = self.mlflow_type
        label = t.name if isinstance(t, DataType) else str(t).replace(" ", "")
        return f"{label}={self.value!r}"[:80]


def C(value: Any, t: Any, accepted: bool, **kw: Any) -> TypeCase:
    return TypeCase(value, t, accepted, **kw)


D = DataType
_FLATTENED = "the codec flattens nested REST `data`: a one-element list passes for a scalar"
_NUMPY_MIX = "np.asarray([True, 2, ...]) is a numeric array, so the codec's 'no booleans' check misses it"
_OBJ = Object([Property("a", "long"), Property("b", "string", required=False)])

CASES: list[TypeCase] = [
    # ---------------------------------------------------------------- boolean (V2 BOOL)
    C(True, D.boolean, True),
    C(False, D.boolean, True),
    C(1, D.boolean, True),  # the codec takes 0/1 for BOOL
    C(0, D.boolean, True),
    C(1.0, D.boolean, True),  # ...and 0.0/1.0 (`v in (0, 1)`)
    C(2, D.boolean, False),
    C("true", D.boolean, False),
    C(None, D.boolean, False),  # null in a required column (the table's 'c' is): optional columns take it
    C([True], D.boolean, False, codec=True, why=_FLATTENED),
    # ---------------------------------------------------------------- integer (INT32)
    C(1, D.integer, True),
    C(-(2**31), D.integer, True),
    C(2**31 - 1, D.integer, True),
    C(2**31, D.integer, False),
    C(-(2**31) - 1, D.integer, False),
    C(1.0, D.integer, False),  # floats never become ints, even whole ones
    C(1.5, D.integer, False),
    C(True, D.integer, False),
    C("1", D.integer, False),
    C(None, D.integer, False),  # null in a required column (the table's 'c' is): optional columns take it
    C(2**64, D.integer, False),
    C([1], D.integer, False, codec=True, why=_FLATTENED),
    # ---------------------------------------------------------------- long (INT64)
    C(7, D.long, True),
    C(2**63 - 1, D.long, True),
    C(-(2**63), D.long, True),
    C(2**63, D.long, False),
    C(-(2**63) - 1, D.long, False),
    C(1.0, D.long, False),
    C(True, D.long, False),
    C("7", D.long, False),
    C(None, D.long, False),  # null in a required column (the table's 'c' is): optional columns take it
    # ---------------------------------------------------------------- float (FP32) / double (FP64)
    C(1, D.float, True),  # ints widen to floats
    C(1.5, D.float, True),
    C(1e39, D.float, True),  # the codec's astype(float32) makes it inf
    C(True, D.float, False),
    C("1.5", D.float, False),
    C(None, D.float, False),  # null in a required column (the table's 'c' is): optional columns take it
    C(1, D.double, True),
    C(-0.0, D.double, True),
    C(1e308, D.double, True),
    C(True, D.double, False),
    C("1.5", D.double, False),
    C({"a": 1}, D.double, False),
    C(None, D.double, False),  # null in a required column (the table's 'c' is): optional columns take it
    C([1.5], D.double, False, codec=True, why=_FLATTENED),
    # ---------------------------------------------------------------- string (BYTES, str)
    C("x", D.string, True),
    C("", D.string, True),
    C("gr\u00fc\u00df \u2603", D.string, True),
    C(1, D.string, False),
    C(True, D.string, False),
    C({"a": 1}, D.string, False),
    C(None, D.string, False),  # null in a required column (the table's 'c' is): optional columns take it
    C(["x"], D.string, False, codec=True, why=_FLATTENED),
    # ---------------------------------------------------------------- binary (BYTES, base64)
    C("eA==", D.binary, True),
    C("", D.binary, True),
    C("x", D.binary, False),
    C("eA", D.binary, False),  # unpadded
    C("e A==", D.binary, False),
    C(1, D.binary, False),
    C(None, D.binary, False),  # null in a required column (the table's 'c' is): optional columns take it
    # ---------------------------------------------------------------- datetime (BYTES, ISO-8601)
    C("2024-01-31T12:00:00", D.datetime, True),
    C("2024-02-01", D.datetime, True),
    C("2024-01-31T12:00:00+02:00", D.datetime, True),
    C("2024-01-31T12:00:00Z", D.datetime, True),
    C("2024-01-31 12:00", D.datetime, True),
    C("2024-01-31T12:00:00.123456789", D.datetime, True),
    C("2024", D.datetime, True),  # pandas' ISO-8601 reading
    C("2024-13-01", D.datetime, False),
    C("2024-02-30", D.datetime, False),
    C("12:00", D.datetime, False),
    C("nope", D.datetime, False),
    C(1706702400, D.datetime, False),  # no epoch numbers
    C(None, D.datetime, False),  # null in a required column (the table's 'c' is): optional columns take it
    # ---------------------------------------------------------------- Array (BYTES, one JSON document per row)
    C(["x", "y"], Array(D.string), True),
    C([], Array(D.string), True),
    C([None], Array(D.string), True),
    C(None, Array(D.string), False),  # null in a required column (the table's 'c' is): optional columns take it
    C([1], Array(D.string), False),
    C("x", Array(D.string), False),
    C('["x"]', Array(D.string), False),  # JSON text is the V2 wire form, not a typed value
    C({"a": "x"}, Array(D.string), False),
    C([1, 2], Array(D.long), True),
    C([2**40], Array(D.integer), True),  # composites: JSON types only, no range (MLflow checks later)
    C([1.0], Array(D.long), False),
    C([True], Array(D.long), False),
    C([[1]], Array(D.long), False),
    C([[1.0, 2]], Array(Array(D.double)), True),
    C([[None]], Array(Array(D.double)), True),
    C([["x"]], Array(Array(D.double)), False),
    C([1.0], Array(Array(D.double)), False),
    C([True], Array(D.boolean), True),
    C([1], Array(D.boolean), False),  # inside composites, booleans are strict
    C(["2024-01-01"], Array(D.datetime), True),
    C(["nope"], Array(D.datetime), True),  # only the JSON type is checked here (MLflow's enforcement decides)
    C([1], Array(D.datetime), False),
    C(["eA=="], Array(D.binary), True),
    C([1], Array(D.binary), False),
    # ---------------------------------------------------------------- Object
    C({"a": 1}, _OBJ, True),
    C({"a": 1, "b": "x"}, _OBJ, True),
    C({"a": 1, "b": None}, _OBJ, True),
    C(None, _OBJ, False),  # null in a required column (the table's 'c' is): optional columns take it
    C({"b": "x"}, _OBJ, False),
    C({"a": None}, _OBJ, False),  # a required property may not be null
    C({}, _OBJ, False),
    C({"a": 1, "c": 2}, _OBJ, False),
    C({"a": 1.0}, _OBJ, False),
    C([], _OBJ, False),
    C([{"a": 1}], Array(_OBJ), True),
    C([{"b": "x"}], Array(_OBJ), False),
    # ---------------------------------------------------------------- Map
    C({"k": 1}, Map(D.double), True),
    C({"k": 1.5}, Map(D.double), True),
    C({}, Map(D.double), True),
    C({"k": None}, Map(D.double), True),
    C(None, Map(D.double), False),  # null in a required column (the table's 'c' is): optional columns take it
    C({"k": "x"}, Map(D.double), False),
    C({"k": True}, Map(D.double), False),
    C([], Map(D.double), False),
    C({"k": [True, None]}, Map(Array(D.boolean)), True),
    C({"k": [1]}, Map(Array(D.boolean)), False),
    # ---------------------------------------------------------------- Any
    C(1, AnyType(), True),
    C("x", AnyType(), True),
    C(None, AnyType(), False),  # null in a required column (the table's 'c' is): optional columns take it
    C(True, AnyType(), True),
    C([1, {"a": 2}], AnyType(), True),
    C({"a": [1]}, AnyType(), True),
    # ---------------------------------------------------------------- tensors (one record = one row)
    C([1, 2, 3, 4.5], Tensor("float32", (-1, 4)), True),
    C([None, 1, 2, 3], Tensor("float32", (-1, 4)), True),  # null -> NaN in float tensors
    C([1, 2, 3], Tensor("float32", (-1, 4)), False),
    C([1, 2, 3, 4, 5], Tensor("float32", (-1, 4)), False),
    C(["1", 2, 3, 4], Tensor("float32", (-1, 4)), False),
    C([[1, 2, 3, 4]], Tensor("float32", (-1, 4)), False),
    C([True, 2, 3, 4], Tensor("float32", (-1, 4)), False, codec=True, why=_NUMPY_MIX),
    C(1.5, Tensor("float64", (-1,)), True),
    C(1, Tensor("float64", (-1,)), True),
    C(None, Tensor("float64", (-1,)), True),
    C(True, Tensor("float64", (-1,)), False),
    C("x", Tensor("float64", (-1,)), False),
    C([1.0], Tensor("float64", (-1,)), False),
    C([], Tensor("float64", (-1, -1)), True),
    C([1.0, 2.0], Tensor("float64", (-1, -1)), True),
    C([[1.0]], Tensor("float64", (-1, -1)), False),
    C([[1, 2], [3, 4]], Tensor("float64", (-1, 2, 2)), True),
    C([[1, 2]], Tensor("float64", (-1, 2, 2)), False),
    C(127, Tensor("int8", (-1,)), True),
    C(128, Tensor("int8", (-1,)), False),
    C(-129, Tensor("int8", (-1,)), False),
    C(1.0, Tensor("int8", (-1,)), False),
    C(True, Tensor("int8", (-1,)), False),
    C(None, Tensor("int8", (-1,)), False),  # no nulls in integer tensors
    C(255, Tensor("uint8", (-1,)), True),
    C(-1, Tensor("uint8", (-1,)), False),
    C(256, Tensor("uint8", (-1,)), False),
    C(2**63 - 1, Tensor("int64", (-1,)), True),
    C(2**63, Tensor("int64", (-1,)), False),
    C(2**64 - 1, Tensor("uint64", (-1,)), True),
    C(2**64, Tensor("uint64", (-1,)), False),
    C(True, Tensor("bool", (-1,)), True),
    C(1, Tensor("bool", (-1,)), True),
    C(2, Tensor("bool", (-1,)), False),
    C(None, Tensor("bool", (-1,)), False),
    C("x", Tensor("object", (-1,)), True),
    C(None, Tensor("object", (-1,)), True),
    C(1, Tensor("object", (-1,)), False),
    C("x", Tensor("str", (-1,)), True),
    C(None, Tensor("str", (-1,)), True),  # (the codec makes it the text 'None')
    C(1, Tensor("str", (-1,)), False),
]


@dataclass(frozen=True)
class ParamCase:
    """A param value for ``ParamSpec("p", dtype, default, shape)``."""

    value: Any
    dtype: str
    default: Any
    accepted: bool
    shape: Optional[tuple[int, ...]] = None
    codec: Optional[bool] = None
    why: str = ""

    @property
    def codec_accepts(self) -> bool:
        return self.accepted if self.codec is None else self.codec

    @property
    def id(self) -> str:
        shape = f"{list(self.shape)}" if self.shape else ""
        return f"{self.dtype}{shape}={self.value!r}"


_GRPC_TEXT = "V2 parses text params because gRPC carries no doubles (codec._v2_param_values); JSON has numbers"
_NOW = dt.datetime(2024, 1, 1)

PARAM_CASES: list[ParamCase] = [
    ParamCase(2.5, "double", 1.0, True),
    ParamCase(2, "double", 1.0, True),
    ParamCase(True, "double", 1.0, False),
    ParamCase(None, "double", 1.0, False),  # null only where the default is null
    ParamCase("2.5", "double", 1.0, False, codec=True, why=_GRPC_TEXT),
    ParamCase(3, "long", 1, True),
    ParamCase(2**63, "long", 1, True),  # MLflow checks no range
    ParamCase(3.0, "long", 1, False),
    ParamCase("3", "long", 1, False, codec=True, why=_GRPC_TEXT),
    ParamCase(True, "boolean", False, True),
    ParamCase(1, "boolean", False, False),
    ParamCase("true", "boolean", False, False, codec=True, why=_GRPC_TEXT),
    ParamCase("x", "string", "", True),
    ParamCase(1, "string", "", False),
    ParamCase(None, "string", "", False),
    ParamCase(None, "string", None, True),
    ParamCase([1, 2.5], "double", [1.0], True, shape=(-1,)),
    ParamCase([], "double", [1.0], True, shape=(-1,)),
    ParamCase(1.5, "double", [1.0], False, shape=(-1,)),
    ParamCase(["a"], "double", [1.0], False, shape=(-1,)),
    ParamCase("[1.0]", "double", [1.0], False, shape=(-1,), codec=True, why=_GRPC_TEXT),
    ParamCase("2024-01-31T12:00:00", "datetime", _NOW, True),
    ParamCase("2024-01-31", "datetime", _NOW, True),
    ParamCase("nope", "datetime", _NOW, False),
    ParamCase(1, "datetime", _NOW, False),
]


def input_schema(t: Any):
    """A one-input signature schema for a table type: column ``c``, or one unnamed tensor."""
    import numpy as np
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    if isinstance(t, Tensor):
        return Schema([TensorSpec(np.dtype(t.dtype), t.shape)])
    return Schema([ColSpec(t, "c")])


def param_schema(case: ParamCase):
    from mlflow.types.schema import ParamSchema, ParamSpec

    return ParamSchema([ParamSpec("p", case.dtype, case.default, case.shape)])


# ------------------------------------------------------------- a table value as a V2 client sends it


def _row_shape(value) -> tuple[list[int], list]:
    """Shape and flat values of one (regular) tensor row."""
    shape, level = [], [value]
    while level and all(isinstance(v, list) for v in level):
        shape.append(len(level[0]))
        level = list(chain.from_iterable(level))
    return shape, level


def v2_request(case: TypeCase) -> InferenceRequest:
    """One row carrying ``case.value``: datatype and content type from the signature's metadata,
    composite values as JSON text, a tensor row as a ``[1, ...]`` tensor."""
    plan = plan_inputs(input_schema(case.mlflow_type))
    spec = plan.fields[0]
    if isinstance(case.mlflow_type, Tensor):
        shape, flat = _row_shape(case.value)
        return InferenceRequest(inputs=[{"name": spec.name, "datatype": spec.datatype, "shape": [1] + shape, "data": flat}])
    value = case.value
    if spec.is_composite and value is not None:
        value = json.dumps(value)
    inp = {"name": spec.name, "datatype": spec.datatype, "shape": [1], "data": [value]}
    if spec.content_type in ("base64", "json"):
        inp["parameters"] = {"content_type": spec.content_type}
    return InferenceRequest(inputs=[inp])


def codec_accepts(case: TypeCase) -> bool:
    """The V2 codec decodes the value without a 400 (any other exception propagates: a codec bug)."""
    decoder = RequestDecoder(plan_inputs(input_schema(case.mlflow_type)))
    try:
        decoder.decode_inputs(v2_request(case))
    except InvalidInput:
        return False
    return True
