"""Params of V2 requests against the params schema: defaults, overrides, and 400s naming the param."""

from __future__ import annotations


import pytest
from mlflow.types.schema import (
    ColSpec,
    ParamSchema,
    ParamSpec,
    Schema,
)

from mlserver_sigaware.errors import InvalidParams
from tests.codec.codec_cases import MIXED, decoder, encode, inp, mixed_request, request  # noqa: F401


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


