"""Our V2 REST ``infer`` route (``_patches/v2_infer.py``) against MLServer's own, on random bodies.

* :func:`parse_v2_json` builds, for every body, exactly the request MLServer's parsing builds (large float
  arrays as ndarrays standing for the same lists), or ``None`` where MLServer's parsing refuses the body;
* through MLServer's real app (in process, our runtime loaded), every body gets the same status and the
  same JSON from our route as from MLServer's route (``fast_v2`` off): same model input, same 400s.

Bodies are written as text, token by token, valid and invalid: number formats (exponents, ``-0``, the
extremes, integers among floats), literals and strings among numbers, nested arrays, a ``"data"`` key in
``parameters``, repeated keys, backslashes, byte order marks, truncation, garbage after the document;
half of them large enough (over 32 kB) for the simdjson cut.
"""

from __future__ import annotations

import math
import random
import tempfile
from pathlib import Path
from typing import Any, Optional

import mlflow
import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel
from mlserver.types import InferenceRequest
from pydantic import ValidationError

from mlserver_sigaware._patches import v2_json
from mlserver_sigaware._patches.v2_json import parse_v2_json
from mlserver_sigaware.settings import server_settings

# ----------------------------------------------------------------------------------------- bodies

_FLOAT_FORMATS = (repr, lambda v: "%.17g" % v, lambda v: "%.6e" % v, lambda v: "%.3E" % v, lambda v: "%.17e" % v)
_ODD_TOKENS = ("-0", "-0.0", "0", "1e308", "5e-324", "-2.2250738585072014e-308", "1E+2", "9007199254740993",
               "18446744073709551615", "true", "false", "null", '"x"', '"1.5"', "[1.5]", "[]", "1e400", "01",
               "1.", ".5", "+1", "NaN", "Infinity", "1e", "--1")  # fmt: skip


@st.composite
def _number_tokens(draw, n: int) -> list[str]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    style = draw(st.sampled_from(["floats"] * 6 + ["ints", "mixed"]))
    fmt = draw(st.sampled_from(_FLOAT_FORMATS))
    tokens = []
    for _ in range(n):
        v = rng.uniform(-1e3, 1e3) * (10 ** rng.randint(-5, 5))
        if style == "ints" or (style == "mixed" and rng.random() < 0.2):
            tokens.append(str(int(v)))
        else:
            tokens.append(fmt(v))
    for _ in range(draw(st.sampled_from([0] * 14 + [1, 2]))):
        if tokens:
            tokens[rng.randrange(len(tokens))] = draw(st.sampled_from(_ODD_TOKENS))
    return tokens


@st.composite
def v2_bodies(draw) -> bytes:
    large = draw(st.booleans())
    rows = draw(st.integers(2500, 3500)) if large else draw(st.integers(1, 4))
    sep = draw(st.sampled_from([",", ", ", ",\n  "]))
    inputs = []
    plain = draw(st.booleans())  # the echo model's own inputs, as a client following its metadata sends them
    names = ["a", "b", "c"] if plain else draw(st.lists(st.sampled_from(["a", "b", "c", "x"]), min_size=1, max_size=4))
    for name in names:
        datatype = "FP64" if plain else draw(st.sampled_from(["FP64", "FP64", "FP32", "INT64", "BOOL", "BYTES", "FP99"]))
        n = rows if plain or draw(st.integers(0, 9)) else rows + 1
        tokens = draw(_number_tokens(n))
        data = "[" + sep.join(tokens) + "]"
        if draw(st.integers(0, 12)) == 0:  # nested, row by row
            data = "[" + sep.join(f"[{t}]" for t in tokens) + "]"
        shape = draw(st.sampled_from([f"[{rows}]"] * 4 + [f"[{rows}, 1]", '["x"]', f"[{-rows}]", f"[{rows}.0]"]))
        fields = [f'"name": "{name}"', f'"datatype": "{datatype}"', f'"shape": {shape}', f'"data": {data}']
        extra = draw(st.sampled_from([""] * 8 + ["params", "params-data", "dup-data", "no-data", "escape", "key"]))
        if extra == "params":
            fields.append('"parameters": {"content_type": "np"}')
        elif extra == "params-data":
            fields.append(f'"parameters": {{"data": {data}}}')
        elif extra == "dup-data":
            fields.append(f'"data": {data}')
        elif extra == "no-data":
            fields.pop()
        elif extra == "key":  # a key ending in "data" behind an escaped quote
            fields.append(f'"k\\"data": {data}')
        elif extra == "escape":
            fields[0] = f'"name": "\\u00{ord(name):02x}"'
        order = draw(st.permutations(fields))
        inputs.append("{" + ", ".join(order) + "}")
    top = [f'"inputs": [{", ".join(inputs)}]']
    if draw(st.booleans()):
        top.append('"id": "req-1"')
    if draw(st.integers(0, 4)) == 0:
        top.append('"parameters": {"content_type": "pd", "x": [1.5, 2]}')
    if draw(st.integers(0, 6)) == 0:
        top.append('"outputs": [{"name": "a"}]')
    body = ("{" + ", ".join(draw(st.permutations(top))) + "}").encode()
    damage = draw(st.sampled_from(["none"] * 16 + ["truncate", "garbage", "bom", "unicode"]))
    if damage == "truncate":
        body = body[: draw(st.integers(1, len(body) - 1))]
    elif damage == "garbage":
        body += b" x"
    elif damage == "bom":
        body = b"\xef\xbb\xbf" + body
    elif damage == "unicode":
        body = body.replace(b'"id": "req-1"', '"id": "r\u00e9q"'.encode()).replace(b'"name": "a"', b'"name": "\xe2\x82\xac"')
    return body


def _reference(body: bytes) -> Optional[InferenceRequest]:
    """What MLServer's route builds: orjson, then pydantic (``None``: it answers 400)."""
    try:
        return InferenceRequest.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError):
        return None


def _listed(request: InferenceRequest) -> tuple[InferenceRequest, int]:
    """``request`` with its ndarrays as lists, and how many there were (float64, flat, each)."""
    arrays = 0
    for inp in request.inputs:
        root = inp.data.root
        if isinstance(root, np.ndarray):
            assert root.dtype == np.float64 and root.ndim == 1
            inp.data.root = root.tolist()
            arrays += 1
    return request, arrays


def _dumps(request: InferenceRequest, **kw: Any) -> bytes:
    return orjson.dumps(request.model_dump(**kw))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=v2_bodies())
def test_fast_parse_builds_what_mlserver_builds(body: bytes) -> None:
    want = _reference(body)
    got = parse_v2_json(body)
    if want is None:
        assert got is None
        return
    assert got is not None
    got, arrays = _listed(got)
    note(f"{arrays} arrays of {len(got.inputs)} inputs, {len(body)} bytes")
    for kw in ({}, {"exclude_unset": False, "exclude_none": False}):
        assert _dumps(got, **kw) == _dumps(want, **kw)


def test_large_float_arrays_become_arrays_and_the_rest_stays_as_orjson_makes_it() -> None:
    rng = np.random.default_rng(0)
    columns = {n: rng.standard_normal(3000).tolist() for n in "abc"}
    columns["c"][5] = 3.0  # integral, but a float literal
    body = orjson.dumps({"inputs": [{"name": n, "datatype": "FP64", "shape": [3000], "data": v}
                                    for n, v in columns.items()] + [  # fmt: skip
        {"name": "ints", "datatype": "INT64", "shape": [3000], "data": list(range(3000))},
        {"name": "few", "datatype": "FP64", "shape": [2], "data": [1.5, 2.5]},
    ]})
    assert len(body) > v2_json.LARGE_BODY_BYTES
    request = parse_v2_json(body)
    kinds = {i.name: type(i.data.root) for i in request.inputs}
    assert kinds == {"a": np.ndarray, "b": np.ndarray, "c": np.ndarray, "ints": list, "few": list}
    for inp in request.inputs[:3]:
        assert inp.data.root.tolist() == columns[inp.name]


# ------------------------------------------------------------------ MLServer's app, in process


class Echo(PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@pytest.fixture(scope="module")
def app_client():
    from mlserver.handlers import DataPlane, ModelRepositoryHandlers
    from mlserver.registry import MultiModelRegistry
    from mlserver.repository import SchemalessModelRepository
    from mlserver.rest.app import create_app
    from mlserver.settings import ModelParameters, ModelSettings, Settings
    from starlette.testclient import TestClient

    from mlserver_sigaware import SignatureAwareRuntime
    from mlserver_sigaware._patches import rest_app

    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.DataFrame({"a": [0.5], "b": [1.5], "c": [2.5]})
        mlflow.pyfunc.save_model(path=f"{tmp}/echo", python_model=Echo(), signature=infer_signature(frame, frame),
                                 pip_requirements=[])  # fmt: skip
        settings = Settings(parallel_workers=0, metrics_endpoint=None)
        registry = MultiModelRegistry()
        data_plane = DataPlane(settings=settings, model_registry=registry)
        handlers = ModelRepositoryHandlers(repository=SchemalessModelRepository(tmp), model_registry=registry)
        app = create_app(settings, data_plane, handlers)
        rest_app.install(app)
        with TestClient(app, raise_server_exceptions=False) as client:
            model = ModelSettings(name="echo", implementation=SignatureAwareRuntime,
                                  parameters=ModelParameters(uri=f"{tmp}/echo"))  # fmt: skip
            client.portal.call(registry.load, model)
            yield client


def _post(client, body: bytes, fast: bool, headers: Optional[dict] = None) -> tuple[int, Any]:
    config = server_settings()
    before = config.fast_v2
    config.fast_v2 = fast
    try:
        response = client.post("/v2/models/echo/infer", content=body, headers=headers or {})
    finally:
        config.fast_v2 = before
    try:
        document = response.json()
    except ValueError:
        document = response.text
    if isinstance(document, dict) and document.get("id", "req-1") != "req-1":
        del document["id"]  # MLServer's uuid for a request without one
    return response.status_code, document


def _plain_body(rows: int, odd: Optional[tuple[int, Any]] = None) -> bytes:
    columns = {n: [i / 7 + k for i in range(rows)] for k, n in enumerate("abc")}
    if odd is not None:
        columns["b"][odd[0]] = odd[1]
    return orjson.dumps({"inputs": [{"name": n, "datatype": "FP64", "shape": [rows], "data": v} for n, v in columns.items()]})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])  # fmt: skip
@example(body=_plain_body(3000))
@example(body=_plain_body(3000, (17, 3)))  # an integer among floats: that column stays a list
@example(body=_plain_body(3000, (17, None)))  # a null in a required column: the 400 names it
@example(body=_plain_body(3000, (2999, "x")))
@given(body=v2_bodies())
def test_our_route_answers_every_body_as_mlservers_route(app_client, body: bytes) -> None:
    ours = _post(app_client, body, fast=True)
    theirs = _post(app_client, body, fast=False)
    note(f"{theirs[0]}: {str(theirs[1])[:300]}")
    assert ours[0] < 500 and theirs[0] < 500
    assert ours == theirs


def test_our_route_answers_with_mlservers_bytes(app_client) -> None:
    rows = 5000
    body = orjson.dumps({"id": "r", "inputs": [{"name": n, "datatype": "FP64", "shape": [rows],
                                               "data": [i / 7 + k for i in range(rows)]}  # fmt: skip
                                              for k, n in enumerate("abc")]})
    for payload in (body, body[:0] + orjson.dumps({"id": "r", "inputs": [{"name": n, "datatype": "FP64", "shape": [1],
                                                                           "data": [math.pi]} for n in "abc"]})):  # fmt: skip
        config = server_settings()
        answers = []
        for fast in (True, False):
            config.fast_v2 = fast
            try:
                response = app_client.post("/v2/models/echo/infer", content=payload)
            finally:
                config.fast_v2 = True
            assert response.status_code == 200, response.text
            answers.append((response.content, response.headers["content-type"]))
        assert answers[0] == answers[1]


def test_binary_request_gives_the_json_answer(app_client) -> None:
    from tritonclient.http._utils import _get_inference_request
    from tritonclient.http import InferInput, InferRequestedOutput

    values = {n: np.arange(3000, dtype=np.float64) / (k + 3) for k, n in enumerate("abc")}
    inputs = []
    for n, v in values.items():
        inp = InferInput(n, [len(v)], "FP64")
        inp.set_data_from_numpy(v)
        inputs.append(inp)
    body, json_size = _get_inference_request(inputs, "r", [InferRequestedOutput("b", binary_data=False)],
                                             0, False, False, 0, None, None)  # fmt: skip
    status, binary_answer = _post(app_client, body, fast=True, headers={"Inference-Header-Content-Length": str(json_size)})
    json_body = orjson.dumps({"id": "r", "inputs": [{"name": n, "datatype": "FP64", "shape": [3000], "data": v.tolist()}
                                                    for n, v in values.items()],  # fmt: skip
                              "outputs": [{"name": "b", "parameters": {"binary_data": False}}]})
    assert (status, binary_answer) == _post(app_client, json_body, fast=False)
    # and refused by MLServer's own route, which has no binary extension
    status, refusal = _post(app_client, body, fast=False, headers={"Inference-Header-Content-Length": str(json_size)})
    assert status == 400 and "not valid JSON" in refusal["error"]

