"""The bodies ``/invocations`` answers with, as MLflow's scoring server writes them.

Successful predictions (:func:`format_predictions`, byte for byte MLflow's), MLflow-shaped JSON errors
(:func:`error_for_status`, :func:`model_error`), the plain-text answers MLflow gives for content-type
problems, and ``/ping``, ``/health``, ``/version``.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any, Optional

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST
from mlflow.utils.proto_json_utils import NumpyEncoder, _get_jsonable_obj
from mlflow.version import VERSION

from ...errors import ModelFailure, SigawareError

__all__ = [
    "STACK_TRACE",
    "INTERNAL_SERVER_ERROR",
    "JSON_RESPONSE_TYPE",
    "MODEL_ERROR_MESSAGE",
    "TEXT_RESPONSE_TYPE",
    "ScoringResponse",
    "error_for_status",
    "format_predictions",
    "mlflow_error",
    "model_error",
    "no_default_model",
    "ping_body",
    "text_response",
    "version_body",
    "with_message",
]

#: Content type of every JSON answer (MLflow's ``Response(media_type="application/json")``: no charset).
JSON_RESPONSE_TYPE = "application/json"
#: Content type of MLflow's plain-text answers (415s).
TEXT_RESPONSE_TYPE = "text/plain; charset=utf-8"

#: MLflow includes a traceback (``stack_trace``) in some error bodies (a model exception, a CSV or Parquet
#: parse error); we leave it out unless the model's ``invocations_stack_trace`` setting asks for it.
STACK_TRACE = "stack_trace"

MODEL_ERROR_MESSAGE = (
    "Encountered an unexpected error while evaluating the model. Verify"
    " that the serialized input Dataframe is compatible with the model for"
    " inference."
)


@dataclass
class ScoringResponse:
    """What the ``/invocations`` route sends back, verbatim."""

    status: int
    body: bytes
    content_type: str  # JSON_RESPONSE_TYPE or TEXT_RESPONSE_TYPE


def ping_body() -> tuple[int, bytes, str]:
    """MLflow's ``GET /ping`` and ``GET /health``: 200, a newline, labelled JSON."""
    return 200, b"\n", JSON_RESPONSE_TYPE


def version_body() -> tuple[int, bytes, str]:
    """MLflow's ``GET /version``: the MLflow version as a bare string, labelled JSON."""
    return 200, VERSION.encode("utf-8"), JSON_RESPONSE_TYPE


#: A failure of ours (a bug): MLflow would let it escape as a plain-text 500; we keep its body JSON and
#: MLflow-shaped, without a traceback (the traceback is logged, once).
INTERNAL_SERVER_ERROR = ScoringResponse(
    500,
    json.dumps({"error_code": "INTERNAL_ERROR", "message": "internal error while scoring; see the server log"}).encode(),
    JSON_RESPONSE_TYPE,
)

#: error_code for our own HTTP statuses (MLflow's ``get_error_code`` would say ENDPOINT_NOT_FOUND for
#: a 404; a missing model version is a missing resource).
_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_CONFLICT",
    503: "TEMPORARILY_UNAVAILABLE",
}


def error_for_status(status: int, message: str, error_code: Optional[str] = None) -> ScoringResponse:
    """An MLflow-shaped JSON error for a failure outside the scoring protocol itself (an unknown
    model version, a model not loaded...): our status, the matching MLflow ``error_code``."""
    from mlflow.exceptions import get_error_code
    from mlflow.protos.databricks_pb2 import ErrorCode

    name = error_code or _ERROR_CODES.get(status)
    code = ErrorCode.Value(name) if name else get_error_code(status)
    body = MlflowException(message, error_code=code).serialize_as_json().encode("utf-8")
    return ScoringResponse(status, body, JSON_RESPONSE_TYPE)


def no_default_model(names: list[str]) -> ScoringResponse:
    """The bare ``POST /invocations`` of a server hosting several models, none marked default."""
    listed = ", ".join(names) if names else "none loaded"
    return error_for_status(
        404,
        f"POST /invocations needs one model to send requests to, and this server hosts several "
        f"({listed}) with none marked default: use POST /v2/models/<name>/invocations, or set "
        f"default_invocations_model in one model's parameters.extra",
        error_code="ENDPOINT_NOT_FOUND",
    )


def text_response(status: int, message: str) -> ScoringResponse:
    return ScoringResponse(status, message.encode("utf-8"), TEXT_RESPONSE_TYPE)


def mlflow_error(exc: MlflowException, stack_trace: bool = False) -> ScoringResponse:
    """MLflow's body for ``exc``; its ``stack_trace`` (where MLflow adds one) only if asked for."""
    if not stack_trace:
        exc.json_kwargs.pop(STACK_TRACE, None)
    return ScoringResponse(
        exc.get_http_status_code(), exc.serialize_as_json().encode("utf-8"), JSON_RESPONSE_TYPE
    )


def with_message(exc: MlflowException, message: str) -> MlflowException:
    """``exc``'s error code, class and sqlstate with ``message`` (used for our codec's messages)."""
    exc.message = message
    return exc


def model_error(exc: SigawareError, shown: Any, stack_trace: bool = False) -> MlflowException:
    """What MLflow answers when ``model.predict`` raises (after its own input checks passed); the
    ``stack_trace`` MLflow sends with it only if asked for."""
    original = exc.__context__ if isinstance(exc, ModelFailure) else None
    if isinstance(original, MlflowException):
        # MLflow re-raises an MlflowException from predict with its own code, message prefixed.
        return MlflowException(
            f"Failed to predict data '{shown}'. \nError: {original.message}",
            error_code=_error_code_number(original.error_code),
        )
    extra: dict[str, Any] = {}
    if stack_trace:
        source = original if original is not None else exc
        extra[STACK_TRACE] = "".join(
            traceback.format_exception(type(source), source, source.__traceback__)
        )
    return MlflowException(MODEL_ERROR_MESSAGE, error_code=BAD_REQUEST, **extra)


def _error_code_number(name: str) -> int:
    from mlflow.protos.databricks_pb2 import ErrorCode

    return ErrorCode.Value(name)


def format_predictions(prediction: Any, unwrapped: bool = False) -> bytes:
    """MLflow's ``predictions_to_json`` (or, for unified LLM requests, ``unwrapped_predictions_to_json``).

    Byte for byte: MLflow's own ``_get_jsonable_obj`` (DataFrame/Series -> records, ndarray ->
    list) and ``NumpyEncoder`` through the stdlib encoder with its default separators, ASCII escapes
    and ``NaN``/``Infinity`` literals. ``json.dumps`` runs the C encoder where MLflow's ``json.dump``
    runs the pure-Python one; both write the same bytes. orjson cannot be used: it formats floats
    differently (``1e-05`` -> ``0.00001``), writes ``null`` for NaN and does not escape non-ASCII.
    """
    jsonable = _get_jsonable_obj(prediction, pandas_orient="records")
    document = jsonable if unwrapped else {"predictions": jsonable}
    return json.dumps(document, cls=NumpyEncoder).encode("utf-8")

