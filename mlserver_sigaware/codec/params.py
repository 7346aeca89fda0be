"""A request's params checked against the model's params schema, for V2 and for ``/invocations``.

Both protocols share :func:`validate_params` (unknown names and wrong types are a 400 naming the param,
defaults filled in); each has its own leniencies on top (:func:`v2_param_values`: gRPC's scalar-only
parameters; :func:`validate_json_params`: MLflow's rules for its JSON ``params``).
"""

from __future__ import annotations

from typing import Any, Optional

import orjson
from mlflow.exceptions import MlflowException
from mlflow.types.schema import DataType, ParamSchema, ParamSpec

from ..errors import InvalidParams
from ..signature import type_name

__all__ = ["RESERVED_PARAMETERS", "v2_param_values", "validate_json_params", "validate_params"]

#: Keys of a V2 request's ``parameters`` that belong to MLServer / the V2 protocol / tritonclient,
#: never to the model's params schema.
RESERVED_PARAMETERS = frozenset(
    {
        "content_type",
        "headers",
        "binary_data_output",
        "binary_data",
        "binary_data_size",
        "priority",
        "timeout",
        "sequence_id",
        "sequence_start",
        "sequence_end",
    }
)


#: Scalar param types a V2 client may send as JSON text (see :func:`v2_param_values`).
_TEXT_SCALAR_PARAM_TYPES = frozenset(
    {DataType.integer, DataType.long, DataType.float, DataType.double, DataType.boolean}
)


def v2_param_values(given: dict[str, Any], specs: dict[str, Any]) -> dict[str, Any]:
    """V2-only adjustments of request params before :func:`validate_params` (not /invocations).

    MLServer 1.7.1's gRPC ``InferParameter`` has only ``bool_param``, ``int64_param`` and
    ``string_param``: a double sent by a gRPC client (tritonclient sends every Python float as
    ``double_param``) reaches us as ``None``, and a fractional number cannot be sent at all.
    Passing that ``None`` on made the model fail and the client got a 500 blaming the model
    ("model raised TypeError: float() ... 'NoneType'"), or worse, a model treating ``None`` as
    "use the default" silently ignored the value the client sent. So:

    * a ``None`` (JSON null, or a value MLServer could not decode) is a 400 naming the param,
      unless ``None`` is the param's own default (then it means the same as leaving it out);
    * a numeric or boolean scalar param given as text (``"2.5"``, ``"true"``) is parsed as JSON,
      as list params already are, so that gRPC clients can send any value.
    """
    out = dict(given)
    for name, value in given.items():
        spec = specs.get(name)
        if spec is None:
            continue  # unknown params are reported by validate_params
        if value is None:
            if spec.default is None:
                continue
            raise InvalidParams(
                f"param '{name}': no value (null); leave it out to use its default {spec.default!r}. "
                f"Over gRPC, MLServer only carries bool, int64 and string parameters: "
                f"send a {type_name(spec.dtype)} as text (e.g. \"2.5\")"
            )
        if spec.shape is None and spec.dtype in _TEXT_SCALAR_PARAM_TYPES and isinstance(value, (str, bytes)):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue  # validate_params reports the text as a wrong type
            if spec.dtype is DataType.boolean:
                if isinstance(parsed, bool):
                    out[name] = parsed
            elif isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
                out[name] = parsed
    return out


def validate_params(given: dict[str, Any], schema: Optional[ParamSchema]) -> Optional[dict[str, Any]]:
    """Shared by V2 and /invocations: unknown params and wrong types are a 400 naming the param."""
    if schema is None:
        if given:
            raise InvalidParams(
                f"unknown param{'s' if len(given) > 1 else ''} {sorted(given)}: "
                f"this model has no params schema"
            )
        return None
    specs = {p.name: p for p in schema.params}
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise InvalidParams(f"unknown param{'s' if len(unknown) > 1 else ''} {unknown}; expected params: {sorted(specs)}")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name not in given:
            out[name] = spec.default
            continue
        value = given[name]
        if spec.shape is not None and isinstance(value, (str, bytes)):
            # gRPC parameters are scalars: a list param can be sent as its JSON text.
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                pass
        try:
            out[name] = ParamSpec.validate_param_spec(value, spec)
        except MlflowException:
            shape = f" of shape {list(spec.shape)}" if spec.shape is not None else ""
            raise InvalidParams(
                f"param '{name}': expected {type_name(spec.dtype)}{shape}, got {value!r}"
            ) from None
    return out


def _param_type_error(name: str, spec: Any, value: Any) -> InvalidParams:
    shape = f" of shape {list(spec.shape)}" if spec.shape is not None else ""
    return InvalidParams(f"param '{name}': expected {type_name(spec.dtype)}{shape}, got {value!r}")


def validate_json_params(given: Any, schema: Optional[ParamSchema]) -> Any:
    """The ``params`` of an MLflow JSON request, with MLflow's semantics around :func:`validate_params`.

    As MLflow's ``_enforce_params_schema``: without a params schema, params are ignored (``None`` and
    ``{}`` pass through, anything else becomes ``{}``); unknown names are ignored; a ``params`` that is
    not a JSON object is an :class:`InvalidParams`. Unlike V2 (gRPC parameters are scalars), a list
    param given as JSON text is rejected, as MLflow does. Values are then checked and defaults filled
    in by :func:`validate_params`.
    """
    if schema is None:
        return given if given is None or (isinstance(given, dict) and not given) else {}
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidParams(f"params must be a JSON object, got {type(given).__name__} {given!r}")
    specs = {p.name: p for p in schema.params}
    known = {k: v for k, v in given.items() if k in specs}
    for name, value in known.items():
        if specs[name].shape is not None and isinstance(value, (str, bytes)):
            raise _param_type_error(name, specs[name], value)
    return validate_params(known, schema)

