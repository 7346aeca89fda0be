"""All-float signatures: the short path to the DataFrame agrees with the general path on every request."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from mlflow.types.schema import (
    ColSpec,
    Schema,
)

from mlserver_sigaware.errors import InvalidInput
from mlserver_sigaware.codec import decode, frames
from mlserver_sigaware.codec import values as codec_values
from tests.codec.codec_cases import MIXED, decoder, encode, inp, mixed_request, request  # noqa: F401


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

    # The direct builder (pandas internals, ~3x cheaper) is in use on this pandas, not silently off.
    assert frames._direct_frame is not None
    for dtype, rows in ((np.float64, 3), (np.float32, 1), (np.int64, 2), (np.float64, 0), (np.bool_, 2)):
        block = (np.arange(4 * rows) % 3).astype(dtype).reshape(4, rows)
        columns = pd.Index(["a", "b/c", "d", "e"], dtype=object)
        got = frames.frame_from_block(block, columns)
        want = pd.DataFrame(block.T, columns=columns, copy=False)
        _assert_same_frame(got, want)
        assert len(got._mgr.blocks) == 1
        assert rows == 0 or np.shares_memory(got.to_numpy(), block)  # no copy


def test_frames_from_the_direct_builder_behave_as_ordinary_frames():
    """What a model may do with its input works as on a constructed frame, and stays in that frame."""
    from mlserver_sigaware.codec.frames import frame_from_block as _frame_from_block

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

    saved = decode._SMALL_REQUEST_VALUES
    decode._SMALL_REQUEST_VALUES = limit
    try:
        yield
    finally:
        decode._SMALL_REQUEST_VALUES = saved


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

    def run(fast: bool):
        original = codec_values.plain_floats
        if not fast:
            codec_values.plain_floats = lambda v: None
        try:
            return codec_values._numeric_array(list(values), datatype, np.dtype(target), "x", "double")
        except InvalidInput as exc:
            return f"400: {exc}"
        finally:
            codec_values.plain_floats = original

    got, want = run(True), run(False)
    if isinstance(want, str):
        assert got == want
    else:
        assert not isinstance(got, str), got
        assert type(got) is type(want) and got.dtype == want.dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))



def test_frame_values_is_what_numpy_reads_off_the_frame():
    """``frame_values`` (what scikit-learn models get) equals ``np.asarray(frame)``: same values, dtype,
    memory and flags; a frame of several blocks goes the ordinary way."""
    block = np.arange(26.0).reshape(13, 2)
    frame = frames.frame_from_block(block, pd.Index([f"c{i}" for i in range(13)], dtype=object))
    assert frames._read_values is not None
    got, want = frames.frame_values(frame), np.asarray(frame)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype and got.flags.writeable == want.flags.writeable and np.shares_memory(got, block)
    mixed = pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2]})
    assert frames._block_values(mixed) is None
    np.testing.assert_array_equal(frames.frame_values(mixed), np.asarray(mixed))
