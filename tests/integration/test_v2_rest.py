"""The V2 REST API of a real ``mlserver start`` (``parallel_workers: 0``), through plain ``requests``
and through ``tritonclient.http``: every zoo model, metadata, params, errors."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from cases import (
    BOOM,
    ERROR_CASES,
    SLASH_COLUMN,
    TRANSPORT_LIMITS,
    VALID_CASES,
    check_error,
    check_reply,
    metadata_matches,
    mixed_case,
    mixed_row,
    params_case,
)
from v2 import RestClient, make_client

pytestmark = pytest.mark.integration

HTTP_CLIENTS = ("requests", "triton_http", "triton_http_binary")

#: Every model of the main server with a signature, and what is special about it.
LOCAL_MODELS_WITH_SIGNATURE = ("wine", "mixed", "tensor", "dict_tensors", "params", "text", "composite", "failing")


@pytest.fixture(scope="module", params=HTTP_CLIENTS)
def client(request, main_server):
    c = make_client(request.param, main_server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def rest(main_server):
    c = RestClient(main_server.http_url)
    yield c
    c.close()


# ----------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("case_name", VALID_CASES)
def test_round_trip(client, valid_cases, case_name):
    if client.name in TRANSPORT_LIMITS.get(case_name, ()):
        pytest.skip(f"{client.name} cannot send this request")
    case = valid_cases[case_name]
    reply = client.infer(case.model, case.inputs, parameters=case.parameters)
    check_reply(reply, case)
    assert reply.model_name == case.model


def test_wine_columns_are_matched_by_name(client, valid_cases):
    """Inputs are columns by name (the '/' one included), whatever order the client sends."""
    case = valid_cases["wine"]
    reversed_inputs = list(reversed(case.inputs))
    assert reversed_inputs[1].name == SLASH_COLUMN
    check_reply(client.infer("wine", reversed_inputs), case)


def test_local_model_reports_no_version(rest, valid_cases):
    """A local folder has no registry version: the response names none (body nor header)."""
    reply = rest.infer("text", valid_cases["text"].inputs)
    assert reply.ok and reply.model_version is None
    assert "mlflow-model-version" not in reply.headers
    assert rest.metadata("text")["versions"] == []


# --------------------------------------------------------------------------- strings and dates


def test_strings_come_back_as_json_strings(rest, valid_cases):
    for name in ("text", "mixed", "composite", "no_signature"):
        case = valid_cases[name]
        reply = rest.infer(case.model, case.inputs)
        assert reply.ok, reply.raw
        for out_name, out in reply.outputs.items():
            if out.datatype != "BYTES":
                continue
            raw = reply.raw_outputs[out_name]
            assert all(isinstance(v, str) for v in raw), (name, out_name, raw)
            assert not any(v.startswith(("b'", 'b"')) for v in raw), raw
            # Not base64 either: exactly the expected text.
            assert raw == case.expected[out_name].data


def test_datetime_outputs_are_iso_8601(rest, valid_cases):
    case = valid_cases["mixed"]
    reply = rest.infer("mixed", case.inputs)
    assert reply.ok, reply.raw
    out = reply.outputs["when_next"]
    assert out.content_type == "datetime"
    for value, row in zip(out.data, [mixed_row(i) for i in range(3)]):
        parsed = dt.datetime.fromisoformat(value)
        assert parsed == dt.datetime.fromisoformat(row["when"]) + dt.timedelta(days=1)
        assert value == parsed.isoformat()


def test_binary_input_arrives_as_bytes(rest):
    """Base64 on the wire, raw bytes in the model: blob_len counts the decoded bytes."""
    rows = [mixed_row(0), mixed_row(4)]
    reply = rest.infer("mixed", mixed_case(rows).inputs)
    assert reply.ok, reply.raw
    assert reply.values("blob_len") == [len(r["blob"]) for r in rows]
    assert len(base64.b64encode(rows[1]["blob"])) != len(rows[1]["blob"])


@pytest.mark.parametrize("selection", [["greeting"], ["when_next", "id"]])
def test_outputs_selection(client, valid_cases, selection):
    case = valid_cases["mixed"]
    reply = client.infer("mixed", case.inputs, outputs=selection)
    check_reply(reply, case, outputs=selection)


# -------------------------------------------------------------------------------------- params


def test_params_defaults_reach_predict(client, valid_cases):
    case = valid_cases["params-defaults"]
    check_reply(client.infer("params", case.inputs), case)


@pytest.mark.parametrize("weights", [[0.5, 2.0], "[0.5, 2.0]"], ids=["list", "json-text"])
def test_params_overrides_reach_predict(client, weights):
    parameters = {"multiplier": 2.5, "suffix": "!ü", "flags": True, "weights": weights}
    case = params_case(parameters, multiplier=2.5, weights=(0.5, 2.0), suffix="!ü", flags=True)
    check_reply(client.infer("params", case.inputs, parameters=parameters), case)


def test_some_params_overridden_others_default(client):
    case = params_case({"suffix": "only"}, suffix="only")
    check_reply(client.infer("params", case.inputs, parameters=case.parameters), case)


# ------------------------------------------------------------------------------------ metadata


@pytest.mark.parametrize("model", VALID_CASES)
def test_metadata_outputs_match_infer(client, valid_cases, model):
    case = valid_cases[model]
    if client.name in TRANSPORT_LIMITS.get(model, ()):
        pytest.skip(f"{client.name} cannot send this request")
    meta = client.metadata(case.model)
    reply = client.infer(case.model, case.inputs, parameters=case.parameters)
    assert reply.ok, reply.raw
    if case.model == "no_signature":
        assert not meta.get("inputs") and not meta.get("outputs")
        return
    metadata_matches(meta, reply)
    declared = {o["name"]: o for o in meta["outputs"]}
    for name, out in reply.outputs.items():
        assert out.content_type == declared[name]["parameters"]["content_type"], name


@pytest.mark.parametrize("model", LOCAL_MODELS_WITH_SIGNATURE)
def test_metadata_tensors_carry_content_types(rest, model):
    meta = rest.metadata(model)
    assert meta["name"] == model
    assert meta["versions"] == []
    assert meta["inputs"] and meta["outputs"]
    for tensor in meta["inputs"] + meta["outputs"]:
        assert tensor["parameters"]["content_type"] in {"np", "str", "base64", "datetime", "json"}, tensor
    required = {t["name"]: t["parameters"].get("required", True) for t in meta["inputs"]}
    if model == "mixed":
        assert required == {
            "id": True, "score": True, "name": True, "flag": True, "when": True, "blob": True, "note": False,
        }
    else:
        assert all(required.values()), required


def test_metadata_mixed_types(rest):
    meta = rest.metadata("mixed")
    by_name = {t["name"]: (t["datatype"], t["shape"], t["parameters"]["content_type"]) for t in meta["inputs"]}
    assert by_name == {
        "id": ("INT64", [-1], "np"),
        "score": ("FP64", [-1], "np"),
        "name": ("BYTES", [-1], "str"),
        "flag": ("BOOL", [-1], "np"),
        "when": ("BYTES", [-1], "datetime"),
        "blob": ("BYTES", [-1], "base64"),
        "note": ("BYTES", [-1], "str"),
    }


def test_metadata_wine_lists_the_slash_column(rest):
    meta = rest.metadata("wine")
    names = [t["name"] for t in meta["inputs"]]
    assert len(names) == 13 and SLASH_COLUMN in names
    assert all(t["datatype"] == "FP64" for t in meta["inputs"])


def test_metadata_lists_params_schema(client):
    meta = client.metadata("params")
    params = {p["name"]: p for p in meta["parameters"]["params"]}
    assert params == {
        "multiplier": {"name": "multiplier", "type": "double", "default": 1.0, "shape": None},
        "suffix": {"name": "suffix", "type": "string", "default": "", "shape": None},
        "flags": {"name": "flags", "type": "boolean", "default": False, "shape": None},
        "weights": {"name": "weights", "type": "double", "default": [1.0], "shape": [-1]},
    }
    assert "params" not in (client.metadata("wine").get("parameters") or {})


# -------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("case_name", ERROR_CASES)
def test_error_then_still_serving(client, transport_error_cases, recovery_cases, case_name):
    case = transport_error_cases[case_name]
    reply = client.infer(case.model, case.inputs, outputs=case.outputs, parameters=case.parameters)
    check_error(reply, case, client.code(case.status))
    recover = recovery_cases[case.recover or case.model]
    check_reply(client.infer(recover.model, recover.inputs, parameters=recover.parameters), recover)


def test_model_failure_is_a_clean_500(rest, recovery_cases):
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1.0, -1.0]}]}
    response = rest.post_infer("failing", body)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": f"model raised ValueError: {BOOM}"}
    assert "Traceback" not in response.text
    for _ in range(3):  # and keeps serving
        ok = recovery_cases["failing"]
        check_reply(rest.infer("failing", ok.inputs), ok)


RAW_JSON_ERRORS = {
    # Values that no typed client would let through: only plain JSON can send them.
    "value-not-castable-string-for-double": (
        "failing",
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1.0, "abc"]}]},
        ("input 'x'", "'abc'"),
    ),
    "value-not-castable-fraction-for-long": (
        "mixed",
        None,  # built in the test: mixed with id data [1, 2.5] declared INT64
        ("input 'id'", "2.5"),
    ),
    "shape-vs-data-length": (
        "failing",
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [3], "data": [1.0, 2.0]}]},
        ("input 'x'", "[3]", "got 2"),
    ),
    "negative-shape": (
        "failing",
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1], "data": [1.0]}]},
        ("input 'x'",),
    ),
    "optional-column-typo": (
        "mixed",
        None,  # built in the test: mixed with "notes" instead of "note"
        ("unknown input", "notes"),
    ),
    "no-inputs": ("failing", {"inputs": []}, ("no inputs",)),
    "param-null": (
        "params",
        {
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}],
            "parameters": {"multiplier": None},
        },
        ("param 'multiplier'",),
    ),
}


@pytest.mark.parametrize("case_name", list(RAW_JSON_ERRORS))
def test_raw_json_errors_are_400(rest, recovery_cases, case_name):
    model, body, fragments = RAW_JSON_ERRORS[case_name]
    if case_name == "value-not-castable-fraction-for-long":
        inputs = [t.as_json() for t in mixed_case([mixed_row(0), mixed_row(1)]).inputs]
        inputs[0]["data"] = [1, 2.5]
        body = {"inputs": inputs}
    if case_name == "optional-column-typo":
        inputs = [t.as_json() for t in mixed_case([mixed_row(0)]).inputs]
        inputs[-1]["name"] = "notes"
        body = {"inputs": inputs}
    response = rest.post_infer(model, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    assert "Traceback" not in response.text
    ok = recovery_cases[model]
    check_reply(rest.infer(model, ok.inputs, parameters=ok.parameters), ok)


def test_unknown_model_metadata_is_404(rest):
    response = rest.session.get(f"{rest.base_url}/v2/models/no-such-model", timeout=10)
    assert response.status_code == 404
    assert "no-such-model" in response.json()["error"]
    assert "Traceback" not in response.text
