"""MLflow scoring protocol (``mlserver_sigaware.protocols.scoring``) against MLflow's own scoring server, in process.

The reference is MLflow itself: ``mlflow.pyfunc.scoring_server.init(model)`` (the FastAPI app that
``mlflow models serve`` runs) driven through Starlette's TestClient, and MLflow's parsing/formatting
functions (``infer_and_parse_data``, ``_enforce_schema``, ``predictions_to_json``). Zoo models are loaded
twice in this process: once by MLflow's app, once as our :class:`ServedModel`.
"""

# No ``from __future__ import annotations``: MLflow reads the type hints of the PythonModels below
# when their classes are created, and needs real objects.
import datetime as dt
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.pyfunc import scoring_server as mlflow_scoring
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.type_hints import TypeFromExample

from mlserver.types import InferenceRequest

from mlserver_sigaware.codec import validate_json_params
from mlserver_sigaware.errors import InvalidParams
from mlserver_sigaware.model.location import ModelRef, ResolvedModel
from mlserver_sigaware.model.served import ServedModel
from mlserver_sigaware.protocols import scoring
from mlserver_sigaware.protocols.scoring import fastpath, reading, responses
from mlserver_sigaware.protocols.scoring import invocations as invoke_module
from mlserver_sigaware.protocols.scoring.invocations import model_input
from mlserver_sigaware.settings import SigawareSettings
from tests import zoo
from tests.scoring_corpus import CORPUS, MIXED_ROW, MODELS, WINE_COLUMNS, WINE_ROW, WINE_ROW2, ScoringCase

JSON = "application/json"


# ------------------------------------------------------------------------------------ fixtures


class Pair:
    """One model served by MLflow's own scoring app and by us, in this process."""

    def __init__(self, path: Path):
        from fastapi.testclient import TestClient

        self.path = path
        self.pyfunc = mlflow.pyfunc.load_model(str(path))
        self.mlflow = TestClient(mlflow_scoring.init(self.pyfunc), raise_server_exceptions=False)
        ref = ModelRef("local", str(path))
        self.served = ServedModel.from_pyfunc(
            mlflow.pyfunc.load_model(str(path)), ResolvedModel(ref=ref, load_uri=str(path)), SigawareSettings()
        )

    def reference(self, body: bytes, content_type: str | None):
        headers = {} if content_type is None else {"content-type": content_type}
        return self.mlflow.post("/invocations", content=body, headers=headers)

    def ours(self, body: bytes, content_type: str | None, stack_trace: bool = True) -> scoring.ScoringResponse:
        """Our answer; by default as with ``invocations_stack_trace: true`` (MLflow's exact bodies)."""
        return scoring.invoke(self.served, body, content_type, stack_trace=stack_trace)


class Pairs(dict):
    def __init__(self, folders: dict[str, Path]):
        super().__init__()
        self.folders = folders

    def __missing__(self, kind: str) -> Pair:
        pair = self[kind] = Pair(self.folders[kind])
        return pair


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("scoring-zoo")
    builders = dict(zoo.BUILDERS)
    # cloudpickle loads faster than skops and predicts the same
    builders["wine"] = lambda dest: zoo.build_wine(dest, serialization_format="cloudpickle")
    return {kind: builders[kind](base / kind) for kind in MODELS}


@pytest.fixture(scope="module")
def pairs(folders: dict[str, Path]):
    # MLflow's init() marks the process as a serving environment; undo that for other test modules.
    saved = os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT")
    yield Pairs(folders)
    if saved is None:
        os.environ.pop("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", None)
    else:
        os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] = saved


@pytest.fixture(autouse=True)
def _quiet():
    # MLflow warns about every ignored param and extra column; the model logs its own failures.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


#: Where ours answers differently on purpose (invocations.py lists them): case -> (our status, why).
DELIBERATE = {
    "wine:ct-missing": (415, "a client's mistake is never a 5xx: MLflow crashes on the missing header (bare 500)"),
}


def assert_same(reference, ours: scoring.ScoringResponse, what: str = "") -> None:
    """Status, content type, error_code / error_class / sqlstate, stack_trace presence; 200s byte for byte."""
    if what in DELIBERATE:
        assert ours.status == DELIBERATE[what][0], DELIBERATE[what][1]
        return
    assert ours.status == reference.status_code, (what, reference.content[:500], ours.body[:500])
    assert ours.content_type == reference.headers["content-type"], what
    if reference.status_code == 200 or not ours.content_type.startswith("application/json"):
        assert ours.body == reference.content, what
        return
    want, got = _json(reference.content), _json(ours.body)
    for key in ("error_code", "error_class", "sqlstate"):
        assert got.get(key) == want.get(key), (what, key, want.get("message"), got.get("message"))
    assert ("stack_trace" in got) == ("stack_trace" in want), what
    assert set(got) == set(want), what


# ------------------------------------------------------------------------ the differential corpus


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_same_answer_as_mlflow(pairs: Pairs, case: ScoringCase) -> None:
    pair = pairs[case.model]
    assert_same(pair.reference(case.body, case.content_type), pair.ours(case.body, case.content_type), case.id)


def test_corpus_covers_every_model_with_valid_and_invalid_requests() -> None:
    assert {c.model for c in CORPUS} == set(MODELS)
    assert set(ERROR_TABLE) <= set(_BY_ID)
    invalid = len(ERROR_TABLE)
    assert invalid >= 40 and len(CORPUS) - invalid >= 40


#: Every error class and MLflow's answer to it (status, error_code), asserted on both servers.
ERROR_TABLE: dict[str, tuple[int, str | None]] = {
    # content type (plain-text answers, no error_code)
    "wine:ct-missing": (500, None),  # MLflow crashes on the missing header (ours: 415, see DELIBERATE)
    "wine:ct-text-plain": (415, None),
    "wine:ct-uppercase": (415, None),
    "wine:ct-empty": (415, None),
    "wine:charset-latin1": (415, None),
    "wine:charset-no-value": (415, None),
    "wine:unknown-ct-param": (415, None),
    "wine:ct-bad-charset-and-type": (415, None),  # the charset is checked before the type
    # body parsing: BAD_REQUEST
    "wine:malformed-json": (400, "BAD_REQUEST"),
    "wine:empty-body": (400, "BAD_REQUEST"),
    "wine:not-utf8": (400, "BAD_REQUEST"),
    "wine:json-list": (400, "BAD_REQUEST"),
    "wine:json-scalar": (400, "BAD_REQUEST"),
    "wine:unknown-format": (400, "BAD_REQUEST"),
    "wine:params-only": (400, "BAD_REQUEST"),
    "wine:two-formats": (400, "BAD_REQUEST"),
    "wine:split-not-dict": (400, "BAD_REQUEST"),
    "wine:split-extra-key": (400, "BAD_REQUEST"),
    "wine:records-not-list": (400, "BAD_REQUEST"),
    "wine:csv-bad": (400, "BAD_REQUEST"),
    "wine:csv-not-utf8": (400, "BAD_REQUEST"),
    "wine:parquet-garbage": (400, "BAD_REQUEST"),
    "mixed:csv": (400, "BAD_REQUEST"),  # any CSV for a datetime column: pandas refuses the dtype
    "tensor:ragged": (400, "BAD_REQUEST"),
    "tensor:strings": (400, "BAD_REQUEST"),
    "tensor:dict": (400, "BAD_REQUEST"),
    "tensor:csv": (400, "BAD_REQUEST"),  # no column names to read a CSV into a tensor
    # type conversion while parsing (MLflow's cast to the schema's pandas types): BAD_REQUEST
    "wine:bad-string": (400, "BAD_REQUEST"),
    "mixed:null-long": (400, "BAD_REQUEST"),
    "mixed:mixed-datetime-formats": (400, "BAD_REQUEST"),
    "mixed:bad-datetime": (400, "BAD_REQUEST"),
    "mixed:bad-base64": (400, "BAD_REQUEST"),
    "mixed:number-for-binary": (400, "BAD_REQUEST"),
    "composite:object-extra-field": (400, "BAD_REQUEST"),
    "composite:not-an-array": (400, "BAD_REQUEST"),
    "composite:object-missing-field": (400, "BAD_REQUEST"),
    "composite:array-of-numbers": (400, "BAD_REQUEST"),
    "params:bad-input-and-params": (400, "BAD_REQUEST"),  # the input error wins
    # schema enforcement (inside predict): INVALID_PARAMETER_VALUE
    "wine:missing-column": (400, "INVALID_PARAMETER_VALUE"),
    "wine:split-no-columns": (400, "INVALID_PARAMETER_VALUE"),
    "wine:csv-missing-column": (400, "INVALID_PARAMETER_VALUE"),
    "wine:inputs-null": (400, "INVALID_PARAMETER_VALUE"),
    "wine:inputs-list-of-lists": (400, "INVALID_PARAMETER_VALUE"),
    "wine:inputs-dict-unequal": (400, "INVALID_PARAMETER_VALUE"),
    "mixed:missing-required": (400, "INVALID_PARAMETER_VALUE"),
    "mixed:zoned-datetime": (400, "INVALID_PARAMETER_VALUE"),
    "tensor:wrong-width": (400, "INVALID_PARAMETER_VALUE"),
    "tensor:one-dimensional": (400, "INVALID_PARAMETER_VALUE"),
    "tensor:scalar": (400, "INVALID_PARAMETER_VALUE"),
    "tensor:three-dimensional": (400, "INVALID_PARAMETER_VALUE"),
    "text:wrong-column": (400, "INVALID_PARAMETER_VALUE"),
    "text:llm-messages": (400, "INVALID_PARAMETER_VALUE"),
    "params:llm-missing-column": (400, "INVALID_PARAMETER_VALUE"),
    "dict_tensors:list-input": (400, "INVALID_PARAMETER_VALUE"),
    "dict_tensors:missing-tensor": (400, "INVALID_PARAMETER_VALUE"),
    "dict_tensors:bad-shape": (400, "INVALID_PARAMETER_VALUE"),
    "composite:instances": (400, "INVALID_PARAMETER_VALUE"),
    "params:parquet-int-for-double": (400, "INVALID_PARAMETER_VALUE"),
    "params:missing-input-and-bad-params": (400, "INVALID_PARAMETER_VALUE"),
    # params: INVALID_PARAMETER_VALUE
    "params:bad-type": (400, "INVALID_PARAMETER_VALUE"),
    "params:bool-for-double": (400, "INVALID_PARAMETER_VALUE"),
    "params:string-for-list": (400, "INVALID_PARAMETER_VALUE"),
    "params:scalar-for-list": (400, "INVALID_PARAMETER_VALUE"),
    "params:list-for-scalar": (400, "INVALID_PARAMETER_VALUE"),
    "params:params-not-dict": (400, "INVALID_PARAMETER_VALUE"),
    # the model raised: BAD_REQUEST (with a stack trace)
    "failing:model-raises": (400, "BAD_REQUEST"),
    "failing:model-raises-inputs": (400, "BAD_REQUEST"),
    "wine:null-double": (400, "BAD_REQUEST"),  # sklearn refuses the NaN
    "wine:nan-literal": (400, "BAD_REQUEST"),
    "wine:split-ragged-rows": (400, "BAD_REQUEST"),  # pandas pads short rows with NaN
    "wine:records-missing-key": (400, "BAD_REQUEST"),  # likewise a missing key
    "params:null-param-value": (400, "BAD_REQUEST"),  # null passes the params check; the model fails
    "text:llm-prompt-list": (400, "BAD_REQUEST"),
}

_BY_ID = {c.id: c for c in CORPUS}


@pytest.mark.parametrize("case_id", sorted(ERROR_TABLE))
def test_error_table(pairs: Pairs, case_id: str) -> None:
    case = _BY_ID[case_id]
    status, error_code = ERROR_TABLE[case_id]
    pair = pairs[case.model]
    for label, got_status, body in (
        ("mlflow", *(lambda r: (r.status_code, r.content))(pair.reference(case.body, case.content_type))),
        ("ours", *(lambda r: (r.status, r.body))(pair.ours(case.body, case.content_type))),
    ):
        if label == "ours" and case_id in DELIBERATE:
            status = DELIBERATE[case_id][0]
        assert got_status == status, (label, body[:300])
        assert _json(body).get("error_code") == error_code, (label, body[:300])


def test_every_other_corpus_case_succeeds(pairs: Pairs) -> None:
    for case in CORPUS:
        if case.id in ERROR_TABLE:
            continue
        got = pairs[case.model].ours(case.body, case.content_type)
        assert got.status == 200, (case.id, got.body[:300])


# ---------------------------------------------------------------- which path decoded the request


#: Regular payloads: decoded by our codec alone, MLflow's reading never consulted.
FAST_PATH = [
    "wine:split", "wine:records", "wine:instances", "wine:inputs-dict", "wine:inputs-scalars",
    "wine:inputs-records", "wine:ints-for-doubles", "wine:csv", "wine:extra-column",
    "wine:params-ignored", "wine:utf8-bom", "mixed:records", "mixed:split", "mixed:optional-missing",
    "mixed:date-only", "tensor:inputs", "tensor:instances", "tensor:ints", "tensor:split",
    "tensor:null-float", "params:defaults", "params:all", "params:inputs-list", "params:inputs-scalar-dict",
    "text:inputs-list", "text:split", "text:records", "text:instances", "text:non-ascii", "text:csv",
    "text:inputs-scalar-dict", "dict_tensors:inputs", "dict_tensors:instances", "dict_tensors:split",
    "composite:records", "composite:split", "failing:ok",
    # and errors our codec finds after MLflow-compatible parsing: the model's and the params'
    "failing:model-raises", "params:bad-type", "params:string-for-list", "params:params-not-dict",
]


@pytest.mark.parametrize("case_id", FAST_PATH)
def test_regular_requests_use_only_our_codec(pairs: Pairs, case_id: str, monkeypatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("MLflow's reading was consulted")

    monkeypatch.setattr(invoke_module, "_mlflow_input", forbidden)
    case = _BY_ID[case_id]
    pair = pairs[case.model]
    assert_same(pair.reference(case.body, case.content_type), pair.ours(case.body, case.content_type), case_id)


@pytest.mark.parametrize(
    "case_id, names",
    [
        ("wine:bad-string", "'proline'"),
        ("wine:missing-column", "missing required input 'proline'"),
        ("mixed:bad-datetime", "'when'"),
        ("mixed:number-for-binary", "'blob'"),
        ("tensor:wrong-width", "shape [1, 3]"),
        ("tensor:ragged", "ragged"),
        ("dict_tensors:missing-tensor", "missing required input 'b'"),
        ("text:wrong-column", "missing required input 'prompt'"),
        ("composite:object-extra-field", "unexpected field"),
        ("params:bad-type", "param 'multiplier'"),
        ("params:params-not-dict", "params must be a JSON object"),
    ],
)
def test_rejections_carry_our_codec_message(pairs: Pairs, case_id: str, names: str) -> None:
    """Where our codec rejects, the message is the V2 one (MLflow's status and error_code)."""
    case = _BY_ID[case_id]
    got = pairs[case.model].ours(case.body, case.content_type)
    message = _json(got.body)["message"]
    assert names in message
    # Only our message: MLflow's "Failed to predict data '<the whole parsed input>'" is not echoed back.
    assert not message.startswith("Failed to predict data"), message


@pytest.mark.parametrize(
    "case_id",
    ["wine:malformed-json", "wine:json-list", "wine:unknown-format", "wine:two-formats", "wine:split-not-dict",
     "wine:records-not-list", "wine:csv-bad", "wine:split-no-columns", "mixed:csv", "failing:model-raises"],
)
def test_errors_found_by_mlflow_reading_are_mlflow_bodies(pairs: Pairs, case_id: str) -> None:
    """Format-level errors (and the model error) carry MLflow's message; bodies equal but for traces."""
    case = _BY_ID[case_id]
    pair = pairs[case.model]
    want = _json(pair.reference(case.body, case.content_type).content)
    got = _json(pair.ours(case.body, case.content_type).body)
    if case.model == "failing":  # the trace starts in our predictor, not in MLflow's server
        assert "ValueError: model exploded on purpose" in got.pop("stack_trace")
        want.pop("stack_trace")
    assert got == want


def test_decoded_input_matches_mlflow_parsing(pairs: Pairs) -> None:
    """For fast-path requests, the container the model gets equals MLflow's parse + enforcement."""
    from mlflow.models.utils import _enforce_schema

    for case_id in FAST_PATH:
        case = _BY_ID[case_id]
        if case.content_type != JSON or case.model == "failing" or case_id.startswith("params:bad"):
            continue
        pair = pairs[case.model]
        request = reading.read_json(pair.served, case.body)
        if request.kind != "json":
            continue
        ours, enforce, _ = model_input(pair.served, request)
        schema = pair.pyfunc.metadata.get_input_schema()
        theirs = _enforce_schema(mlflow_scoring.infer_and_parse_data(dict(request.payload), schema), schema)
        assert not enforce
        if isinstance(theirs, pd.DataFrame):
            assert list(ours.columns) == list(theirs.columns), case_id
            for column in theirs.columns:
                a, b = ours[column].tolist(), theirs[column].tolist()
                assert _equal(a, b), (case_id, column, a, b)
        elif isinstance(theirs, dict):
            assert list(ours) == list(theirs), case_id
            for key in theirs:
                np.testing.assert_array_equal(ours[key], theirs[key])
                assert ours[key].dtype == theirs[key].dtype, case_id
        else:
            np.testing.assert_array_equal(ours, theirs)
            assert ours.dtype == theirs.dtype, case_id


def _equal(a: list, b: list) -> bool:
    def norm(v):
        if isinstance(v, float) and np.isnan(v):
            return "NaN"
        if isinstance(v, (pd.Timestamp, np.datetime64)):
            return pd.Timestamp(v).isoformat()
        if isinstance(v, np.ndarray):
            return v.tolist()
        return v

    return [norm(v) for v in a] == [norm(v) for v in b]


# -------------------------------------------------------------- randomized differential requests

_ODD = [0, 1, -1, 7, 2**31, 2**53 + 1, 2**63, 2**64, 1.0, 1.5, -2.25, 1e-7, 1e300, True, False, None,
        "x", "", "1.5", "7", "true", "2024-01-31", "2024-01-31 12:00:00", "2024-01-31T12:00:00+01:00",
        "aGVsbG8=", "aGVsbG8", "Zoë", [1, 2], ["a"], {"a": 1}, [], {}]
_TYPICAL = {
    "id": [1, 2, -5], "score": [1.5, 2, -0.5], "name": ["bob", "Zoë", ""], "flag": [True, False],
    "when": ["2024-01-31T12:00:00", "2023-05-01T00:00:00"], "blob": ["aGVsbG8=", "AP8="], "note": ["x", "y"],
    "x": [1.0, 2, -3.5], "prompt": ["hello world", "good night"],
    "tags": [["a", "b"], []], "meta": [{"a": 1, "b": "x"}], "attrs": [{"k": 1.5}, {}],
}
_COLUMNS = {
    "mixed": ["id", "score", "name", "flag", "when", "blob", "note"],
    "params": ["x"],
    "text": ["prompt"],
    "composite": ["tags", "meta", "attrs"],
}


@st.composite
def tabular_requests(draw) -> tuple[str, bytes]:
    model = draw(st.sampled_from(sorted(_COLUMNS)))
    columns = list(_COLUMNS[model])
    if len(columns) > 1 and draw(st.booleans()):
        columns.remove(draw(st.sampled_from(columns)))
    if draw(st.integers(0, 9)) == 0:
        columns.append("extra")
    n = draw(st.integers(1, 3))

    def cell(column: str):
        if column != "extra" and draw(st.integers(0, 9)) < 7:
            return draw(st.sampled_from(_TYPICAL[column]))
        return draw(st.sampled_from(_ODD))

    rows = [{c: cell(c) for c in columns} for _ in range(n)]
    fmt = draw(st.sampled_from(["split", "records", "inputs-dict", "instances", "inputs-records"]))
    if fmt == "split":
        doc: dict[str, Any] = {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}}
    elif fmt == "records":
        doc = {"dataframe_records": rows}
    elif fmt == "inputs-dict":
        doc = {"inputs": {c: [r[c] for r in rows] for c in columns}}
    elif fmt == "instances":
        doc = {"instances": rows}
    else:
        doc = {"inputs": rows}
    if model == "params" and draw(st.booleans()):
        names = draw(st.lists(st.sampled_from(["multiplier", "suffix", "flags", "weights", "zz"]), max_size=2, unique=True))
        doc["params"] = {k: draw(st.sampled_from(_ODD + [[1.0, 2], [True]])) for k in names}
    return model, json.dumps(doc).encode()


@st.composite
def tensor_requests(draw) -> tuple[str, bytes]:
    leaf = st.one_of(st.floats(-5, 5, allow_nan=False), st.sampled_from([0, 1, True, None, "1", "x", 2**40, [1]]))

    def tensor(shape):
        if not shape:
            return draw(leaf)
        extra = 1 if draw(st.integers(0, 19)) == 0 else 0
        return [tensor(shape[1:]) for _ in range(shape[0] + extra)]

    model = draw(st.sampled_from(["tensor", "dict_tensors"]))
    if model == "tensor":
        value = tensor(draw(st.sampled_from([[2, 4], [1, 4], [2, 3], [4], [1, 2, 4]])))
        fmt = draw(st.sampled_from(["inputs", "instances", "split"]))
        doc = {"dataframe_split": {"data": value}} if fmt == "split" else {fmt: value}
    else:
        a = tensor(draw(st.sampled_from([[2, 3], [1, 3], [2, 2], [3]])))
        b = tensor(draw(st.sampled_from([[2], [1], [2, 1]])))
        if draw(st.booleans()):
            doc = {"inputs": {"a": a, "b": b}}
        else:
            rows = zip(a, b) if isinstance(a, list) and isinstance(b, list) else []
            doc = {"instances": [{"a": x, "b": y} for x, y in rows]}
    return model, json.dumps(doc).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=st.one_of(tabular_requests(), tensor_requests()))
def test_random_requests_same_answer_as_mlflow(pairs: Pairs, request: tuple[str, bytes]) -> None:
    model, body = request
    pair = pairs[model]
    assert_same(pair.reference(body, JSON), pair.ours(body, JSON), body.decode()[:300])


# --------------------------------------------------------------------------- response formatting


_WINE_CELLS = [0.5, 13, 2.25, -1.0, 1e-7, 1e300, 0, 2**53 + 1, 14.23, 1065]
_WINE_ODD = [True, False, None, "1.5", "x", 2**64, 2**70, [1.0], {"a": 1}]


@st.composite
def wine_tables(draw) -> bytes:
    """Tables for the all-float wine signature: mostly plain numbers (the short path), sometimes not."""
    columns = list(WINE_COLUMNS)
    if draw(st.booleans()):
        columns = draw(st.permutations(columns))
    change = draw(st.integers(0, 9))
    if change == 0:
        columns = columns[:-1]
    elif change == 1:
        columns = columns + ["extra"]
    n = draw(st.integers(1, 3))
    odd_rate = draw(st.sampled_from([0, 0, 50]))

    def cell():
        if draw(st.integers(0, 999)) < odd_rate:
            return draw(st.sampled_from(_WINE_ODD))
        return draw(st.one_of(st.sampled_from(_WINE_CELLS), st.floats(-1e6, 1e6, allow_nan=False)))

    rows = [[cell() for _ in columns] for _ in range(n)]
    if draw(st.booleans()):
        doc: dict[str, Any] = {"dataframe_split": {"columns": columns, "data": rows}}
    else:  # each record may list its keys in its own order
        records = []
        for r in rows:
            order = draw(st.permutations(range(len(columns))))
            records.append({columns[i]: r[i] for i in order})
        doc = {"dataframe_records": records}
    return json.dumps(doc).encode()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=wine_tables())
def test_random_wine_tables_same_answer_as_mlflow_and_short_path_agrees(pairs: Pairs, body: bytes) -> None:
    """All-float tables take ``fastpath.uniform_frame``: MLflow's answer, and the general path's frame."""
    from mlserver_sigaware.codec import RequestDecoder

    pair = pairs["wine"]
    assert_same(pair.reference(body, JSON), pair.ours(body, JSON), body.decode()[:300])
    request = reading.read_json(pair.served, body)
    short = fastpath.uniform_frame(pair.served, request)
    if short is None:
        return
    general_decoder = RequestDecoder(pair.served.inputs, None, unknown_inputs="ignore")
    general_decoder.uniform_target = None
    v2 = InferenceRequest.model_construct(
        id=None, parameters=None, inputs=fastpath.fast_inputs(pair.served, request), outputs=None
    )
    general = general_decoder.decode_inputs(v2)
    pd.testing.assert_frame_equal(short, general, check_exact=True)
    assert short.columns.dtype == general.columns.dtype
    assert short.to_numpy().flags.f_contiguous == general.to_numpy().flags.f_contiguous


def test_short_path_takes_plain_wine_tables(pairs: Pairs) -> None:
    served = pairs["wine"].served
    split = {"columns": list(reversed(WINE_COLUMNS)), "data": [list(reversed(WINE_ROW))] * 2}
    for doc in ({"dataframe_split": split}, {"dataframe_records": [dict(zip(WINE_COLUMNS, WINE_ROW))]}):
        frame = fastpath.uniform_frame(served, reading.read_json(served, json.dumps(doc).encode()))
        assert frame is not None and list(frame.columns) == list(WINE_COLUMNS)
        assert frame.iloc[0].tolist() == [float(v) for v in WINE_ROW]
    # Records may list their keys in different orders: values are taken by key.
    records = [dict(zip(WINE_COLUMNS, WINE_ROW)), dict(zip(reversed(WINE_COLUMNS), reversed(WINE_ROW2)))]
    frame = fastpath.uniform_frame(served, reading.read_json(served, json.dumps({"dataframe_records": records}).encode()))
    assert frame is not None
    assert frame.to_numpy().tolist() == [[float(v) for v in WINE_ROW], [float(v) for v in WINE_ROW2]]
    for odd in (True, None, "1.5"):
        row = list(WINE_ROW[:-1]) + [odd]
        doc = {"dataframe_split": {"columns": list(WINE_COLUMNS), "data": [row]}}
        assert fastpath.uniform_frame(served, reading.read_json(served, json.dumps(doc).encode())) is None


def _mlflow_bytes(prediction: Any, unwrapped: bool = False) -> bytes:
    out = io.StringIO()
    if unwrapped:
        mlflow_scoring.unwrapped_predictions_to_json(prediction, out)
    else:
        mlflow_scoring.predictions_to_json(prediction, out)
    return out.getvalue().encode("utf-8")


_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e16, 1e-05, 0.1, -0.0, 1e22, 5e-324])
_texts = st.text(max_size=8)  # any code point, surrogates included: ASCII-escaped by both
_scalars = st.one_of(_floats, st.integers(-(2**63), 2**63 - 1), _texts, st.booleans(), st.none())


@st.composite
def predictions(draw) -> Any:
    n = draw(st.integers(0, 4))

    def sized(elements):
        return st.lists(elements, min_size=n, max_size=n)

    columns = {
        "f64": lambda: np.array(draw(st.lists(_floats, min_size=n, max_size=n)), dtype=np.float64),
        "f32": lambda: np.array(draw(sized(st.floats(width=32, allow_nan=False, allow_infinity=False))), dtype=np.float32),
        "i64": lambda: np.array(draw(sized(st.integers(-(2**63), 2**63 - 1))), dtype=np.int64),
        "i32": lambda: np.array(draw(sized(st.integers(-(2**31), 2**31 - 1))), dtype=np.int32),
        "bool": lambda: np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
        "text": lambda: draw(st.lists(_texts, min_size=n, max_size=n)),
        "when": lambda: pd.to_datetime(
            draw(sized(st.datetimes(min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2200, 1, 1))))
        ),
        "obj": lambda: draw(st.lists(_scalars, min_size=n, max_size=n)),
        "bytes": lambda: draw(st.lists(st.binary(max_size=6), min_size=n, max_size=n)),
    }
    kind = draw(st.sampled_from(["frame", "series", "array", "list", "dict", "str", "records", "nested"]))
    if kind == "frame":
        names = draw(st.lists(st.sampled_from(sorted(columns)), min_size=1, max_size=4, unique=True))
        return pd.DataFrame({name: columns[name]() for name in names})
    if kind == "series":
        name = draw(st.sampled_from(["f64", "i64", "text", "when", "bool"]))
        return pd.Series(columns[name](), name=draw(st.sampled_from([None, "y", 0])))
    if kind == "array":
        name = draw(st.sampled_from(["f64", "f32", "i64", "i32", "bool"]))
        arr = columns[name]()
        return arr.reshape(-1, 1) if draw(st.booleans()) else arr
    if kind == "list":
        return draw(st.lists(_scalars, max_size=5))
    if kind == "dict":
        return draw(st.dictionaries(_texts, _scalars | st.lists(_scalars, max_size=3), max_size=4))
    if kind == "records":
        return draw(st.lists(st.dictionaries(st.sampled_from(["a", "b", "é"]), _scalars, max_size=3), max_size=3))
    if kind == "nested":
        rows = draw(st.lists(st.lists(_floats, min_size=2, max_size=2), max_size=3))
        return np.array(rows, dtype=np.float64).reshape(-1, 2)
    return draw(_texts)


@settings(max_examples=400, deadline=None)
@given(prediction=predictions(), unwrapped=st.booleans())
def test_format_predictions_is_mlflow_bytes(prediction: Any, unwrapped: bool) -> None:
    assert scoring.format_predictions(prediction, unwrapped) == _mlflow_bytes(prediction, unwrapped)


@pytest.mark.parametrize(
    "prediction",
    [
        pd.DataFrame(
            {
                "a": [1.0, np.nan, np.inf],
                "b": ["x", "é", None],
                "c": pd.to_datetime(["2024-01-01", None, "2024-01-02T03:04:05.123456"], format="ISO8601"),
            }
        ),
        pd.Series([1, 2], name="p"),
        np.array([[0.1, 1e-05], [1e16, -0.0]], dtype=np.float32),
        [{"translation_text": "hallo Welt"}],
        {"a": np.array([1, 2]), "b": np.float32(0.5)},
        "plain text ☃",
        np.array([b"\x00\xff", b"ab"], dtype=object),
        [np.int64(1), np.bool_(True), dt.date(2024, 1, 1), dt.time(1, 2)],
    ],
    ids=["frame", "series", "float32", "records", "dict", "str", "bytes", "numpy-scalars"],
)
def test_format_predictions_examples(prediction: Any) -> None:
    assert scoring.format_predictions(prediction) == _mlflow_bytes(prediction)


def test_unserializable_prediction_is_a_json_500(tmp_path: Path) -> None:
    path = tmp_path / "sets"
    mlflow.pyfunc.save_model(str(path), python_model=SetModel(), signature=_X_SIGNATURE, pip_requirements=[])
    pair = Pair(path)
    body = json.dumps({"inputs": [1.0]}).encode()
    got = pair.ours(body, JSON)
    assert pair.reference(body, JSON).status_code == 500
    # MLflow lets the error escape (a plain-text 500); ours is a JSON 500 without a traceback.
    assert (got.status, got.content_type) == (500, JSON)
    assert _json(got.body) == {"error_code": "INTERNAL_ERROR", "message": "internal error while scoring; see the server log"}


# ------------------------------------------------------------------------------ model exceptions

_X_SIGNATURE = ModelSignature(inputs=Schema([ColSpec("double", "x")]))


class SetModel(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None):
        return {1, 2}  # json cannot encode a set


class MlflowRaisingModel(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params=None):
        raise MlflowException.invalid_parameter_value("the model refuses x")


class HintedModel(PythonModel):
    def predict(self, model_input: list[str], params=None) -> list[str]:
        return [s.upper() for s in model_input]


class FromExampleModel(PythonModel):
    def predict(self, model_input: TypeFromExample, params=None):
        return {"type": type(model_input).__name__, "value": model_input}


_HINT_BODIES = [
    {"inputs": ["x", "y"]},
    {"inputs": [1]},
    {"inputs": "x"},
    {"instances": ["a"]},
    {"dataframe_split": {"columns": [0], "data": [["x"]]}},
    {"dataframe_records": [{"0": "x"}]},
    {"inputs": ["x"], "params": {"p": 1}},
]


@pytest.mark.parametrize("kind", ["type-hint", "type-from-example"])
def test_type_hinted_models_answer_as_mlflow(tmp_path: Path, kind: str) -> None:
    """Type-hinted models take ``inputs`` as is (MLflow validates inside the model); models typed from
    their input example get the DataFrame converted back to the example's format."""
    path = tmp_path / kind
    if kind == "type-hint":
        mlflow.pyfunc.save_model(str(path), python_model=HintedModel(), pip_requirements=[])
    else:
        mlflow.pyfunc.save_model(str(path), python_model=FromExampleModel(), input_example=["a", "b"], pip_requirements=[])
    pair = Pair(path)
    for document in _HINT_BODIES:
        body = json.dumps(document).encode()
        assert_same(pair.reference(body, JSON), pair.ours(body, JSON), f"{kind}: {document}")
    assert pair.ours(b'{"inputs": ["x", "y"]}', JSON).status == 200


def test_model_raising_mlflow_exception_keeps_its_code(tmp_path: Path) -> None:
    path = tmp_path / "raising"
    mlflow.pyfunc.save_model(str(path), python_model=MlflowRaisingModel(), signature=_X_SIGNATURE, pip_requirements=[])
    pair = Pair(path)
    body = json.dumps({"inputs": [1.0]}).encode()
    got = pair.ours(body, JSON)
    assert_same(pair.reference(body, JSON), got)
    doc = _json(got.body)
    assert doc["error_code"] == "INVALID_PARAMETER_VALUE"
    assert doc["message"].startswith("Failed to predict data '") and doc["message"].endswith("Error: the model refuses x")


def test_model_exception_stack_trace(pairs: Pairs) -> None:
    case = _BY_ID["failing:model-raises"]
    pair = pairs["failing"]
    doc = _json(pair.ours(case.body, case.content_type, stack_trace=True).body)
    assert doc["message"] == responses.MODEL_ERROR_MESSAGE
    assert doc["stack_trace"].startswith("Traceback (most recent call last):")
    assert doc["stack_trace"].rstrip().endswith("ValueError: model exploded on purpose")
    doc = _json(pair.ours(case.body, case.content_type, stack_trace=False).body)
    assert "stack_trace" not in doc and doc["error_code"] == "BAD_REQUEST"


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_default_bodies_carry_no_traceback(pairs: Pairs, case: ScoringCase) -> None:
    """Issue 12: with the default settings no /invocations body carries a traceback; where MLflow's
    has one (model exceptions, CSV/Parquet parse errors) ours is the same body without it."""
    if case.id in DELIBERATE:
        return
    pair = pairs[case.model]
    got = pair.ours(case.body, case.content_type, stack_trace=False)
    assert b"Traceback" not in got.body and b"stack_trace" not in got.body, case.id
    if got.content_type == JSON:
        exact = _json(pair.ours(case.body, case.content_type, stack_trace=True).body)
        exact.pop("stack_trace", None)
        assert _json(got.body) == exact or case.model == "failing", case.id


# ------------------------------------------------------------------------- ping, health, version


def test_ping_health_version(pairs: Pairs) -> None:
    client = pairs["wine"].mlflow
    for path in ("/ping", "/health"):
        r = client.get(path)
        assert responses.ping_body() == (r.status_code, r.content, r.headers["content-type"])
    r = client.get("/version")
    assert responses.version_body() == (r.status_code, r.content, r.headers["content-type"])


# ---------------------------------------------------------------------------------- details


def test_big_integers_are_read_exactly(pairs: Pairs) -> None:
    """orjson would read integers beyond 64 bits as floats; MLflow (Python's json) keeps them."""
    body = b'{"dataframe_records": [{"prompt": 18446744073709551616}, {"prompt": -9223372036854775809}]}'
    pair = pairs["text"]
    got = pair.ours(body, JSON)
    assert_same(pair.reference(body, JSON), got)
    assert b"18446744073709551616" in got.body
    assert reading.load_json(b'{"a": [12345678901234567890123]}') == {"a": [12345678901234567890123]}
    assert reading.load_json(b'{"a": 1.5}') == {"a": 1.5}


def test_content_type_parameters() -> None:
    """MLflow's rules: charset (any case of utf-8) only; parameter names are case-sensitive."""
    served = None  # content-type errors are answered before the model is looked at
    assert scoring.invoke(served, b"{}", "application/json; charset=latin-1").status == 415
    got = scoring.invoke(served, b"{}", "application/json; Charset=utf-8")
    assert got.status == 415 and got.body.startswith(b"Unrecognized content type parameters: Charset.")
    got = scoring.invoke(served, b"{}", "text/html")
    assert got.body == (
        b"This predictor only supports the following content types: Types: ['text/csv', "
        b"'application/json', 'application/vnd.apache.parquet']. Got 'text/html'."
    )
    # MLflow fails on a missing Content-Type with a bare 500; a client's mistake is a 4xx here.
    got = scoring.invoke(served, b"{}", None)
    assert (got.status, got.content_type) == (415, "text/plain; charset=utf-8")
    assert got.body.endswith(b"Got 'None'.")


def test_fast_path_decodes_inputs_through_the_model_plan(pairs: Pairs) -> None:
    """The fast path is the V2 decoder: same columns and dtypes as an /infer request would get."""
    served = pairs["mixed"].served
    body = json.dumps({"dataframe_records": [MIXED_ROW]}).encode()
    data, enforce, _ = model_input(served, reading.read_json(served, body))
    assert not enforce
    assert list(data.columns) == ["id", "score", "name", "flag", "when", "blob", "note"]
    assert data["id"].dtype == np.int64 and data["score"].dtype == np.float64 and data["flag"].dtype == bool
    assert data["blob"].tolist() == [b"hello"]
    assert pd.api.types.is_datetime64_dtype(data["when"])


def test_wine_rows_reach_the_model_in_order(pairs: Pairs) -> None:
    pair = pairs["wine"]
    split = {"columns": list(reversed(WINE_COLUMNS)), "data": [list(reversed(WINE_ROW))]}
    body = json.dumps({"dataframe_split": split}).encode()
    got = pair.ours(body, JSON)
    want = pair.pyfunc.predict(pd.DataFrame([WINE_ROW], columns=WINE_COLUMNS))
    assert json.loads(got.body) == {"predictions": [float(want[0])]}


# ------------------------------------------------------------------------- params, error bodies

_PARAMS = ParamSchema(
    [ParamSpec("m", "double", 1.0), ParamSpec("w", "double", [1.0], (-1,)), ParamSpec("s", "string", "")]
)


@pytest.mark.parametrize(
    "given, want",
    [
        (None, {"m": 1.0, "w": [1.0], "s": ""}),
        ({}, {"m": 1.0, "w": [1.0], "s": ""}),
        ({"m": 2, "zz": 1}, {"m": 2.0, "w": [1.0], "s": ""}),  # unknown ignored, int -> double
        ({"w": [1, 2.5]}, {"m": 1.0, "w": [1.0, 2.5], "s": ""}),
    ],
)
def test_validate_json_params(given, want) -> None:
    assert validate_json_params(given, _PARAMS) == want


@pytest.mark.parametrize("given", [[1], "m=2", {"m": "abc"}, {"w": "[1.0]"}, {"w": 1.0}, {"m": [1.0]}, {"s": 3}])
def test_validate_json_params_rejects(given) -> None:
    with pytest.raises(InvalidParams):
        validate_json_params(given, _PARAMS)


@pytest.mark.parametrize("given, want", [(None, None), ({}, {}), ({"a": 1}, {}), ([1], {}), ("x", {})])
def test_validate_json_params_without_schema_ignores_params(given, want) -> None:
    assert validate_json_params(given, None) == want


def test_error_for_status() -> None:
    got = scoring.error_for_status(404, "no version 9 of 'm'")
    assert (got.status, got.content_type) == (404, "application/json")
    assert _json(got.body)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert _json(got.body)["message"] == "no version 9 of 'm'"
    assert _json(scoring.error_for_status(500, "x").body)["error_code"] == "INTERNAL_ERROR"
    assert _json(scoring.error_for_status(400, "x").body)["error_code"] == "BAD_REQUEST"
    got = scoring.no_default_model(["a", "b"])
    assert got.status == 404 and _json(got.body)["error_code"] == "ENDPOINT_NOT_FOUND"
    assert "a, b" in _json(got.body)["message"]


def test_scoring_response_is_plain_data() -> None:
    import pickle

    response = scoring.ScoringResponse(200, b"{}", "application/json")
    assert pickle.loads(pickle.dumps(response)) == response
