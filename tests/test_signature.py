"""Every MLflow schema type mapped to V2 metadata (names, datatypes, shapes, content types)."""

from __future__ import annotations

import numpy as np
import pytest
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

from mlserver_sigaware.signature import (
    Layout,
    metadata_tensors,
    params_metadata,
    plan_inputs,
    plan_outputs,
    type_name,
)

COLUMN_CASES = [
    (DataType.boolean, "BOOL", "np"),
    (DataType.integer, "INT32", "np"),
    (DataType.long, "INT64", "np"),
    (DataType.float, "FP32", "np"),
    (DataType.double, "FP64", "np"),
    (DataType.string, "BYTES", "str"),
    (DataType.binary, "BYTES", "base64"),
    (DataType.datetime, "BYTES", "datetime"),
    (Array(DataType.string), "BYTES", "json"),
    (Object([Property("a", DataType.long)]), "BYTES", "json"),
    (Map(DataType.double), "BYTES", "json"),
    (AnyType(), "BYTES", "json"),
]


@pytest.mark.parametrize("mlflow_type,datatype,content_type", COLUMN_CASES)
def test_column_types(mlflow_type, datatype, content_type):
    plan = plan_inputs(Schema([ColSpec(mlflow_type, "col")]))
    assert plan.layout is Layout.COLUMNS
    (tensor,) = metadata_tensors(plan)
    assert tensor.name == "col"
    assert tensor.datatype == datatype
    assert tensor.shape == [-1]
    assert tensor.parameters.content_type == content_type
    assert tensor.parameters.mlflow_type == type_name(mlflow_type)
    # Required is the default and is not repeated in metadata.
    assert "required" not in tensor.parameters.model_extra


def test_optional_column_is_marked():
    plan = plan_inputs(Schema([ColSpec("string", "a"), ColSpec("double", "b", required=False)]))
    a, b = metadata_tensors(plan)
    assert "required" not in a.parameters.model_extra
    assert b.parameters.model_extra["required"] is False
    assert plan.required_names == ["a"]


def test_composite_type_names():
    obj = Object([Property("a", DataType.long), Property("b", DataType.string, required=False)])
    assert type_name(obj) == "object{a: long, b?: string}"
    assert type_name(Array(Array(DataType.double))) == "array<array<double>>"
    assert type_name(Map(DataType.string)) == "map<string, string>"


@pytest.mark.parametrize(
    "dtype,datatype",
    [
        (np.bool_, "BOOL"),
        (np.int8, "INT8"),
        (np.int16, "INT16"),
        (np.int32, "INT32"),
        (np.int64, "INT64"),
        (np.uint8, "UINT8"),
        (np.uint16, "UINT16"),
        (np.uint32, "UINT32"),
        (np.uint64, "UINT64"),
        (np.float16, "FP16"),
        (np.float32, "FP32"),
        (np.float64, "FP64"),
        (np.str_, "BYTES"),
        (np.object_, "BYTES"),
    ],
)
def test_unnamed_tensor_any_dtype(dtype, datatype):
    plan = plan_inputs(Schema([TensorSpec(np.dtype(dtype), (-1, 3, 2))]))
    assert plan.layout is Layout.TENSOR
    (tensor,) = metadata_tensors(plan)
    assert tensor.name == "input-0"
    assert tensor.datatype == datatype
    assert tensor.shape == [-1, 3, 2]


def test_named_tensors():
    plan = plan_inputs(
        Schema([TensorSpec(np.dtype("float64"), (-1, 3), "a"), TensorSpec(np.dtype("int64"), (-1,), "b")])
    )
    assert plan.layout is Layout.TENSORS
    assert [(t.name, t.datatype, t.shape) for t in metadata_tensors(plan)] == [
        ("a", "FP64", [-1, 3]),
        ("b", "INT64", [-1]),
    ]


def test_output_names():
    # A single unnamed output is "predictions", as MLflow's scoring server calls it.
    single = plan_outputs(Schema([TensorSpec(np.dtype("float64"), (-1,))]))
    assert [f.name for f in single.fields] == ["predictions"]
    several = plan_outputs(Schema([ColSpec("double"), ColSpec("double")]))
    assert [f.name for f in several.fields] == ["output-0", "output-1"]
    named = plan_outputs(Schema([ColSpec("string", "translation_text")]))
    assert [f.name for f in named.fields] == ["translation_text"]


def test_no_schema():
    plan = plan_inputs(None)
    assert plan.layout is Layout.ANY
    assert metadata_tensors(plan) is None


def test_params_metadata():
    schema = ParamSchema(
        [
            ParamSpec("multiplier", "double", 1.0),
            ParamSpec("suffix", "string", ""),
            ParamSpec("flag", "boolean", False),
            ParamSpec("weights", "double", [1.0, 2.0], (-1,)),
            ParamSpec("n", "long", np.int64(3)),
        ]
    )
    assert params_metadata(schema) == [
        {"name": "multiplier", "type": "double", "default": 1.0, "shape": None},
        {"name": "suffix", "type": "string", "default": "", "shape": None},
        {"name": "flag", "type": "boolean", "default": False, "shape": None},
        {"name": "weights", "type": "double", "default": [1.0, 2.0], "shape": [-1]},
        {"name": "n", "type": "long", "default": 3, "shape": None},
    ]
    assert params_metadata(None) == []


# ------------------------------------------------------------------------------ compatibility diff

from mlflow.models.signature import ModelSignature  # noqa: E402

from mlserver_sigaware.signature import signature_diff  # noqa: E402


def sig(inputs, outputs=(ColSpec("string", "translation_text"),), params=None):
    return ModelSignature(Schema(list(inputs)), Schema(list(outputs)), params)


PROMPT = sig([ColSpec("string", "prompt")])


def test_equal_signatures_have_no_diff():
    assert signature_diff(PROMPT, sig([ColSpec("string", "prompt")]), "strict") == []


def test_renamed_input_is_listed_both_ways():
    other = sig([ColSpec("string", "text_to_translate")])
    assert signature_diff(PROMPT, other, "strict") == [
        "input 'prompt' (string) missing",
        "unexpected required input 'text_to_translate' (string)",
    ]
    assert signature_diff(PROMPT, other, "compatible") == signature_diff(PROMPT, other, "strict")


def test_compatible_allows_new_optional_inputs_and_params_strict_does_not():
    newer = sig(
        [ColSpec("string", "prompt"), ColSpec("string", "style", required=False)],
        params=ParamSchema([ParamSpec("temperature", "double", 1.0)]),
    )
    assert signature_diff(PROMPT, newer, "compatible") == []
    assert signature_diff(PROMPT, newer, "strict") == [
        "unexpected optional input 'style' (string)",
        "unexpected param 'temperature' (double)",
    ]


def test_type_changes_and_missing_outputs():
    other = sig([ColSpec("long", "prompt")], outputs=[ColSpec("string", "text")])
    assert signature_diff(PROMPT, other, "compatible") == [
        "input 'prompt' is long, expected string",
        "output 'translation_text' (string) missing",
    ]


def test_optional_becoming_required_is_refused():
    base = sig([ColSpec("string", "prompt"), ColSpec("string", "style", required=False)])
    other = sig([ColSpec("string", "prompt"), ColSpec("string", "style")])
    assert signature_diff(base, other, "compatible") == ["input 'style' (string) became required"]


def test_missing_param_is_refused():
    base = sig([ColSpec("string", "prompt")], params=ParamSchema([ParamSpec("n", "long", 1)]))
    assert signature_diff(base, PROMPT, "compatible") == ["param 'n' (long) missing"]
