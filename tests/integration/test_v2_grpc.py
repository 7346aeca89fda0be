"""The V2 gRPC API of a real ``mlserver start`` (``parallel_workers: 0``) through ``tritonclient.grpc``:
every zoo model, metadata, params as request parameters, errors as gRPC status codes."""

from __future__ import annotations

import pytest

from cases import (
    BOOM,
    ERROR_CASES,
    TRANSPORT_LIMITS,
    VALID_CASES,
    ErrorCase,
    Tensor,
    check_error,
    check_reply,
    metadata_matches,
    params_case,
)
from v2 import GRPC_CODES, GrpcClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(main_server):
    c = GrpcClient(main_server.grpc_url)
    yield c
    c.close()


@pytest.mark.parametrize("case_name", VALID_CASES)
def test_round_trip(client, valid_cases, case_name):
    if client.name in TRANSPORT_LIMITS.get(case_name, ()):
        pytest.skip("gRPC BYTES tensors have no null")
    case = valid_cases[case_name]
    reply = client.infer(case.model, case.inputs, parameters=case.parameters)
    check_reply(reply, case)
    assert reply.model_name == case.model


def test_strings_decode_properly(client, valid_cases):
    """BYTES outputs are UTF-8 bytes of the text itself: not a ``b'...'`` repr, not base64."""
    for name in ("text", "mixed", "composite", "no_signature"):
        case = valid_cases[name]
        reply = client.infer(case.model, case.inputs)
        assert reply.ok, reply.raw
        for out_name, out in reply.outputs.items():
            if out.datatype != "BYTES":
                continue
            raw = reply.raw_outputs[out_name].ravel().tolist()
            assert all(isinstance(v, bytes) for v in raw), raw
            assert [v.decode("utf-8") for v in raw] == case.expected[out_name].data


@pytest.mark.parametrize("selection", [["greeting"], ["when_next", "id"]])
def test_outputs_selection(client, valid_cases, selection):
    case = valid_cases["mixed"]
    check_reply(client.infer("mixed", case.inputs, outputs=selection), case, outputs=selection)


@pytest.mark.parametrize("model", VALID_CASES)
def test_metadata_outputs_match_infer(client, valid_cases, model):
    if client.name in TRANSPORT_LIMITS.get(model, ()):
        pytest.skip("gRPC BYTES tensors have no null")
    case = valid_cases[model]
    meta = client.metadata(case.model)
    assert meta["name"] == case.model and meta["versions"] == []
    reply = client.infer(case.model, case.inputs)
    assert reply.ok, reply.raw
    if case.model == "no_signature":
        assert meta["inputs"] == [] and meta["outputs"] == []
        return
    metadata_matches(meta, reply)
    assert all(out.content_type for out in reply.outputs.values())


def test_metadata_mixed_inputs(client):
    meta = client.metadata("mixed")
    assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == [
        ("id", "INT64", [-1]),
        ("score", "FP64", [-1]),
        ("name", "BYTES", [-1]),
        ("flag", "BOOL", [-1]),
        ("when", "BYTES", [-1]),
        ("blob", "BYTES", [-1]),
        ("note", "BYTES", [-1]),
    ]


# -------------------------------------------------------------------------------------- params


def test_params_defaults_reach_predict(client, valid_cases):
    case = valid_cases["params-defaults"]
    check_reply(client.infer("params", case.inputs), case)


@pytest.mark.parametrize(
    "parameters,expected",
    [
        # int64_param, string_param, bool_param; the list as its JSON text.
        (
            {"multiplier": 3, "suffix": "grpc ü", "flags": True, "weights": "[0.5, 2.0]"},
            {"multiplier": 3.0, "suffix": "grpc ü", "flags": True, "weights": (0.5, 2.0)},
        ),
        # MLServer's gRPC parameters have no double: a fractional value travels as text.
        ({"multiplier": "2.5"}, {"multiplier": 2.5}),
        ({"flags": True, "weights": "[4]"}, {"flags": True, "weights": (4.0,)}),
    ],
    ids=["typed", "double-as-text", "bool-and-int-list"],
)
def test_params_overrides_reach_predict(client, parameters, expected):
    case = params_case(parameters, **expected)
    check_reply(client.infer("params", case.inputs, parameters=parameters), case)


def test_double_param_sent_as_double_is_a_400_not_a_500(client, valid_cases):
    """tritonclient sends a Python float as ``double_param``, which MLServer 1.7.1's proto lacks and
    drops: the client must hear that the param was not received, not that the model crashed."""
    reply = client.infer("params", [Tensor("x", "FP64", [1], [1.0])], parameters={"multiplier": 2.5})
    assert reply.code == GRPC_CODES[400], reply.raw
    assert "param 'multiplier'" in reply.error
    assert "model raised" not in reply.error
    case = valid_cases["params-defaults"]
    check_reply(client.infer("params", case.inputs), case)


# -------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("case_name", ERROR_CASES)
def test_error_then_still_serving(client, transport_error_cases, recovery_cases, case_name):
    case = transport_error_cases[case_name]
    reply = client.infer(case.model, case.inputs, outputs=case.outputs, parameters=case.parameters)
    check_error(reply, case, client.code(case.status))
    recover = recovery_cases[case.recover or case.model]
    check_reply(client.infer(recover.model, recover.inputs, parameters=recover.parameters), recover)


def test_model_failure_is_internal_with_the_models_message(client, recovery_cases):
    reply = client.infer("failing", [Tensor("x", "FP64", [2], [1.0, -1.0])])
    assert reply.code == "StatusCode.INTERNAL"
    assert reply.error == f"model raised ValueError: {BOOM}"
    ok = recovery_cases["failing"]
    for _ in range(3):
        check_reply(client.infer("failing", ok.inputs), ok)


def test_shape_vs_data_length_is_invalid_argument(client, recovery_cases):
    """tritonclient refuses to build such a request: send the protobuf message by hand."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name="failing")
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[3])
    tensor.contents.fp64_contents.extend([1.0, 2.0])
    reply = client.raw_infer(request)
    check_error(reply, ErrorCase("failing", [], 400, ("input 'x'", "[3]", "got 2")), GRPC_CODES[400])
    ok = recovery_cases["failing"]
    check_reply(client.infer("failing", ok.inputs), ok)


def test_unknown_model_metadata_is_not_found(client):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as info:
        client.client.get_model_metadata("no-such-model")
    assert info.value.status() == GRPC_CODES[404]
    assert "no-such-model" in info.value.message()
