"""An input whose ``data`` is an ndarray decodes exactly as the list ``ndarray.tolist()`` would.

Binary tensors and large JSON float arrays reach the decoder as ndarrays (``_patches/v2_infer.py``); the
decoder takes them without going through a list where it can (the all-float block, numeric columns and
tensors) and turns them into that list elsewhere. For random requests on signatures of every kind, the
request with arrays and the same request with lists must give the same model input, or the same 400.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mlflow.types.schema import Array, ColSpec, DataType, Schema, TensorSpec
from mlserver.types import InferenceRequest

from mlserver_sigaware.errors import InvalidInput
from tests.codec.codec_cases import MIXED, decoder

DOUBLES = Schema([ColSpec("double", "a"), ColSpec("double", "b"), ColSpec("double", "c")])
FLOATS = Schema([ColSpec("float", "a"), ColSpec("double", "b"), ColSpec("float", "c", required=False)])
INTS = Schema([ColSpec("long", "a"), ColSpec("integer", "b"), ColSpec("boolean", "c")])
COMPOSITE = Schema([ColSpec(Array(DataType.double), "a"), ColSpec(Array(DataType.long), "b"), ColSpec("string", "c")])
TENSOR = Schema([TensorSpec(np.dtype(np.float32), (-1, 2))])
INT_TENSOR = Schema([TensorSpec(np.dtype(np.int32), (-1, 2))])
TENSORS = Schema([TensorSpec(np.dtype(np.float64), (-1,), "a"), TensorSpec(np.dtype(np.uint8), (-1,), "b")])
SCHEMAS = {
    "doubles": DOUBLES,
    "floats": FLOATS,
    "ints": INTS,
    "composite": COMPOSITE,
    "mixed": MIXED,
    "tensor": TENSOR,
    "int_tensor": INT_TENSOR,
    "tensors": TENSORS,
    "none": None,
}

_DTYPES = {
    "FP64": np.float64,
    "FP32": np.float32,
    "FP16": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
}


def _same_list(a: list, b: list) -> bool:
    """Element by element, type and bits (so 1 is not 1.0, -0.0 is not 0.0, NaN is NaN)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if struct.pack("<d", x) != struct.pack("<d", y):
                return False
        elif x != y:
            return False
    return True


def _as_array(values: list, dtype) -> np.ndarray | None:
    """``values`` as an ndarray of ``dtype`` when that array stands exactly for them, else ``None``."""
    try:
        with np.errstate(all="ignore"):
            arr = np.array(values, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.ndim != 1 or not _same_list(arr.tolist(), values):
        return None
    return arr


_VALUE = st.one_of(
    st.floats(width=64),
    st.floats(width=32),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-3, max_value=300),
    st.booleans(),
    st.none(),
    st.sampled_from(["x", "1.5", "2024-01-01"]),
)


@st.composite
def _inputs(draw):
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "input-0", "id", "score", "flag"]), min_size=1, max_size=3))
    rows = draw(st.integers(min_value=0, max_value=6))
    out = []
    for name in names:
        datatype = draw(st.sampled_from(sorted(_DTYPES) + ["BYTES"]))
        width = draw(st.sampled_from([1, 1, 2]))
        kind = draw(st.sampled_from(["float", "int", "bool", "any"]))
        element = {
            "float": st.floats(width=64),
            "int": st.integers(min_value=-(2**63), max_value=2**64 - 1),
            "bool": st.booleans(),
            "any": _VALUE,
        }[kind]
        values = draw(st.lists(element, min_size=rows * width, max_size=rows * width + draw(st.sampled_from([0, 0, 1]))))
        shape = [rows, width] if width > 1 or draw(st.booleans()) else [rows]
        dtype = draw(st.sampled_from([_DTYPES.get(datatype, np.float64), np.float64, np.float32, np.int64, np.bool_]))
        out.append({"name": name, "datatype": datatype, "shape": shape, "data": values, "dtype": dtype})
    return out


def _decode(schema, request: InferenceRequest, **kw):
    try:
        return decoder(schema, **kw).decode_inputs(request)
    except InvalidInput as exc:
        return f"400: {exc}"


def _assert_same(got, want):
    if isinstance(want, str):
        assert isinstance(got, str) and got == want, got
    elif isinstance(want, pd.DataFrame):
        assert isinstance(got, pd.DataFrame), got
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert list(got.dtypes) == list(want.dtypes)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k])
    else:
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape, (got, want)
        np.testing.assert_array_equal(got, want)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(schema="doubles", inputs=[
    {"name": n, "datatype": "FP64", "shape": [2], "data": [1.5, float("nan")], "dtype": np.float64} for n in "abc"
])
@example(schema="ints", inputs=[{"name": "a", "datatype": "UINT64", "shape": [1], "data": [2**63], "dtype": np.uint64}])
@given(schema=st.sampled_from(sorted(SCHEMAS)), inputs=_inputs())
def test_array_data_decodes_as_its_list(schema, inputs):
    as_lists = InferenceRequest(inputs=[{k: v for k, v in i.items() if k != "dtype"} for i in inputs])
    with_arrays = InferenceRequest(inputs=[{k: v for k, v in i.items() if k != "dtype"} for i in inputs])
    converted = 0
    for inp, raw in zip(with_arrays.inputs, inputs):
        arr = _as_array(raw["data"], raw["dtype"])
        if arr is not None:
            arr.flags.writeable = False  # as np.frombuffer over a request body gives it
            inp.data.root = arr
            converted += 1
    want = _decode(SCHEMAS[schema], as_lists, unknown_inputs="ignore")
    got = _decode(SCHEMAS[schema], with_arrays, unknown_inputs="ignore")
    _assert_same(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("rows", [1, 5000])
def test_float_arrays_take_the_block_and_models_may_write_their_input(dtype, rows):
    values = {n: (np.arange(rows, dtype=np.float64) / 7 + i).astype(dtype) for i, n in enumerate("abc")}
    datatype = {np.float64: "FP64", np.float32: "FP32", np.float16: "FP16"}[dtype]
    request = InferenceRequest(inputs=[{"name": n, "datatype": datatype, "shape": [rows], "data": []} for n in "abc"])
    for inp in request.inputs:
        arr = values[inp.name].copy()
        arr.flags.writeable = False
        inp.data.root = arr
    dec = decoder(DOUBLES)
    frame = dec.decode_inputs(request)
    assert dec._array_uniform_frame({i.name: i for i in request.inputs}) is not None
    for n in "abc":
        np.testing.assert_array_equal(frame[n].to_numpy(), values[n].astype(np.float64))
    frame.iloc[0, 0] = -1.0  # the model's own copy: the request's read-only arrays are not its block
    assert not math.isclose(float(values["a"][0]), -1.0)


def test_tensor_from_a_read_only_array_is_a_writable_copy():
    arr = np.arange(8, dtype=np.float32)
    arr.flags.writeable = False
    request = InferenceRequest(inputs=[{"name": "x", "datatype": "FP32", "shape": [4, 2], "data": []}])
    request.inputs[0].data.root = arr
    tensor = decoder(TENSOR).decode_inputs(request)
    assert tensor.dtype == np.float32 and tensor.shape == (4, 2) and tensor.flags.writeable
    np.testing.assert_array_equal(tensor.ravel(), arr)
