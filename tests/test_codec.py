"""Decoding V2 requests by the signature and encoding outputs by the output signature."""

from __future__ import annotations

import base64
import datetime as dt
from contextlib import contextmanager

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mlflow.types.schema import (
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    TensorSpec,
)
from mlserver.types import InferenceRequest

from mlserver_sigaware.codec import RequestDecoder, ResponseEncoder
from mlserver_sigaware.errors import InvalidInput, InvalidParams, OutputEncodingError
from mlserver_sigaware.signature import plan_inputs, plan_outputs


def decoder(schema, params=None, **kw) -> RequestDecoder:
    return RequestDecoder(plan_inputs(schema), params, **kw)


def request(*inputs, **kw) -> InferenceRequest:
    return InferenceRequest(inputs=list(inputs), **kw)


def inp(name, datatype, data, shape=None, **params):
    out = {"name": name, "datatype": datatype, "data": data, "shape": shape or [len(data)]}
    if params:
        out["parameters"] = params
    return out


MIXED = Schema(
    [
        ColSpec("long", "id"),
        ColSpec("double", "score"),
        ColSpec("string", "name"),
        ColSpec("boolean", "flag"),
        ColSpec("datetime", "when"),
        ColSpec("binary", "blob"),
        ColSpec("string", "note", required=False),
    ]
)


def mixed_request(**overrides):
    base = {
        "id": inp("id", "INT64", [1, 2]),
        "score": inp("score", "FP64", [0.5, 1.5]),
        "name": inp("name", "BYTES", ["ann", "bob"]),
        "flag": inp("flag", "BOOL", [True, False]),
        "when": inp("when", "BYTES", ["2024-01-31T12:00:00", "2024-02-01"]),
        "blob": inp("blob", "BYTES", [base64.b64encode(b"\x00\x01").decode(), base64.b64encode(b"xyz").decode()]),
    }
    base.update(overrides)
    return request(*[v for v in base.values() if v is not None])


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


def test_null_in_long_column_gives_nullable_ints():
    df, _ = decoder(Schema([ColSpec("long", "x")])).decode(request(inp("x", "INT64", [1, None])))
    assert str(df["x"].dtype) == "Int64"
    assert df["x"].isna().tolist() == [False, True]


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


# ------------------------------------------------------------------------------------------ params

PARAMS = ParamSchema(
    [
        ParamSpec("multiplier", "double", 1.0),
        ParamSpec("suffix", "string", ""),
        ParamSpec("flag", "boolean", False),
        ParamSpec("weights", "double", [1.0], (-1,)),
    ]
)


def test_params_defaults_and_overrides():
    d = decoder(Schema([ColSpec("double", "x")]), PARAMS)
    _, params = d.decode(request(inp("x", "FP64", [1.0])))
    assert params == {"multiplier": 1.0, "suffix": "", "flag": False, "weights": [1.0]}
    _, params = d.decode(
        request(
            inp("x", "FP64", [1.0]),
            parameters={"multiplier": 3, "suffix": "!", "weights": "[2.0, 3.0]", "content_type": None,
                        "headers": {"a": "b"}, "binary_data_output": True},
        )
    )
    assert params["multiplier"] == 3.0 and params["suffix"] == "!" and list(params["weights"]) == [2.0, 3.0]


@pytest.mark.parametrize(
    "given,fragment",
    [
        ({"nope": 1}, "unknown param ['nope']"),
        ({"multiplier": "big"}, "param 'multiplier': expected double"),
        ({"flag": "yes"}, "param 'flag': expected boolean"),
        ({"weights": 3.0}, "param 'weights': expected double of shape [-1]"),
    ],
)
def test_param_errors(given, fragment):
    d = decoder(Schema([ColSpec("double", "x")]), PARAMS)
    with pytest.raises(InvalidParams) as err:
        d.decode(request(inp("x", "FP64", [1.0]), parameters=given))
    assert err.value.status_code == 400
    assert fragment in str(err.value)


def test_params_refused_without_params_schema():
    with pytest.raises(InvalidParams, match="no params schema"):
        decoder(Schema([ColSpec("double", "x")])).decode(request(inp("x", "FP64", [1.0]), parameters={"k": 1}))


@pytest.mark.parametrize(
    "given,expected",
    [
        ({"multiplier": "2.5"}, {"multiplier": 2.5}),
        ({"multiplier": b"3"}, {"multiplier": 3.0}),
        ({"flag": "true"}, {"flag": True}),
        ({"suffix": "2.5"}, {"suffix": "2.5"}),  # a string param is never parsed
    ],
)
def test_scalar_params_as_json_text(given, expected):
    """gRPC clients cannot send a fractional double through MLServer 1.7.1 (its InferParameter has
    no double_param): numeric and boolean params are accepted as their JSON text."""
    d = decoder(Schema([ColSpec("double", "x")]), PARAMS)
    _, params = d.decode(request(inp("x", "FP64", [1.0]), parameters=given))
    for name, value in expected.items():
        assert params[name] == value and type(params[name]) is type(value)


@pytest.mark.parametrize("given", [{"multiplier": "true"}, {"flag": "1"}, {"multiplier": "[2.5]"}])
def test_scalar_params_text_of_the_wrong_type_is_refused(given):
    d = decoder(Schema([ColSpec("double", "x")]), PARAMS)
    with pytest.raises(InvalidParams) as err:
        d.decode(request(inp("x", "FP64", [1.0]), parameters=given))
    assert f"param '{next(iter(given))}'" in str(err.value)


def test_null_param_is_a_400_not_none_for_the_model():
    """A None param (JSON null, or a gRPC double_param MLServer cannot read) used to reach the
    model, which then failed with a 500 blaming the model; it is a 400 naming the param."""
    d = decoder(Schema([ColSpec("double", "x")]), PARAMS)
    with pytest.raises(InvalidParams) as err:
        d.decode(request(inp("x", "FP64", [1.0]), parameters={"multiplier": None}))
    assert err.value.status_code == 400
    assert "param 'multiplier'" in str(err.value) and "default 1.0" in str(err.value)
    # None is fine where it is the param's own default.
    with_none_default = ParamSchema([ParamSpec("opt", "string", None)])
    _, params = decoder(Schema([ColSpec("double", "x")]), with_none_default).decode(
        request(inp("x", "FP64", [1.0]), parameters={"opt": None})
    )
    assert params == {"opt": None}


# ------------------------------------------------------------------------------------------ encode


def encode(prediction, schema=None, requested=None):
    outs = ResponseEncoder(plan_outputs(schema)).encode(prediction, requested)
    return {o.name: o for o in outs}


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


# ------------------------------------------------------------------ all-float signature: the short path
# RequestDecoder._uniform_frame builds the DataFrame of a small all-float request in one conversion and
# hands anything unusual to the general path. Both must agree on every request: same frame (values,
# dtypes, columns, index and memory layout) or the same error.

FLOATS = Schema([ColSpec("double", "a"), ColSpec("double", "b/c"), ColSpec("float", "d")])
DOUBLES = Schema([ColSpec("double", "a"), ColSpec("double", "b/c"), ColSpec("double", "d")])


def _both_ways(schema, req):
    """(short-path result, general-path result); each a DataFrame or the InvalidInput message."""
    results = []
    for short in (True, False):
        dec = decoder(schema)
        if not short:
            dec.uniform_target = None
        try:
            results.append(dec.decode(req)[0])
        except InvalidInput as exc:
            results.append(str(exc))
    return results


def _assert_same_frame(a, b):
    assert isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame), (a, b)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(a.columns) == list(b.columns) and a.columns.dtype == b.columns.dtype
    assert a.index.equals(b.index)
    assert a.to_numpy().flags.f_contiguous == b.to_numpy().flags.f_contiguous


def test_frames_wrap_the_block_as_the_dataframe_constructor_would():
    """``_frame_from_block`` (both decode paths build frames with it) is ``pd.DataFrame(block.T, ...)``."""
    from mlserver_sigaware import codec

    # The direct builder (pandas internals, ~3x cheaper) is in use on this pandas, not silently off.
    assert codec._direct_frame is not None
    for dtype, rows in ((np.float64, 3), (np.float32, 1), (np.int64, 2), (np.float64, 0), (np.bool_, 2)):
        block = (np.arange(4 * rows) % 3).astype(dtype).reshape(4, rows)
        columns = pd.Index(["a", "b/c", "d", "e"], dtype=object)
        got = codec._frame_from_block(block, columns)
        want = pd.DataFrame(block.T, columns=columns, copy=False)
        _assert_same_frame(got, want)
        assert len(got._mgr.blocks) == 1
        assert rows == 0 or np.shares_memory(got.to_numpy(), block)  # no copy


def test_frames_from_the_direct_builder_behave_as_ordinary_frames():
    """What a model may do with its input works as on a constructed frame, and stays in that frame."""
    from mlserver_sigaware.codec import _frame_from_block

    columns = pd.Index(["a", "b"], dtype=object)
    frames = [_frame_from_block(np.array([[1.0, 2.0], [3.0, 4.0]]), columns) for _ in range(2)]
    want = pd.DataFrame([[1.0, 3.0], [2.0, 4.0]], columns=columns)
    first, second = frames
    first.index.name = "row"
    first.columns.name = "feature"
    first["c"] = first["a"] + first["b"]
    first.loc[0, "a"] = 10.0
    assert first["c"].tolist() == [4.0, 6.0] and first["a"].tolist() == [10.0, 2.0]
    assert first.iloc[1].tolist() == [2.0, 4.0, 6.0]
    # The other request's frame is untouched, its axes' names included.
    pd.testing.assert_frame_equal(second, want)
    assert second.index.name is None and second.columns.name is None
    assert second.sum(axis=1).tolist() == [4.0, 6.0] and second.T.shape == (2, 2)


def test_uniform_signature_only_for_two_or_more_float_columns():
    assert decoder(DOUBLES).uniform_target == np.float64
    assert decoder(FLOATS).uniform_target is None  # double and float: two dtypes
    assert decoder(Schema([ColSpec("double", "a")])).uniform_target is None
    assert decoder(MIXED).uniform_target is None
    assert decoder(Schema([ColSpec("float", "a"), ColSpec("float", "b")])).uniform_target == np.float32


def test_uniform_short_path_is_taken_and_matches_the_general_path():
    dec = decoder(DOUBLES)
    req = request(inp("d", "FP64", [1.5, 2.0]), inp("a", "INT64", [1, 2], [2, 1]), inp("b/c", "FP32", [0.25, 3]))
    calls = []
    original = dec._uniform_frame
    dec._uniform_frame = lambda *a: calls.append(1) or original(*a)
    short = dec.decode(req)[0]
    assert calls and short is not None
    _, general = _both_ways(DOUBLES, req)
    _assert_same_frame(short, general)
    assert short.dtypes.tolist() == [np.float64] * 3


FALLBACK_CASES = {
    "bool column": [inp("a", "FP64", [True, False])],
    "bool among floats": [inp("a", "FP64", [True, 2.5])],
    "null": [inp("a", "FP64", [None, 2.5])],
    "text": [inp("a", "FP64", ["1.5", "2"])],
    "BOOL datatype": [inp("a", "BOOL", [1, 0])],
    "BYTES datatype": [inp("a", "BYTES", [1.0, 2.0])],
    "nested data": [inp("a", "FP64", [[1.0], [2.0]], [2, 1])],
    "matrix": [inp("a", "FP64", [1.0, 2.0, 3.0, 4.0], [2, 2])],
    "shape vs data": [inp("a", "FP64", [1.0, 2.0], [3])],
    "scalar shape": [inp("a", "FP64", [1.0], [])],
    "rows differ": [inp("a", "FP64", [1.0], [1])],
    "huge int": [inp("a", "INT64", [2**70, 1])],
    "missing": None,
    "unknown": [inp("e", "FP64", [1.0, 2.0])],
}


@contextmanager
def _small_request_limit(limit: int):
    """Force requests of any size onto the joined-list (4096) or the per-row (0) way of the short path."""
    from mlserver_sigaware import codec

    saved = codec._SMALL_REQUEST_VALUES
    codec._SMALL_REQUEST_VALUES = limit
    try:
        yield
    finally:
        codec._SMALL_REQUEST_VALUES = saved


@pytest.mark.parametrize("limit", [4096, 0], ids=["joined", "per-row"])
@pytest.mark.parametrize("case", list(FALLBACK_CASES))
def test_uniform_short_path_falls_back_and_both_paths_agree(case, limit):
    base = {n: inp(n, "FP64", [1.0, 2.0]) for n in ("a", "b/c", "d")}
    change = FALLBACK_CASES[case]
    if change is None:
        del base["d"]
    else:
        for item in change:
            base[item["name"]] = item
    req = request(*base.values())
    dec = decoder(DOUBLES)
    with _small_request_limit(limit):
        assert dec._uniform_frame({i.name: i for i in req.inputs}, np.dtype(np.float64)) is None
        short, general = _both_ways(DOUBLES, req)
    if isinstance(general, str):
        assert short == general
    else:
        _assert_same_frame(short, general)


def test_large_float_requests_are_written_straight_into_the_block():
    rows = 5000  # x 3 columns: above the joined-list limit
    req = request(*[inp(n, "FP64", [float(i) + 0.5 for i in range(rows)]) for n in ("a", "b/c", "d")])
    dec = decoder(DOUBLES)
    frame = dec._uniform_frame({i.name: i for i in req.inputs}, np.dtype(np.float64))
    assert frame is not None
    short, general = _both_ways(DOUBLES, req)
    _assert_same_frame(short, general)
    # Integer datatypes keep the general path and its range checks.
    ints = request(*[inp(n, "INT64", list(range(rows))) for n in ("a", "b/c", "d")])
    assert dec._uniform_frame({i.name: i for i in ints.inputs}, np.dtype(np.float64)) is None
    short, general = _both_ways(DOUBLES, ints)
    _assert_same_frame(short, general)


def test_large_float_requests_hold_the_payload_once():
    """tracemalloc: the columns go straight into the block; the general path holds them twice.

    While a column is converted, its values' pointers are also held (the argument tuple of
    ``struct.pack_into`` and the list it is built from): 2/columns of a payload on top of the block.
    """
    import tracemalloc

    names = [f"c{i}" for i in range(10)]
    schema = Schema([ColSpec("double", n) for n in names])
    rows = 5000
    payload = rows * len(names) * 8
    req = request(*[inp(n, "FP64", [float(i) * 0.25 + k for i in range(rows)]) for k, n in enumerate(names)])
    peaks = []
    for short in (True, False):
        dec = decoder(schema)
        if not short:
            dec.uniform_target = None
        tracemalloc.start()
        try:
            frame = dec.decode(req)[0]
            peaks.append(tracemalloc.get_traced_memory()[1] / payload)
        finally:
            tracemalloc.stop()
        del frame
    short_peak, general_peak = peaks
    assert short_peak < 1.3 and general_peak >= 2.0, peaks


_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.booleans(),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda n: st.tuples(
            st.lists(st.lists(_number, min_size=n, max_size=n), min_size=3, max_size=3),
            st.lists(st.sampled_from(["FP64", "FP32", "INT64", "UINT8", "BOOL"]), min_size=3, max_size=3),
            st.lists(st.booleans(), min_size=3, max_size=3),
        )
    ),
    st.sampled_from([DOUBLES, Schema([ColSpec("float", "a"), ColSpec("float", "b/c"), ColSpec("float", "d")])]),
    st.sampled_from([4096, 0]),
)
def test_uniform_short_path_agrees_with_the_general_path(columns, schema, limit):
    values, datatypes, as_matrix = columns
    req = request(*[
        inp(name, dt_, vals, [len(vals), 1] if m else [len(vals)])
        for name, vals, dt_, m in zip(("a", "b/c", "d"), values, datatypes, as_matrix)
    ])
    with _small_request_limit(limit):
        short, general = _both_ways(schema, req)
    if isinstance(general, str):
        assert short == general
    else:
        _assert_same_frame(short, general)


_ODD_VALUES = st.one_of(
    st.floats(width=64),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.sampled_from(["1.5", "x", "", 10**400, -(10**400), 2**63, -(2**63), 2**63 - 1, 1e300]),
    st.lists(st.floats(allow_nan=False), max_size=2),
)


@settings(max_examples=300, deadline=None)
@example(values=[-(2**63) - 1, False], datatype="FP64", target=np.float64)  # numpy's object-array way
@example(values=[True, 1.5], datatype="FP64", target=np.float64)
@example(values=[True, False], datatype="FP32", target=np.float32)
@example(values=[1.5, None, 2], datatype="FP64", target=np.float64)
@given(
    values=st.lists(_ODD_VALUES, max_size=12),
    datatype=st.sampled_from(["FP64", "FP32", "FP16", "INT64"]),
    target=st.sampled_from([np.float64, np.float32]),
)
def test_one_pass_float_conversion_matches_numpys(values, datatype, target):
    """``_plain_floats`` (``struct``) gives what the ``np.asarray`` way gives, or steps aside."""
    from mlserver_sigaware import codec

    def run(fast: bool):
        original = codec._plain_floats
        if not fast:
            codec._plain_floats = lambda v: None
        try:
            return codec._numeric_array(list(values), datatype, np.dtype(target), "x", "double")
        except InvalidInput as exc:
            return f"400: {exc}"
        finally:
            codec._plain_floats = original

    got, want = run(True), run(False)
    if isinstance(want, str):
        assert got == want
    else:
        assert not isinstance(got, str), got
        assert type(got) is type(want) and got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
