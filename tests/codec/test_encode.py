"""Encoding predictions by the output signature: names, datatypes, casts, and broken promises."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pandas as pd
import pytest
from mlflow.types.schema import (
    Array,
    ColSpec,
    DataType,
    Schema,
    TensorSpec,
)

from mlserver_sigaware.errors import InvalidInput, OutputEncodingError
from tests.codec.codec_cases import MIXED, decoder, encode, inp, mixed_request, request  # noqa: F401


# ------------------------------------------------------------------------------------------ encode


def test_dataframe_output_one_output_per_column_pandas3_strings():
    df = pd.DataFrame(
        {
            "n": np.array([1, 2], dtype=np.int64),
            "s": pd.Series(["a", None], dtype="string"),
            "t": pd.to_datetime(["2024-01-01T00:00:00", "2024-01-02T03:04:05"]),
            "tz": pd.to_datetime(["2024-01-01T00:00:00+02:00", "2024-01-02T00:00:00+02:00"]),
            "ni": pd.array([1, None], dtype="Int64"),
            "nb": pd.array([True, None], dtype="boolean"),
            "str3": pd.Series(["x", "y"], dtype="str"),
        }
    )
    out = encode(df)
    assert (out["n"].datatype, out["n"].shape, out["n"].data.root) == ("INT64", [2], [1, 2])
    assert (out["s"].datatype, out["s"].data.root) == ("BYTES", [b"a", None])
    assert out["t"].data.root == [b"2024-01-01T00:00:00", b"2024-01-02T03:04:05"]
    assert out["t"].parameters.content_type == "datetime"
    assert out["tz"].data.root[0] == b"2024-01-01T00:00:00+02:00"
    assert (out["ni"].datatype, out["ni"].data.root) == ("INT64", [1, None])
    assert (out["nb"].datatype, out["nb"].data.root) == ("BOOL", [True, None])
    assert (out["str3"].datatype, out["str3"].data.root) == ("BYTES", [b"x", b"y"])


def test_output_signature_names_unnamed_results_and_casts():
    schema = Schema([TensorSpec(np.dtype("float64"), (-1,))])
    out = encode(np.array([1, 2], dtype=np.int32), schema)
    assert list(out) == ["predictions"]
    assert out["predictions"].datatype == "FP64" and out["predictions"].data.root == [1.0, 2.0]


def test_records_become_one_output_per_field():
    out = encode([{"translation_text": "Hallo"}, {"translation_text": "Welt"}],
                 Schema([ColSpec("string", "translation_text")]))
    assert out["translation_text"].data.root == [b"Hallo", b"Welt"]
    assert out["translation_text"].shape == [2]


def test_dict_of_arrays_keeps_names_and_shapes():
    out = encode({"a": np.zeros((2, 3)), "b": np.array([1, 2])})
    assert out["a"].shape == [2, 3] and out["a"].datatype == "FP64"
    assert out["b"].datatype == "INT64"


def test_positional_dataframe_columns_take_signature_names():
    schema = Schema([ColSpec("double", "lo"), ColSpec("double", "hi")])
    out = encode(pd.DataFrame([[1.0, 2.0]]), schema)
    assert list(out) == ["lo", "hi"]
    out = encode(np.array([[1.0, 2.0]]), schema)
    assert list(out) == ["lo", "hi"]


def test_requested_outputs_select():
    out = encode(pd.DataFrame({"a": [1], "b": [2]}), requested=["b"])
    assert list(out) == ["b"]
    with pytest.raises(InvalidInput, match=r"unknown output \['c'\]; available outputs: \['a', 'b'\]"):
        encode(pd.DataFrame({"a": [1], "b": [2]}), requested=["c"])


def test_output_that_breaks_its_promise_is_500():
    with pytest.raises(OutputEncodingError) as err:
        encode(np.array(["x"]), Schema([ColSpec("double", "y")]))
    assert err.value.status_code == 500 and "'y'" in str(err.value)


def test_binary_and_composite_outputs():
    schema = Schema([ColSpec("binary", "b"), ColSpec(Array(DataType.long), "l")])
    out = encode(pd.DataFrame({"b": [b"\x00\xff"], "l": [[1, 2]]}), schema)
    assert base64.b64decode(out["b"].data.root[0]) == b"\x00\xff"
    assert orjson.loads(out["l"].data.root[0]) == [1, 2]




# ------------------------------------------------------------------ outputs never change silently


@pytest.mark.parametrize(
    "mlflow_type,values,bad",
    [
        ("long", np.array([5.0, 5.48]), 5.48),  # the case: was sent as 5
        ("long", np.array([1.0, np.nan]), np.nan),
        ("integer", np.array([1, 2**40], dtype=np.int64), 2**40),
        ("boolean", np.array([0, 2]), 2),
        ("float", np.array([0.5, 1e300]), 1e300),
        ("long", pd.array([1, None, 2**70 // 2**10], dtype="Int64"), None),  # fits: no error
    ],
)
def test_outputs_that_do_not_fit_the_signature_are_a_500_naming_them(mlflow_type, values, bad):
    from mlserver_sigaware.errors import OutputEncodingError

    schema = Schema([ColSpec(mlflow_type, "y")])
    if bad is None:
        encode(pd.DataFrame({"y": values}), schema)
        return
    with pytest.raises(OutputEncodingError, match=r"output 'y': the model returned .* cannot hold") as info:
        encode(pd.DataFrame({"y": values}), schema)
    assert info.value.status_code == 500
    assert repr(bad) in str(info.value) or (bad != bad and "nan" in str(info.value))


@pytest.mark.parametrize(
    "mlflow_type,values,sent",
    [
        ("long", np.array([5.0, -2.0]), [5, -2]),  # integral floats fit a long exactly
        ("float", np.array([0.1]), [np.float32(0.1).item()]),  # float precision is not a change
        ("double", np.array([1, 2], dtype=np.int64), [1.0, 2.0]),
        ("boolean", np.array([0, 1]), [False, True]),
        ("long", np.array([True, False]), [1, 0]),
    ],
)
def test_outputs_that_fit_losslessly_are_cast(mlflow_type, values, sent):
    out = encode(pd.DataFrame({"y": values}), Schema([ColSpec(mlflow_type, "y")]))
    assert out["y"].data.root == sent
