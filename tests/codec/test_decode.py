"""Decoding V2 requests by the signature: containers, dtypes, and every 400 naming its input."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.types.schema import (
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    Property,
    Schema,
    TensorSpec,
)

from mlserver_sigaware.errors import InvalidInput
from tests.codec.codec_cases import MIXED, decoder, encode, inp, mixed_request, request  # noqa: F401


# ------------------------------------------------------------------------------------------ decode


def test_mixed_columns_decode_to_signature_dtypes():
    df, params = decoder(MIXED).decode(mixed_request())
    assert params is None
    assert list(df.columns) == ["id", "score", "name", "flag", "when", "blob"]
    assert df["id"].dtype == np.int64
    assert df["score"].dtype == np.float64
    assert df["flag"].dtype == bool
    assert pd.api.types.is_string_dtype(df["name"]) and list(df["name"]) == ["ann", "bob"]
    assert pd.api.types.is_datetime64_any_dtype(df["when"])
    assert df["when"][0] == pd.Timestamp("2024-01-31T12:00:00")
    assert list(df["blob"]) == [b"\x00\x01", b"xyz"]


def test_bytes_from_grpc_decode_as_str():
    df, _ = decoder(MIXED).decode(mixed_request(name=inp("name", "BYTES", [b"ann", "b\xc3\xb6b".encode("latin-1")])))
    assert list(df["name"]) == ["ann", "b\u00c3\u00b6b".encode("latin-1").decode("utf-8")]


def test_columns_are_ordered_by_signature_and_order_of_request_does_not_matter():
    req = mixed_request()
    req.inputs.reverse()
    df, _ = decoder(MIXED).decode(req)
    assert list(df.columns) == ["id", "score", "name", "flag", "when", "blob"]


def test_optional_column_may_be_sent():
    df, _ = decoder(MIXED).decode(mixed_request(note=inp("note", "BYTES", ["x", None])))
    assert list(df["note"]) == ["x", None] or df["note"].isna().iloc[1]


def test_int_widens_to_double_and_shape_n_by_1_is_a_column():
    df, _ = decoder(Schema([ColSpec("double", "x")])).decode(request(inp("x", "INT32", [[1], [2]], [2, 1])))
    assert df["x"].dtype == np.float64
    assert list(df["x"]) == [1.0, 2.0]


def test_null_in_optional_long_column_gives_nullable_ints():
    df, _ = decoder(Schema([ColSpec("long", "x", required=False)])).decode(request(inp("x", "INT64", [1, None])))
    assert str(df["x"].dtype) == "Int64"
    assert df["x"].isna().tolist() == [False, True]


# One null of each scalar type, in the mixed signature's required columns (V2 JSON sends null; gRPC can
# only send a NaN, in a float column).
_NULLS = {
    "id": inp("id", "INT64", [1, None]),
    "score": inp("score", "FP64", [0.5, None]),
    "name": inp("name", "BYTES", ["ann", None]),
    "flag": inp("flag", "BOOL", [True, None]),
    "when": inp("when", "BYTES", ["2024-01-31T12:00:00", None]),
    "blob": inp("blob", "BYTES", ["AAE=", None], content_type="base64"),
}


@pytest.mark.parametrize("column", list(_NULLS))
def test_null_in_a_required_column_is_a_400_naming_it(column):
    """MLflow's rule: a required column is one with no missing values (infer_signature marks a column
    with nulls optional); the model would get NaN/None/NA where its signature promised a value."""
    with pytest.raises(InvalidInput, match=rf"input '{column}': null at row 1, but '{column}' is a required"):
        decoder(MIXED).decode(mixed_request(**{column: _NULLS[column]}))


@pytest.mark.parametrize("column", list(_NULLS))
def test_invocations_decoder_passes_nulls_on_as_mlflow_does(column):
    """``/invocations`` keeps MLflow's scoring-server behaviour: the null reaches the model."""
    decoder(MIXED, refuse_nulls=False).decode(mixed_request(**{column: _NULLS[column]}))


def test_nan_in_a_required_float_column_is_refused_on_every_decoding_path():
    """A NaN (what gRPC's fp64_contents can carry) counts as missing; the uniform fast paths agree."""
    schema = Schema([ColSpec("double", "a"), ColSpec("double", "b")])
    for rows in (2, 5000):  # the small and the large uniform paths
        values = [1.0] * rows
        with pytest.raises(InvalidInput, match=rf"input 'b': null at row {rows - 1}"):
            decoder(schema).decode(request(inp("a", "FP64", values), inp("b", "FP64", values[:-1] + [float("nan")])))
    optional = Schema([ColSpec("double", "a"), ColSpec("double", "b", required=False)])
    df, _ = decoder(optional).decode(request(inp("a", "FP64", [1.0]), inp("b", "FP64", [float("nan")])))
    assert np.isnan(df["b"][0])
    with pytest.raises(InvalidInput, match="input 'a': null at row 0"):
        decoder(optional).decode(request(inp("a", "FP64", [float("nan")]), inp("b", "FP64", [1.0])))


def test_nulls_in_tensors_follow_mlflow_tensor_rules():
    """TensorSpecs have no optional elements: null is NaN in a float tensor (as MLflow parses it)."""
    arr = decoder(Schema([TensorSpec(np.dtype("float32"), (-1, 2))])).decode_inputs(
        request(inp("t", "FP32", [1.0, None], [1, 2]))
    )
    assert np.isnan(arr[0, 1])


def test_binary_raw_with_str_content_type():
    df, _ = decoder(Schema([ColSpec("binary", "b")])).decode(
        request(inp("b", "BYTES", ["raw"], content_type="str"))
    )
    assert list(df["b"]) == [b"raw"]


def test_datetime_with_time_zone():
    df, _ = decoder(Schema([ColSpec("datetime", "t")])).decode(
        request(inp("t", "BYTES", ["2024-01-31T12:00:00+02:00", "2024-01-31T13:00:00+02:00"]))
    )
    assert str(df["t"].dt.tz) in ("UTC+02:00", "pytz.FixedOffset(120)")
    assert df["t"][0] == pd.Timestamp("2024-01-31T10:00:00Z")


def test_composite_columns_from_json_elements():
    schema = Schema(
        [
            ColSpec(Array(DataType.string), "tags"),
            ColSpec(Object([Property("a", DataType.long), Property("b", DataType.string)]), "meta"),
            ColSpec(Map(DataType.double), "attrs"),
        ]
    )
    df, _ = decoder(schema).decode(
        request(
            inp("tags", "BYTES", ['["x", "y"]']),
            inp("meta", "BYTES", ['{"a": 1, "b": "q"}']),
            inp("attrs", "BYTES", ['{"k": 1}']),
        )
    )
    assert df["tags"][0] == ["x", "y"]
    assert df["meta"][0] == {"a": 1, "b": "q"}
    assert df["attrs"][0] == {"k": 1.0}


def test_array_column_from_numeric_matrix():
    df, _ = decoder(Schema([ColSpec(Array(DataType.double), "v")])).decode(
        request(inp("v", "FP64", [1, 2, 3, 4], [2, 2]))
    )
    assert df["v"].tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_unnamed_tensor_any_input_name():
    schema = Schema([TensorSpec(np.dtype("float32"), (-1, 4))])
    arr, _ = decoder(schema).decode(request(inp("whatever", "FP64", [1, 2, 3, 4, 5, 6, 7, 8], [2, 4])))
    assert arr.dtype == np.float32 and arr.shape == (2, 4)


def test_named_tensors_decode_to_dict():
    schema = Schema([TensorSpec(np.dtype("float64"), (-1, 3), "a"), TensorSpec(np.dtype("int64"), (-1,), "b")])
    d, _ = decoder(schema).decode(request(inp("a", "FP64", [1, 2, 3], [1, 3]), inp("b", "INT64", [7])))
    assert set(d) == {"a", "b"}
    assert d["a"].shape == (1, 3) and d["b"].dtype == np.int64


@pytest.mark.parametrize(
    "content_type,expected",
    [("pd", pd.DataFrame), ("np", np.ndarray), ("dict", dict)],
)
def test_request_level_content_type_is_honoured(content_type, expected):
    schema = Schema([ColSpec("double", "x")])
    data, _ = decoder(schema).decode(
        request(inp("x", "FP64", [1.0, 2.0]), parameters={"content_type": content_type})
    )
    assert isinstance(data, expected)


# ------------------------------------------------------------------------------------ decode errors

ERROR_CASES = [
    ("missing", mixed_request(id=None), "'id' (long)"),
    ("unknown input", mixed_request(extra=inp("extra", "FP64", [1.0, 2.0])), "unknown input ['extra']"),
    ("string into long", mixed_request(id=inp("id", "BYTES", ["a", "b"])), "input 'id': expected long"),
    ("float into long", mixed_request(id=inp("id", "FP64", [1.5, 2.0])), "input 'id'"),
    ("numbers into string", mixed_request(name=inp("name", "INT64", [1, 2])), "input 'name': expected string"),
    ("bad datetime", mixed_request(when=inp("when", "BYTES", ["yesterday", "x"])), "input 'when': expected ISO-8601"),
    ("bad base64", mixed_request(blob=inp("blob", "BYTES", ["%%%", "x"])), "input 'blob': expected base64"),
    ("shape vs data", mixed_request(score=inp("score", "FP64", [1.0, 2.0], [3])), "input 'score': shape [3] needs 3 values, got 2"),
    ("rows differ", mixed_request(score=inp("score", "FP64", [1.0], [1])), "input 'score' has 1 rows"),
    ("bool expected", mixed_request(flag=inp("flag", "INT64", [3, 4])), "input 'flag'"),
    ("matrix for column", mixed_request(score=inp("score", "FP64", [1, 2, 3, 4], [2, 2])), "input 'score': a column needs shape"),
    ("duplicate", request(inp("id", "INT64", [1]), inp("id", "INT64", [1])), "input 'id' is given more than once"),
    ("text to number", mixed_request(score=inp("score", "FP64", ["a", "b"])), "input 'score': expected double"),
]


@pytest.mark.parametrize("case,req,fragment", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_decode_errors_are_400_naming_the_input(case, req, fragment):
    with pytest.raises(InvalidInput) as err:
        decoder(MIXED).decode(req)
    assert err.value.status_code == 400
    assert fragment in str(err.value)
    # Never a DataFrame or schema dump.
    assert "DataFrame" not in str(err.value) and "Schema" not in str(err.value)


def test_unknown_inputs_can_be_ignored():
    df, _ = decoder(MIXED, unknown_inputs="ignore").decode(
        mixed_request(extra=inp("extra", "FP64", [1.0, 2.0]))
    )
    assert "extra" not in df.columns


def test_tensor_shape_mismatch():
    schema = Schema([TensorSpec(np.dtype("float32"), (-1, 4))])
    with pytest.raises(InvalidInput, match=r"input 'x': shape \[2, 3\] does not match float32 tensor of shape \[-1, 4\]"):
        decoder(schema).decode(request(inp("x", "FP32", [0] * 6, [2, 3])))


def test_composite_type_errors_name_the_path():
    schema = Schema([ColSpec(Object([Property("a", DataType.long)]), "meta")])
    with pytest.raises(InvalidInput, match=r"input 'meta\[0\]\.a': expected long"):
        decoder(schema).decode(request(inp("meta", "BYTES", ['{"a": "x"}'])))
    with pytest.raises(InvalidInput, match="JSON document"):
        decoder(schema).decode(request(inp("meta", "BYTES", ["{not json"])))



# --------------------------------------------------------------------------------- round trips


def _roundtrip(schema, df_values, datatype):
    """Encode a column as the output signature says, then decode it as the input signature says."""
    out = encode(pd.DataFrame({"c": df_values}), schema)["c"]
    req = request({"name": "c", "datatype": out.datatype, "shape": out.shape, "data": out.data.root,
                   "parameters": {"content_type": out.parameters.content_type}})
    assert out.datatype == datatype
    df, _ = decoder(schema).decode(req)
    return df["c"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=20))
def test_roundtrip_double(values):
    got = _roundtrip(Schema([ColSpec("double", "c")]), values, "FP64")
    assert got.tolist() == values


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=20))
def test_roundtrip_long(values):
    got = _roundtrip(Schema([ColSpec("long", "c")]), np.array(values, dtype=np.int64), "INT64")
    assert got.tolist() == values


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=20))
def test_roundtrip_string(values):
    got = _roundtrip(Schema([ColSpec("string", "c")]), pd.Series(values, dtype="string"), "BYTES")
    assert [g.decode() if isinstance(g, bytes) else g for g in got.tolist()] == values


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=30), min_size=1, max_size=20))
def test_roundtrip_binary(values):
    got = _roundtrip(Schema([ColSpec("binary", "c")]), pd.Series(values, dtype=object), "BYTES")
    assert got.tolist() == values


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=20))
def test_roundtrip_bool(values):
    got = _roundtrip(Schema([ColSpec("boolean", "c")]), values, "BOOL")
    assert got.tolist() == values


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
        min_size=1,
        max_size=20,
    )
)
def test_roundtrip_datetime(values):
    got = _roundtrip(Schema([ColSpec("datetime", "c")]), pd.to_datetime(values), "BYTES")
    assert [pd.Timestamp(v) for v in got.tolist()] == [pd.Timestamp(v) for v in values]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.text(max_size=5), max_size=4), min_size=1, max_size=10))
def test_roundtrip_array_of_strings(values):
    got = _roundtrip(Schema([ColSpec(Array(DataType.string), "c")]), pd.Series(values, dtype=object), "BYTES")
    assert got.tolist() == values



# -- MLflow's conventions for unnamed columns and empty batches (issue 14) ---------------------------


def test_unnamed_columns_get_mlflows_positional_labels():
    """Clients address an unnamed ColSpec as ``input-0`` (V2 metadata), but the model's DataFrame
    labels it ``0``, as MLflow's parsing does: the transformers flavor reads the labels."""
    one = decoder(Schema([ColSpec(DataType.string)]))
    frame = one.decode_inputs(request(inp("input-0", "BYTES", ["a", "b"])))
    assert list(frame.columns) == [0]
    assert frame[0].tolist() == ["a", "b"]
    two = decoder(Schema([ColSpec(DataType.double), ColSpec(DataType.double)]))
    frame = two.decode_inputs(request(inp("input-0", "FP64", [1.0]), inp("input-1", "FP64", [2.0])))
    assert list(frame.columns) == [0, 1]
    named = decoder(Schema([ColSpec(DataType.string, "text")]))
    assert list(named.decode_inputs(request(inp("text", "BYTES", ["a"]))).columns) == ["text"]


@pytest.mark.parametrize(
    "schema, given",
    [
        (Schema([ColSpec(DataType.string, "text")]), inp("text", "BYTES", [], shape=[0])),
        (Schema([TensorSpec(np.dtype("float32"), (-1, 4))]), inp("input-0", "FP32", [], shape=[0, 4])),
        (None, inp("x", "FP64", [], shape=[0])),
    ],
)
def test_zero_rows_are_refused_naming_the_input(schema, given):
    with pytest.raises(InvalidInput, match=rf"input '{given['name']}' has no rows"):
        decoder(schema).decode_inputs(request(given))
