"""The typed API (``mlserver_sigaware.protocols.typed``): generated models, the shared type table, shorthands,
error paths, and ``predict_typed`` end to end on zoo models (in this process, no server)."""

from __future__ import annotations

import base64
import json
import logging

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.types.schema import (
    AnyType,
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
from pydantic import ValidationError

from mlserver_sigaware.codec import RequestDecoder
from mlserver_sigaware.errors import InvalidInput, OutputEncodingError
from mlserver_sigaware.protocols.typed.records import outputs_to_records, records_to_request
from mlserver_sigaware.signature import plan_inputs, plan_outputs
from mlserver_sigaware.protocols.typed.api import TypedRequestError, build_typed_models, predict_typed, typed_models
from mlserver_sigaware.protocols.typed.fields import (
    DATETIME_PATTERN,
    params_model,
    record_model,
    surely_a_datetime,
    surely_base64,
)
from tests.served_zoo import ServedZoo, load_served
from tests.type_cases import CASES, PARAM_CASES, ParamCase, Tensor, TypeCase, codec_accepts, input_schema, param_schema


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedZoo:
    return ServedZoo(tmp_path_factory.mktemp("typed-zoo"))


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level(logging.CRITICAL, logger="mlserver.sigaware")


def call(served_model, body) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, out = predict_typed(served_model, raw)
    return status, orjson.loads(out)


# ------------------------------------------------------------------------------- the shared table


def _record(case: TypeCase):
    return case.value if isinstance(case.mlflow_type, Tensor) else {"c": case.value}


def typed_accepts(case: TypeCase) -> bool:
    model = record_model(plan_inputs(input_schema(case.mlflow_type)))
    try:
        model.model_validate(_record(case))
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_typed_record_agrees_with_the_table(case: TypeCase):
    assert typed_accepts(case) is case.accepted


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # float32 overflow to inf, as the codec does
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES if c.accepted])
def test_accepted_records_become_v2_inputs_the_codec_decodes(case: TypeCase):
    """The bridge to the codec: whatever the typed model accepts, the codec decodes (one codec)."""
    plan = plan_inputs(input_schema(case.mlflow_type))
    request = records_to_request(plan, [_record(case)])
    RequestDecoder(plan).decode_inputs(request)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in PARAM_CASES])
def test_typed_params_agree_with_the_table(case: ParamCase):
    model = params_model(param_schema(case))
    try:
        model.model_validate({"p": case.value})
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted is case.accepted


def test_the_table_covers_every_mlflow_type():
    covered = {c.mlflow_type for c in CASES if isinstance(c.mlflow_type, DataType)}
    assert covered == set(DataType)
    kinds = {type(c.mlflow_type) for c in CASES}
    assert {Array, Object, Map, AnyType, Tensor} <= kinds


# ------------------------------------------------------------------------------- generated models


EVERY_TYPE = Schema(
    [
        ColSpec("boolean", "b"),
        ColSpec("integer", "i"),
        ColSpec("long", "l"),
        ColSpec("float", "f"),
        ColSpec("double", "od280/od315_of_diluted_wines"),
        ColSpec("string", "s"),
        ColSpec("binary", "bin"),
        ColSpec("datetime", "when"),
        ColSpec(Array("string"), "tags"),
        ColSpec(Object([Property("a", "long"), Property("b", "string", required=False)]), "meta"),
        ColSpec(Map("double"), "attrs"),
        ColSpec(AnyType(), "anything"),
        ColSpec("string", "note", required=False),
    ]
)


def test_record_model_of_every_mlflow_type():
    schema = record_model(plan_inputs(EVERY_TYPE)).model_json_schema()
    props = schema["properties"]
    assert list(props) == [c.name for c in EVERY_TYPE.inputs]
    assert schema["required"] == [c.name for c in EVERY_TYPE.inputs if c.required]
    assert schema["additionalProperties"] is False

    def first(name):  # the documented type, without the field's title and description
        schema = props[name]
        if "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        return {k: v for k, v in schema.items() if k not in ("title", "description")}

    # Required columns take null like the codec (NaN, a missing value) but do not advertise it.
    assert not any("anyOf" in props[c.name] for c in EVERY_TYPE.inputs if c.required)
    assert {"type": "null"} in props["note"]["anyOf"]
    assert first("b")["type"] == "boolean"
    assert first("i") == {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    assert first("l")["format"] == "int64" and first("l")["maximum"] == 2**63 - 1
    assert first("f") == {"type": "number", "format": "float"}
    assert first("od280/od315_of_diluted_wines") == {"type": "number", "format": "double"}
    assert first("s") == {"type": "string"}
    assert first("bin") == {"type": "string", "format": "byte"}
    assert first("when") == {"type": "string", "example": "2024-01-31T12:00:00", "pattern": DATETIME_PATTERN}
    assert first("tags") == {"type": "array", "items": {"type": "string"}}
    assert first("attrs") == {"type": "object", "additionalProperties": {"type": "number", "format": "double"}}
    meta = schema["$defs"][first("meta")["$ref"].split("/")[-1]]
    assert meta["required"] == ["a"] and meta["additionalProperties"] is False
    assert first("anything") == {"not": {"type": "null"}}  # a required column: anything but null
    assert "optional" in props["note"]["description"] and props["note"]["default"] is None


def test_a_good_record_of_every_type_validates():
    model = record_model(plan_inputs(EVERY_TYPE))
    model.model_validate(
        {
            "b": 1, "i": 3, "l": 2**40, "f": 1, "od280/od315_of_diluted_wines": 2.5, "s": "x",
            "bin": base64.b64encode(b"\x00").decode(), "when": "2024-01-31T12:00:00",
            "tags": ["a"], "meta": {"a": 1}, "attrs": {"k": 1}, "anything": [1, {"x": None}],
        }
    )


def test_tensor_records_are_nested_lists_of_the_signatures_rank():
    plan = plan_inputs(Schema([TensorSpec(np.dtype("float32"), (-1, 2, -1))]))
    schema = record_model(plan).model_json_schema()
    assert schema["type"] == "array" and schema["minItems"] == schema["maxItems"] == 2
    assert schema["items"]["type"] == "array" and "minItems" not in schema["items"]
    assert schema["items"]["items"] == {"type": "number", "format": "float"}  # (null taken, not advertised)


def test_named_tensor_records_and_integer_ranges():
    plan = plan_inputs(Schema([TensorSpec(np.dtype("uint8"), (-1, 3), "a"), TensorSpec(np.dtype("int64"), (-1,), "b")]))
    schema = record_model(plan).model_json_schema()
    assert schema["required"] == ["a", "b"]
    assert schema["properties"]["a"]["items"] == {"type": "integer", "minimum": 0, "maximum": 255}
    assert schema["properties"]["b"]["format"] == "int64"


def test_params_model_has_types_and_defaults():
    schema = params_model(
        ParamSchema(
            [
                ParamSpec("multiplier", "double", 1.0),
                ParamSpec("suffix", "string", None),
                ParamSpec("weights", "double", [1.0], (-1,)),
                ParamSpec("k", "long", np.int64(3)),
            ]
        )
    ).model_json_schema()
    props = schema["properties"]
    assert props["multiplier"] == {"default": 1.0, "description": "double", "format": "double", "title": "multiplier", "type": "number"}
    assert props["suffix"]["default"] is None and {"type": "null"} in props["suffix"]["anyOf"]
    assert props["weights"]["type"] == "array" and props["weights"]["default"] == [1.0]
    assert props["k"]["default"] == 3
    assert schema["additionalProperties"] is False and "required" not in schema


def test_output_record_fields_are_named_by_the_output_signature():
    plan = plan_outputs(Schema([ColSpec("long", "id"), ColSpec("datetime", "when_next")]))
    models = build_typed_models(plan_inputs(Schema([ColSpec("double", "x")])), plan, None)
    schema = models.output_record.model_json_schema()
    assert list(schema["properties"]) == ["id", "when_next"] and "required" not in schema


def test_unnamed_output_is_called_predictions():
    models = build_typed_models(
        plan_inputs(Schema([ColSpec("double", "x")])), plan_outputs(Schema([TensorSpec(np.dtype("float64"), (-1,))])), None
    )
    assert list(models.output_record.model_json_schema()["properties"]) == ["predictions"]


# ------------------------------------------------------------------------------------ shorthands


def test_full_body_bare_record_and_bare_list_are_the_same_request(served):
    record = {"x": 1.5}
    answers = [call(served["failing"], body) for body in ({"inputs": [record]}, record, [record])]
    assert answers[0] == answers[1] == answers[2] == (200, {"model_version": None, "outputs": [{"x": 1.5}]})


def test_tensor_shorthands(served):
    row = [1, 2, 3, 4]
    expected = (200, {"model_version": None, "outputs": [{"predictions": [10.0, 4.0]}]})
    assert call(served["tensor"], {"inputs": [row]}) == expected
    assert call(served["tensor"], [row]) == expected
    assert call(served["tensor"], row) == expected  # a bare record (rank 1)
    status, body = call(served["tensor"], [row, [5, 6, 7, 8]])
    assert status == 200 and [o["predictions"] for o in body["outputs"]] == [[10.0, 4.0], [26.0, 8.0]]


def test_named_tensors_as_records(served):
    status, body = call(served["dict_tensors"], [{"a": [1, 2, 3], "b": 4}, {"a": [0, 0, 1], "b": -1}])
    assert status == 200
    assert body["outputs"] == [{"a_sum": 6.0, "b_double": 8}, {"a_sum": 1.0, "b_double": -2}]


def test_rank0_records_fixed_first_dimension_bounds_the_number_of_records():
    plan = plan_inputs(Schema([TensorSpec(np.dtype("int32"), (3,))]))
    models = build_typed_models(plan, plan_outputs(None), None)
    assert models.validate([1, 2, 3])[0] == [1, 2, 3]
    with pytest.raises(TypedRequestError) as err:
        models.validate([1, 2])
    assert err.value.items[0].path == "inputs"
    assert records_to_request(plan, [1, 2, 3]).inputs[0].shape == [3]


# ------------------------------------------------------------------------------------ predict_typed


def test_mixed_model_every_scalar_type_round_trip(served):
    record = {
        "id": 1, "score": 0.5, "name": "ann", "flag": True, "when": "2024-01-31T12:00:00",
        "blob": base64.b64encode(b"xyz").decode(),
    }
    status, body = call(served["mixed"], {"inputs": [record, dict(record, note="n", flag=0)]})
    assert status == 200, body
    assert body["outputs"] == [
        {"id": 1, "score2": 1.0, "greeting": "hello ann", "flag_not": False, "when_next": "2024-02-01T12:00:00", "blob_len": 3, "has_note": False},
        {"id": 1, "score2": 1.0, "greeting": "hello ann", "flag_not": True, "when_next": "2024-02-01T12:00:00", "blob_len": 3, "has_note": True},
    ]


def test_wine_is_the_same_as_v2(served):
    wine = served["wine"]
    record = {name: 1.0 for name in wine.inputs.by_name}
    status, body = call(wine, record)
    assert status == 200
    data, _ = wine.decoder.decode(
        _v2({name: ("FP64", [1.0]) for name in wine.inputs.by_name})
    )
    assert body["outputs"] == [{"predictions": float(wine.predictor(data, None, enforce=False)[0])}]


def _v2(columns):
    from mlserver.types import InferenceRequest

    return InferenceRequest(
        inputs=[{"name": n, "datatype": dt, "shape": [len(v)], "data": v} for n, (dt, v) in columns.items()]
    )


def test_params_are_validated_and_defaults_filled(served):
    status, body = call(served["params"], {"inputs": [{"x": 2}], "params": {"multiplier": 3, "weights": [1, 2], "suffix": "s"}})
    assert status == 200 and body["outputs"] == [{"y": 18.0, "tag": "s", "flags": False}]
    status, body = call(served["params"], {"inputs": [{"x": 2}]})
    assert status == 200 and body["outputs"] == [{"y": 2.0, "tag": "", "flags": False}]


def test_composite_model(served):
    status, body = call(served["composite"], {"tags": ["a", "b"], "meta": {"a": 1, "b": "q"}, "attrs": {"k": 1.5, "j": 1}})
    assert (status, body["outputs"]) == (200, [{"n_tags": 2, "meta_b": "q", "attrs_sum": 2.5}])


def test_text_model(served):
    assert call(served["text"], {"prompt": "hello world"}) == (200, {"model_version": None, "outputs": [{"translation_text": "hallo Welt"}]})


def test_model_without_signature_takes_any_records(served):
    status, body = call(served["no_signature"], [{"a": 1, "b": "x", "c": [1, 2]}, {"a": 2, "b": "y", "c": []}])
    assert status == 200 and body["outputs"] == [{"a": 1, "b": "x", "c": [1, 2]}, {"a": 2, "b": "y", "c": []}]


def test_model_version_is_reported(tmp_path):
    served_v = load_served(ServedZoo(tmp_path).path("failing"), version="7")
    assert call(served_v, {"x": 1.0})[1]["model_version"] == "7"


# ----------------------------------------------------------------------------------- error paths


def _paths(body) -> dict[str, str]:
    return {e["path"]: e["message"] for e in body["errors"]}


def test_each_failing_field_has_its_path(served):
    good = {"id": 1, "score": 0.5, "name": "ann", "flag": True, "when": "2024-01-31", "blob": "eA=="}
    bad = {"id": "1", "score": True, "name": 3, "flag": 2, "when": "nope", "blob": "x", "typo": 1}
    status, body = call(served["mixed"], [good, bad, {"score": 1.0}])
    assert status == 400
    paths = _paths(body)
    for field in ("id", "score", "name", "flag", "when", "blob"):
        assert f"inputs[1].{field}" in paths
    assert "unknown input 'typo'" in paths["inputs[1].typo"]
    assert paths["inputs[2].id"] == "missing required input 'id' (long)"
    assert "ISO-8601" in paths["inputs[1].when"] and "base64" in paths["inputs[1].blob"]
    assert body["error"].startswith("invalid request: inputs[1].id")
    assert "inputs[0]" not in " ".join(paths)


def test_wine_column_with_a_slash_in_its_name(served):
    record = {name: 1.0 for name in served["wine"].inputs.by_name}
    record["alcohol"] = "13.2"
    del record["od280/od315_of_diluted_wines"]
    status, body = call(served["wine"], {"inputs": [record]})
    assert status == 400
    assert set(_paths(body)) == {"inputs[0].alcohol", "inputs[0].od280/od315_of_diluted_wines"}


def test_nested_paths(served):
    status, body = call(served["composite"], {"tags": [1], "meta": {"b": "q", "z": 1}, "attrs": {"k": "x"}})
    assert status == 400
    assert set(_paths(body)) == {"inputs[0].tags[0]", "inputs[0].meta.a", "inputs[0].meta.z", "inputs[0].attrs.k"}


def test_param_errors(served):
    status, body = call(served["params"], {"inputs": [{"x": 1}], "params": {"multiplier": "3", "bogus": 1, "weights": [1, "a"]}})
    assert status == 400
    assert set(_paths(body)) == {"params.multiplier", "params.bogus", "params.weights[1]"}
    status, body = call(served["failing"], {"inputs": [{"x": 1}], "params": {"p": 1}})
    assert status == 400 and set(_paths(body)) == {"params.p"}


def test_body_errors(served):
    status, body = call(served["failing"], b"{nope")
    assert status == 400 and body["error"].startswith("request body is not valid JSON")
    status, body = call(served["failing"], {"inputs": []})
    assert status == 400 and "inputs" in _paths(body)
    status, body = call(served["failing"], {"inputs": [{"x": 1}], "extra": 1})
    assert status == 400 and "extra" in _paths(body)
    status, body = call(served["failing"], "x")
    assert status == 400 and "inputs[0]" in _paths(body)


def test_ragged_tensor_rows_are_a_400(served):
    status, body = call(served["dict_tensors"], [{"a": [1, 2, 3], "b": 1}, {"a": [1, 2], "b": 1}])
    assert status == 400 and "inputs[1].a" in _paths(body)
    plan = plan_inputs(Schema([TensorSpec(np.dtype("float64"), (-1, -1))]))
    records, _ = build_typed_models(plan, plan_outputs(None), None).validate([[1.0], [1.0, 2.0]])
    with pytest.raises(InvalidInput, match="rows of different lengths"):
        records_to_request(plan, records)  # -1 dims: each row may fit, together they are no tensor


def test_codec_errors_are_400_with_the_column_path(served):
    rows = [
        {"id": 1, "score": 0.5, "name": "a", "flag": True, "when": w, "blob": "eA=="}
        for w in ("2024-01-31T12:00:00+02:00", "2024-01-31T12:00:00")
    ]
    status, body = call(served["mixed"], rows)
    assert status == 400 and list(_paths(body)) == ["inputs[*].when"]


def test_model_exception_is_a_500_without_traceback(served):
    status, body = call(served["failing"], {"x": -1.0})
    assert status == 500
    assert body == {"error": "model raised ValueError: model exploded on purpose"}


def test_unknown_inputs_ignore_drops_unknown_fields(tmp_path):
    lenient = load_served(ServedZoo(tmp_path).path("failing"), unknown_inputs="ignore")
    assert call(lenient, {"x": 1.0, "other": "dropped"}) == (200, {"model_version": None, "outputs": [{"x": 1.0}]})


def test_models_are_built_once_per_served_model(served):
    assert typed_models(served["failing"]) is typed_models(served["failing"])


def test_outputs_of_different_lengths_are_a_500():
    from mlserver.types import Parameters, ResponseOutput

    outs = [
        ResponseOutput(name="a", datatype="FP64", shape=[2], data=[1.0, 2.0], parameters=Parameters(content_type="np")),
        ResponseOutput(name="b", datatype="FP64", shape=[1], data=[1.0], parameters=Parameters(content_type="np")),
    ]
    with pytest.raises(OutputEncodingError, match="different numbers of rows"):
        outputs_to_records(outs)


# ------------------------------------------------------------------ fast paths never widen the codec


def _codec_column_accepts(mlflow_type: str, value: str) -> bool:
    return codec_accepts(TypeCase(value, DataType[mlflow_type], True))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.from_regex(DATETIME_PATTERN, fullmatch=True) | st.text(max_size=30))
def test_fast_datetime_check_accepts_only_what_the_codec_accepts(text):
    if surely_a_datetime(text):
        assert _codec_column_accepts("datetime", text), text


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=12))
def test_fast_base64_check_accepts_only_what_the_codec_accepts(text):
    if surely_base64(text):
        assert _codec_column_accepts("binary", text), text
