"""An OpenAPI 3.0 document per model (and per served version), generated from its signature.

It documents the three ways to call a model, each with the real names, types and shapes:

* ``POST .../predict``: the typed API (:mod:`.api`), its schemas generated from the same pydantic
  models that validate it, so the document cannot promise what the route refuses;
* ``POST .../invocations``: MLflow's scoring protocol, one example per JSON format
  (``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``), plus CSV for columns;
* ``POST .../infer``: V2, one schema per input with its name, datatype, shape and content type as enums.

Why 3.0: see :mod:`.oas30`. Served as ``GET /v2/models/<name>/openapi.json`` (:mod:`.routes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import orjson
from mlflow.types.schema import DataType
from pydantic.json_schema import models_json_schema

from .examples import example_params, example_records
from .oas30 import to_oas30
from .records import records_to_request
from ...signature import V2_TO_NUMPY, FieldSpec, Layout, SchemaPlan, params_metadata
from .api import ErrorItem, TypedError, TypedModels, cached, typed_models
from .fields import UniqueNames

if TYPE_CHECKING:  # pragma: no cover
    from ...model.served import ServedModel

__all__ = ["OPENAPI_VERSION", "openapi_document"]

OPENAPI_VERSION = "3.0.3"
VERSION_HEADER = "mlflow-model-version"
_REF = "#/components/schemas/"
_JSON = "application/json"
_V2_DATATYPES = sorted(V2_TO_NUMPY) + ["BYTES"]


def ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def openapi_document(served: "ServedModel", model_name: str, version: Optional[str] = None) -> dict[str, Any]:
    """The document of ``served`` as MLServer model ``model_name``; with ``version``, for the routes
    under ``/v2/models/<name>/versions/<version>/``. Built once per served version."""
    return cached(served, ("openapi", model_name, version), lambda: _Document(served, model_name, version).build())


class _Document:
    def __init__(self, served: "ServedModel", model_name: str, version: Optional[str]):
        self.served = served
        self.name = model_name
        self.version = version
        self.models: TypedModels = typed_models(served)
        self.inputs: SchemaPlan = served.inputs
        self.outputs: SchemaPlan = served.outputs
        self.schemas: dict[str, Any] = {}
        self.names = UniqueNames()

    # -- assembly --------------------------------------------------------------------------------

    def build(self) -> dict[str, Any]:
        self._pydantic_schemas()
        base = f"/v2/models/{self.name}" + (f"/versions/{self.version}" if self.version else "")
        return {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": f"{self.name}" + (f" version {self.version}" if self.version else ""),
                "version": str(self.version or self.served.version or "unversioned"),
                "description": self._description(),
            },
            "tags": [
                {"name": "typed", "description": "Records in, records out, validated against the signature"},
                {"name": "mlflow", "description": "MLflow's scoring protocol (`mlflow models serve`)"},
                {"name": "v2", "description": "V2 / Open Inference Protocol"},
            ],
            "paths": {
                f"{base}/predict": {"post": self._predict()},
                f"{base}/invocations": {"post": self._invocations()},
                f"{base}/infer": {"post": self._infer()},
            },
            "components": {"schemas": self.schemas},
        }

    def _pydantic_schemas(self) -> None:
        m = self.models
        models = [m.request, m.record, m.params, m.response, m.output_record, TypedError, ErrorItem]
        _, top = models_json_schema([(x, "validation") for x in models], ref_template=_REF + "{model}")
        for name, schema in top.get("$defs", {}).items():
            self.schemas[name] = to_oas30(schema)
            self.names(name)
        self.record = m.record.__name__
        self.params = m.params.__name__

    def _add(self, wanted: str, schema: dict[str, Any]) -> dict[str, str]:
        name = self.names(wanted)
        self.schemas[name] = schema
        return ref(name)

    def _description(self) -> str:
        def table(plan: SchemaPlan, title: str) -> str:
            if plan.layout is Layout.ANY:
                return f"**{title}**: no signature (any)\n"
            rows = "\n".join(
                f"| `{_cell(f.name)}` | {_cell(f.type_label)} | {'yes' if f.required else 'no'} | {f.datatype} | {list(f.shape)} |"
                for f in plan.fields
            )
            return f"**{title}**\n\n| name | type | required | V2 datatype | V2 shape |\n|---|---|---|---|---|\n{rows}\n"

        parts = [
            f"Model `{self.name}` served by mlserver-sigaware, from `{self.served.resolved.ref.describe}`.",
            table(self.inputs, "Inputs"),
            table(self.outputs, "Outputs"),
        ]
        params = self.served.params_schema
        if params is not None:
            parts.append(
                "**Params**\n\n| name | type | default |\n|---|---|---|\n"
                + "\n".join(
                    f"| `{_cell(p['name'])}` | {_cell(p['type'])} | `{_cell(str(p['default']))}` |"
                    for p in params_metadata(params)
                )
                + "\n"
            )
        return "\n\n".join(parts)

    # -- shared pieces ---------------------------------------------------------------------------

    def _parameters(self) -> list[dict[str, Any]]:
        """The version-selecting header, on the default instance of a registry-served model."""
        if self.version or self.served.resolved.ref.kind != "registry":
            return []
        return [
            {
                "name": VERSION_HEADER,
                "in": "header",
                "required": False,
                "description": "registry version (`3`) or alias (`@champion`) to answer with; default: the served default",
                "schema": {"type": "string", "pattern": r"^([1-9][0-9]*|@[A-Za-z0-9_-]+)$"},
            }
        ]

    @staticmethod
    def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {_JSON: {"schema": schema}}}

    def _selection_errors(self, error_schema: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"404": self._json(error_schema, "unknown model or version")}
        if self._parameters():
            out["403"] = self._json(error_schema, "version or alias not allowed")
            out["409"] = self._json(error_schema, "version incompatible with the default version's signature")
        return out

    # -- POST .../predict ------------------------------------------------------------------------

    def _predict(self) -> dict[str, Any]:
        m = self.models
        records_schema: dict[str, Any] = {"type": "array", "items": ref(self.record), "minItems": m.min_records}
        if m.max_records is not None:
            records_schema["maxItems"] = m.max_records
        records = self._add("InputRecords", records_schema)
        body = self._add(
            "PredictBody",
            {
                "description": "the full request, or as shorthands a bare list of records or one bare record",
                "anyOf": [ref(m.request.__name__), records, ref(self.record)],
            },
        )
        example_rows = example_records(self.inputs)
        examples = {
            "request": {"summary": "records and params", "value": {"inputs": example_rows, "params": example_params(self.served.params_schema)}},
            "records": {"summary": "a bare list of records", "value": example_rows},
        }
        if len(example_rows) == 1:
            examples["record"] = {"summary": "one bare record", "value": example_rows[0]}
        error = ref(TypedError.__name__)
        return {
            "tags": ["typed"],
            "operationId": "predict",
            "summary": "Typed prediction: one output record per input record",
            "description": (
                "Every value is checked against the signature before the model runs; a 400 lists each "
                "failing field by its path (`inputs[0].<name>`). The records are then decoded exactly as "
                "the same values sent to `/infer`."
            ),
            "parameters": self._parameters(),
            "requestBody": {"required": True, "content": {_JSON: {"schema": body, "examples": examples}}},
            "responses": {
                "200": self._json(ref(m.response.__name__), "the prediction, as output records"),
                "400": self._json(error, "the request does not fit the signature (each failing field listed)"),
                **self._selection_errors(error),
                "500": self._json(error, "the model raised, or broke its output signature"),
            },
        }

    # -- POST .../invocations --------------------------------------------------------------------

    def _invocations(self) -> dict[str, Any]:
        params = ref(self.params)
        records = {"type": "array", "items": ref(self.record), "minItems": 1}
        formats: dict[str, tuple[dict[str, Any], Any]] = {}
        rows = example_records(self.inputs)
        layout = self.inputs.layout
        if layout in (Layout.COLUMNS, Layout.ANY):
            names = [f.name for f in self.inputs.fields]
            columns: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "minItems": 1}
            if names:
                columns["items"]["enum"] = names
            split = {
                "type": "object",
                "required": ["columns", "data"],
                "properties": {
                    "columns": columns,
                    "data": {"type": "array", "items": {"type": "array", "items": {}}, "description": "rows, values in `columns` order"},
                    "index": {"type": "array", "items": {}},
                },
            }
            keys = list(rows[0]) if isinstance(rows[0], dict) else names
            formats["dataframe_split"] = (split, {"columns": keys, "data": [[r[k] for k in keys] for r in rows]})
            formats["dataframe_records"] = (records, rows)
        if not any(f.is_composite for f in self.inputs.fields):
            # MLflow reads composite values in `instances`/`inputs` as numpy arrays (and fails):
            # for such models only the dataframe formats work, as with `mlflow models serve`.
            formats["instances"] = (records, rows)
            formats["inputs"] = ({"anyOf": [records, self._columnar()]}, rows)
        refs = []
        examples = {}
        for key, (schema, example) in formats.items():
            body = {
                "type": "object",
                "required": [key],
                "additionalProperties": False,
                "properties": {key: schema, "params": params},
            }
            refs.append(self._add(f"Invocations_{key}", body))
            examples[key] = {"summary": key, "value": {key: example}}
        content: dict[str, Any] = {_JSON: {"schema": {"anyOf": refs}, "examples": examples}}
        if _csv_readable(self.inputs):
            header = [f.name for f in self.inputs.fields]
            csv_row = [_csv_cell(rows[0].get(n)) for n in header]
            content["text/csv"] = {"schema": {"type": "string"}, "example": ",".join(header) + "\n" + ",".join(csv_row) + "\n"}
        mlflow_error = self._add(
            "MlflowError",
            {
                "type": "object",
                "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}, "stack_trace": {"type": "string"}},
            },
        )
        return {
            "tags": ["mlflow"],
            "operationId": "invocations",
            "summary": "MLflow scoring protocol, as `mlflow models serve`",
            "description": "One JSON format per request (or CSV); `params` as in MLflow. Answers `{\"predictions\": ...}`.",
            "parameters": self._parameters(),
            "requestBody": {"required": True, "content": content},
            "responses": {
                "200": self._json(
                    {"type": "object", "properties": {"predictions": {"description": "records, a list or a dict, as MLflow writes them"}}},
                    "the predictions",
                ),
                "400": self._json(mlflow_error, "bad input, or the model raised (as MLflow answers)"),
                **self._selection_errors(mlflow_error),
                "415": {"description": "unsupported content type", "content": {"text/plain": {"schema": {"type": "string"}}}},
                "500": self._json(mlflow_error, "server error"),
            },
        }

    def _columnar(self) -> dict[str, Any]:
        """``inputs`` as ``{name: [value per row]}``: each column a list of the record's field type."""
        record = self.schemas[self.record]
        if self.inputs.layout is Layout.TENSOR:
            return {"type": "array", "items": ref(self.record)}
        if "properties" not in record:
            return {"type": "object", "additionalProperties": {"type": "array", "items": {}}}
        columns = {
            name: {"type": "array", "items": schema} for name, schema in record["properties"].items()
        }
        out: dict[str, Any] = {"type": "object", "properties": columns, "additionalProperties": False}
        if record.get("required"):
            out["required"] = record["required"]
        return out

    # -- POST .../infer --------------------------------------------------------------------------

    def _infer(self) -> dict[str, Any]:
        inputs = [self._add(f"V2Input_{f.name}", _v2_tensor(f, self._single_unnamed(f), request=True)) for f in self.inputs.fields]
        if not inputs:
            inputs = [self._add("V2Input", _v2_any_tensor())]
        outputs = [self._add(f"V2Output_{f.name}", _v2_tensor(f, False, request=False)) for f in self.outputs.fields]
        if not outputs:
            outputs = [self._add("V2Output", _v2_any_tensor())]
        params_props = dict(self.schemas[self.params].get("properties", {}))
        params_props["content_type"] = {"type": "string", "enum": ["pd", "np", "dict"], "description": "force the container the model gets"}
        requested: dict[str, Any] = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}}}
        out_names = [f.name for f in self.outputs.fields]
        if out_names:
            requested["properties"]["name"]["enum"] = out_names
        required_inputs = sum(1 for f in self.inputs.fields if f.required)
        request = self._add(
            "V2InferenceRequest",
            {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {"type": "object", "properties": params_props, "description": "the model's params, and MLServer's own keys"},
                    "inputs": {"type": "array", "minItems": max(required_inputs, 1), "items": {"anyOf": inputs}},
                    "outputs": {"type": "array", "items": requested},
                },
            },
        )
        response = self._add(
            "V2InferenceResponse",
            {
                "type": "object",
                "required": ["model_name", "outputs"],
                "properties": {
                    "model_name": {"type": "string", "enum": [self.name]},
                    "model_version": {"type": "string", "nullable": True},
                    "id": {"type": "string", "nullable": True},
                    "parameters": {"type": "object", "nullable": True},
                    "outputs": {"type": "array", "items": {"anyOf": outputs}},
                },
            },
        )
        error = self._add("V2Error", {"type": "object", "properties": {"error": {"type": "string"}}})
        example = records_to_request(self.inputs, example_records(self.inputs))
        example_body = orjson.loads(example.model_dump_json(exclude_none=True))
        return {
            "tags": ["v2"],
            "operationId": "infer",
            "summary": "V2 inference (Open Inference Protocol)",
            "description": "One tensor per input, named and typed as listed; columns have shape `[n]` (or `[n, 1]`).",
            "parameters": self._parameters(),
            "requestBody": {"required": True, "content": {_JSON: {"schema": request, "example": example_body}}},
            "responses": {
                "200": self._json(response, "the outputs"),
                "400": self._json(error, "an input or param does not fit the signature"),
                **self._selection_errors(error),
                "422": {"description": "the body is not a V2 request", "content": {_JSON: {"schema": {"type": "object"}}}},
                "500": self._json(error, "the model raised"),
            },
        }

    def _single_unnamed(self, spec: FieldSpec) -> bool:
        """A single unnamed input matches whatever name a V2 client gives it."""
        return len(self.inputs.fields) == 1 and not spec.named


def _v2_item(spec: FieldSpec, nullable: bool) -> dict[str, Any]:
    """One element of ``data``."""
    dt = spec.datatype
    if dt == "BOOL":
        item: dict[str, Any] = {"type": "boolean"}
    elif dt in V2_TO_NUMPY and V2_TO_NUMPY[dt].kind in "iu":
        info = np.iinfo(V2_TO_NUMPY[dt])
        item = {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    elif dt in V2_TO_NUMPY:
        item = {"type": "number"}
    else:
        item = {"type": "string"}
    if nullable:
        item["nullable"] = True
    return item


def _v2_tensor(spec: FieldSpec, any_name: bool, request: bool) -> dict[str, Any]:
    """One V2 input (``request``) or output: name, datatype and content type as enums, shape by rank."""
    if spec.is_tensor:
        shape = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": len(spec.shape), "maxItems": len(spec.shape)}
    else:
        shape = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 2}
    nullable = not spec.is_tensor and not spec.required  # as the typed record documents it
    content_types = ["base64", "str"] if spec.content_type == "base64" and request else [spec.content_type]
    name: dict[str, Any] = {"type": "string"} if any_name else {"type": "string", "enum": [spec.name]}
    return {
        "type": "object",
        "description": f"{spec.type_label}" + ("" if spec.required else " (optional)") + f"; shape {list(spec.shape)}",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": name,
            "datatype": {"type": "string", "enum": [spec.datatype]},
            "shape": shape,
            "data": {"type": "array", "items": _v2_item(spec, nullable), "description": "values in row-major order"},
            "parameters": {
                "type": "object",
                "nullable": True,
                "properties": {"content_type": {"type": "string", "enum": content_types}},
            },
        },
    }


def _v2_any_tensor() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "any tensor (the model has no signature)",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": _V2_DATATYPES},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "data": {"type": "array", "items": {}},
            "parameters": {"type": "object", "nullable": True},
        },
    }


def _cell(text: str) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell)."""
    return text.replace("|", "\\|").replace("\n", " ")


#: Column types MLflow's CSV reader takes (it cannot parse datetimes, and passes binary on as text).
_CSV_TYPES = frozenset({DataType.boolean, DataType.integer, DataType.long, DataType.float, DataType.double, DataType.string})


def _csv_readable(plan: SchemaPlan) -> bool:
    return plan.layout is Layout.COLUMNS and all(
        isinstance(f.mlflow_type, DataType) and f.mlflow_type in _CSV_TYPES for f in plan.fields
    )


def _csv_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        text = orjson.dumps(value).decode()
        return '"' + text.replace('"', '""') + '"'
    return "" if value is None else str(value)
