"""The typed API: ``POST /v2/models/<name>/predict``, records in, records out, checked against the signature.

It takes ``{"inputs": [record, ...], "params": {...}}`` (a bare record, or a bare list of records, is
accepted too) and answers ``{"model_version": ..., "outputs": [record, ...]}``. The request is validated
first by models generated from the signature (:mod:`.fields`), so a bad value is a 400 naming its
path (``inputs[0].alcohol``); the records are then turned into the V2 inputs of the same request and
decoded by the model's own :class:`~mlserver_sigaware.codec.RequestDecoder` (:mod:`.records`), so the
typed API cannot drift from ``/infer``: one codec decides what the model receives.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import orjson
from mlflow.types.schema import ParamSchema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ...codec import validate_params
from ...errors import InvalidInput, SigawareError
from ...signature import Layout, SchemaPlan
from .fields import UniqueNames, output_record_model, params_model, record_model

if TYPE_CHECKING:  # pragma: no cover
    from ...model.served import ServedModel

logger = logging.getLogger("mlserver.sigaware")

__all__ = [
    "ErrorItem",
    "TypedError",
    "TypedModels",
    "TypedRequestError",
    "build_typed_models",
    "cached",
    "predict_typed",
    "typed_models",
]

#: Failing fields named in the ``error`` text, and listed in ``errors`` (a body of 10,000 bad rows
#: must not answer with a 10,000-item list).
_MAX_LISTED_ERRORS = 5
_MAX_RETURNED_ERRORS = 100


# ------------------------------------------------------------------------------------------ errors


class ErrorItem(BaseModel):
    path: str = Field(description="where in the (normalized) request body, e.g. inputs[0].alcohol")
    message: str


class TypedError(BaseModel):
    """Every error answer of the typed route; ``errors`` lists each failing field of a 400."""

    error: str
    errors: Optional[list[ErrorItem]] = None


# ------------------------------------------------------------------------------------------ bundle


@dataclass(frozen=True)
class TypedModels:
    """Everything typed about one served model version, built once (see :func:`typed_models`)."""

    plan: SchemaPlan
    record: type[BaseModel]
    params: type[BaseModel]
    request: type[BaseModel]
    output_record: type[BaseModel]
    response: type[BaseModel]
    #: Bounds on the number of records (a fixed first tensor dimension fixes it).
    min_records: int
    max_records: Optional[int]

    @property
    def record_rank(self) -> Optional[int]:
        """Nesting depth of one record for an unnamed tensor (0: a scalar), else None."""
        if self.plan.layout is not Layout.TENSOR:
            return None
        return max(len(self.plan.fields[0].shape) - 1, 0)

    def normalize(self, document: Any) -> Any:
        """The shorthands as a full body: a bare record -> ``{"inputs": [it]}``, a bare list of
        records -> ``{"inputs": it}``. A JSON object with an ``inputs`` key is always the full body
        (a model with a column named ``inputs`` must use the full form)."""
        if isinstance(document, dict):
            return document if "inputs" in document else {"inputs": [document]}
        rank = self.record_rank
        if isinstance(document, list):
            if rank is not None and rank > 0 and _depth(document) == rank:
                return {"inputs": [document]}
            return {"inputs": document}
        return {"inputs": [document]}

    def validate(self, document: Any) -> tuple[list, dict]:
        """``(records, params)`` as sent (raw JSON, for the codec), after validation; a
        :class:`TypedRequestError` listing each failing path otherwise."""
        body = self.normalize(document)
        try:
            self.request.model_validate(body)
        except ValidationError as exc:
            raise TypedRequestError([_item(e, self.plan) for e in exc.errors(include_url=False)]) from None
        return body["inputs"], body.get("params") or {}


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _item(error: dict, plan: SchemaPlan) -> ErrorItem:
    loc, kind, message = tuple(error["loc"]), error["type"], error["msg"]
    if len(loc) == 3 and loc[0] == "inputs" and isinstance(loc[2], str):
        spec = plan.by_name.get(loc[2])
        if kind == "missing" and spec is not None:
            message = f"missing required input '{spec.name}' ({spec.type_label})"
        elif kind == "extra_forbidden":
            message = f"unknown input '{loc[2]}'; expected inputs: {[f.name for f in plan.fields]}"
    return ErrorItem(path=_path(loc), message=message)


class TypedRequestError(InvalidInput):
    """A 400 that lists each failing field of the typed request."""

    def __init__(self, items: list[ErrorItem]):
        shown = "; ".join(f"{i.path}: {i.message}" for i in items[:_MAX_LISTED_ERRORS])
        more = f" (and {len(items) - _MAX_LISTED_ERRORS} more)" if len(items) > _MAX_LISTED_ERRORS else ""
        super().__init__(f"invalid request: {shown}{more}")
        self.items = items

    def __reduce__(self):  # pragma: no cover - pickled only across worker processes
        return (self.__class__, (self.items,))


def build_typed_models(
    inputs: SchemaPlan, outputs: SchemaPlan, params: Optional[ParamSchema], unknown_inputs: str = "error"
) -> TypedModels:
    """The generated models of one signature (plans, params schema, the ``unknown_inputs`` setting)."""
    names = UniqueNames()
    record = record_model(inputs, "InputRecord", "ignore" if unknown_inputs == "ignore" else "forbid", names)
    params_cls = params_model(params, names("Params"))
    lo, hi = _record_bounds(inputs)
    request = create_model(
        names("PredictRequest"),
        __config__=ConfigDict(extra="forbid"),
        __doc__="The typed request: records, and the model's params (defaults filled in when left out).",
        inputs=(Annotated[list[record], Field(min_length=lo, max_length=hi)], ...),  # type: ignore[valid-type]
        params=(Optional[params_cls], None),
    )
    output = output_record_model(outputs, "OutputRecord", names)
    response = create_model(
        names("PredictResponse"),
        __doc__="One output record per input record, fields named by the output signature.",
        model_version=(Optional[str], Field(default=None, description="the registry version that answered")),
        outputs=(list[output], ...),  # type: ignore[valid-type]
    )
    return TypedModels(inputs, record, params_cls, request, output, response, lo, hi)


def _record_bounds(plan: SchemaPlan) -> tuple[int, Optional[int]]:
    """A fixed first dimension of a tensor fixes the number of records; a rank-0 tensor is one record."""
    for spec in plan.fields:
        if spec.is_tensor:
            if not spec.shape:
                return 1, 1
            if spec.shape[0] >= 0:
                return spec.shape[0], spec.shape[0]
    return 1, None


_CACHE: dict[tuple, Any] = {}
_CACHE_LOCK = threading.Lock()


def cached(served: "ServedModel", key: tuple, build: Callable[[], Any]) -> Any:
    """``build()`` once per served model version and ``key``, kept while that version is loaded
    (a version evicted from the cache takes its entries with it)."""
    full = (id(served),) + key
    with _CACHE_LOCK:
        if full in _CACHE:
            return _CACHE[full]
    built = build()
    with _CACHE_LOCK:
        if full not in _CACHE:
            _CACHE[full] = built
            weakref.finalize(served, _CACHE.pop, full, None)
        return _CACHE[full]


def typed_models(served: "ServedModel") -> TypedModels:
    """The typed models of a served model version, built at first use."""
    return cached(
        served,
        ("typed",),
        lambda: build_typed_models(
            served.inputs, served.outputs, served.params_schema, served.decoder.unknown_inputs
        ),
    )


# ---------------------------------------------------------------------------------------- predict


def _error_body(message: str, items: Optional[list[ErrorItem]] = None) -> bytes:
    body: dict[str, Any] = {"error": message}
    if items is not None:
        body["errors"] = [i.model_dump() for i in items[:_MAX_RETURNED_ERRORS]]
    return orjson.dumps(body)


def predict_typed(served: "ServedModel", body: bytes) -> tuple[int, bytes]:
    """Answer ``POST /v2/models/<name>/predict``: ``(status, JSON body)``.

    400 ``{"error", "errors": [{"path", "message"}]}`` for a body that does not fit the typed
    request (or that the codec refuses); a :class:`SigawareError` keeps its status; anything else is a
    500 ``{"error"}`` without a traceback, as on ``/infer``.
    """
    from .records import outputs_to_records, records_to_request

    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        message = f"request body is not valid JSON: {exc}"
        return 400, _error_body(message, [ErrorItem(path="", message=message)])
    try:
        models = typed_models(served)
        records, given_params = models.validate(document)
        request = records_to_request(served.inputs, records)
        data = served.decoder.decode_inputs(request)
        params = validate_params(given_params, served.params_schema)
        prediction = served.predictor(data, params, enforce=served.needs_enforcement(request))
        outputs = outputs_to_records(served.encoder.encode(prediction))
    except TypedRequestError as exc:
        return exc.status_code, _error_body(str(exc), exc.items)
    except SigawareError as exc:
        items = None
        if exc.status_code == 400:
            items = [ErrorItem(path=_codec_path(str(exc), served.inputs), message=str(exc))]
        return exc.status_code, _error_body(str(exc), items)
    except Exception as exc:  # a bug of ours must still be a clean 500, never a traceback
        logger.exception("unexpected error on the typed predict route")
        return 500, _error_body(f"internal error: {type(exc).__name__}: {exc}")
    return 200, orjson.dumps({"model_version": served.version, "outputs": outputs})


_CODEC_INPUT = re.compile(r"^input '([^'\[.]*)")


def _codec_path(message: str, plan: SchemaPlan) -> str:
    """A codec message names the input (``input 'when': ...``): the path of that column in every record."""
    if message.startswith("param"):
        return "params"
    found = _CODEC_INPUT.match(message)
    if found and found.group(1) in plan.by_name:
        return f"inputs[*].{found.group(1)}"
    return "inputs"
