"""MLflow's scoring protocol (``POST /invocations`` of ``mlflow models serve``) as a pure module.

Deliberate differences from MLflow 3.17.2's scoring server
----------------------------------------------------------
1. **Messages of inputs our codec rejects** are our codec's (the V2 ones, naming the input and its
   expected type) instead of MLflow's, which embed ``repr()`` of the whole DataFrame and schema.
   Status, ``error_code``, ``error_class`` and ``sqlstate`` are MLflow's for the same request. Params
   errors likewise carry our message (MLflow lists every invalid param; we name the first). Where
   our codec was not involved (JSON/format/CSV/Parquet errors, shapes read by MLflow, model
   exceptions) the body is MLflow's own, ``stack_trace`` included where MLflow includes one.
   Reason: one codec, one set of messages for V2 and /invocations.
2. **A model exception's** ``stack_trace`` (MLflow sends one with its 400 ``BAD_REQUEST``) starts at
   our predictor's call into the model rather than at MLflow's server frames; the message is
   MLflow's. Reason: we call the model ourselves. :data:`INCLUDE_STACK_TRACE` = ``False`` drops it.
3. MLflow's request-timeout middleware (504) is not reproduced: the server's own timeouts apply.
4. Extensions without an MLflow counterpart: :func:`error_for_status` (e.g. an unknown model version
   selected by header) and :func:`no_default_model` (bare ``/invocations`` on a multi-model server).

Known differences, not deliberate (their causes lie outside this module)
-------------------------------------------------------------------------
* The params dict a model receives lists the schema's params in schema order (MLflow: the given
  ones first); MLflow's warnings about ignored params and extra columns are not logged.

The module
----------
No web framework here: :func:`invoke` takes the raw body and the ``Content-Type`` header and returns a
:class:`ScoringResponse` (status, body bytes, content type) that the route writes out as is. The
contract is parity with MLflow 3.x's scoring server (``mlflow/pyfunc/scoring_server/__init__.py``):
the same accepted inputs, status codes, ``error_code`` s and, where MLflow is deterministic, the same
response bytes (``{"predictions": ...}`` is produced by MLflow's own ``_get_jsonable_obj`` and
``NumpyEncoder`` through the stdlib encoder, exactly what ``predictions_to_json`` writes).

How a request is decoded:

* **Fast path (one codec).** A tabular or tensor payload of a regular shape is turned into V2
  ``RequestInput`` s (one per column or tensor, its V2 datatype being what the JSON values are) and
  decoded by a :class:`~mlserver_sigaware.codec.RequestDecoder` on the model's own plan -- the same
  checks and error messages as ``/v2/models/<name>/infer`` (extra columns ignored, as MLflow does).
* **MLflow's reading.** Where MLflow reads a payload differently from what our codec would (it is
  more lenient: ``"7"`` for a long, ``1.5`` truncated to a long, ``0``/``1`` for booleans, lenient
  base64, ...; or it converts differently: nulls, binary in ``inputs``), the request goes through
  MLflow's own parsing and schema enforcement (``infer_and_parse_data`` + ``_enforce_schema``): we
  never re-implement MLflow's conversions. That happens when our codec rejects the request (MLflow
  is then the referee: if it accepts, its data is served; if it rejects, its status and
  ``error_code`` are answered, with our codec's message) and, up front, for the shapes listed in
  :func:`_fast_inputs` where our codec would *accept* but MLflow answers differently (a null outside
  a float column, datetimes of mixed or zoned formats, binary/datetime/composite values outside the
  ``dataframe_*`` formats, a ``dataframe_split`` ``index``, irregular rows...). Payloads without a
  signature, of type-hinted models, in Parquet, or in the unified LLM format (top-level
  ``messages``/``prompt``/``input``: answered without the ``predictions`` wrapper) always go through
  MLflow's reading.
* **Params** follow MLflow: unknown names are ignored, params of a model without a params schema
  are ignored, a non-object ``params`` is a 400 ``INVALID_PARAMETER_VALUE``; values are checked by
  :func:`~mlserver_sigaware.codec.validate_json_params` (the V2 check without V2's gRPC leniency).
* Errors are checked in MLflow's order: content type, JSON, format keys, input, params, model.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from dataclasses import dataclass
from io import BytesIO, StringIO
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import orjson
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE
from mlflow.types.schema import DataType
from mlflow.utils.proto_json_utils import (
    MlflowInvalidInputException,
    NumpyEncoder,
    _get_jsonable_obj,
)
from mlflow.version import VERSION
from mlserver.types import InferenceRequest, Parameters, RequestInput, TensorData

from .codec import _NUMERIC_KINDS, _PLAIN_NUMBERS, validate_json_params
from .errors import InvalidInput, InvalidParams, ModelFailure, SigawareError
from .signature import FieldSpec, Layout, SchemaPlan

if TYPE_CHECKING:  # pragma: no cover
    from .served import ServedModel

logger = logging.getLogger("mlserver.sigaware")

__all__ = [
    "CONTENT_TYPES",
    "INCLUDE_STACK_TRACE",
    "JSON_RESPONSE_TYPE",
    "TEXT_RESPONSE_TYPE",
    "ScoringResponse",
    "error_for_status",
    "format_predictions",
    "invoke",
    "no_default_model",
    "ping_body",
    "version_body",
]

#: Content type of every JSON answer (MLflow's ``Response(media_type="application/json")``: no charset).
JSON_RESPONSE_TYPE = "application/json"
#: Content type of MLflow's plain-text answers (415s, and the bare 500 of a server crash).
TEXT_RESPONSE_TYPE = "text/plain; charset=utf-8"

CONTENT_TYPE_CSV = "text/csv"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_PARQUET = "application/vnd.apache.parquet"
#: What MLflow's 415 lists, in its order.
CONTENT_TYPES = [CONTENT_TYPE_CSV, CONTENT_TYPE_JSON, CONTENT_TYPE_PARQUET]

DF_RECORDS = "dataframe_records"
DF_SPLIT = "dataframe_split"
INSTANCES = "instances"
INPUTS = "inputs"
SUPPORTED_FORMATS = frozenset({DF_RECORDS, DF_SPLIT, INSTANCES, INPUTS})
PARAMS_KEY = "params"
#: Top-level keys that make MLflow read a JSON body as a "unified LLM" payload (answered unwrapped).
LLM_KEYS = frozenset({"messages", "prompt", "input"})

#: MLflow includes the traceback of a model exception in its 400 (``stack_trace``); so do we.
INCLUDE_STACK_TRACE = True

_MODEL_ERROR_MESSAGE = (
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


_INTERNAL_SERVER_ERROR = ScoringResponse(500, b"Internal Server Error", TEXT_RESPONSE_TYPE)

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


# ----------------------------------------------------------------------------------------- entry


def invoke(served: "ServedModel", body: bytes, content_type: Optional[str]) -> ScoringResponse:
    """Answer one ``POST /invocations`` exactly as MLflow's scoring server would."""
    try:
        return _invoke(served, body, content_type)
    except MlflowException as exc:
        return _mlflow_error(exc)
    except Exception:
        # MLflow lets these escape to Starlette, whose answer is a bare 500 in plain text.
        logger.exception("unexpected error while scoring on /invocations")
        return _INTERNAL_SERVER_ERROR


def _text(status: int, message: str) -> ScoringResponse:
    return ScoringResponse(status, message.encode("utf-8"), TEXT_RESPONSE_TYPE)


def _mlflow_error(exc: MlflowException) -> ScoringResponse:
    return ScoringResponse(
        exc.get_http_status_code(), exc.serialize_as_json().encode("utf-8"), JSON_RESPONSE_TYPE
    )


def _with_message(exc: MlflowException, message: str) -> MlflowException:
    """``exc``'s error code, class and sqlstate with ``message`` (used for our codec's messages)."""
    exc.message = message
    return exc


def _invoke(served: "ServedModel", body: bytes, content_type: Optional[str]) -> ScoringResponse:
    if content_type is None:
        # MLflow calls content_type.split() on the missing header: AttributeError, a bare 500.
        return _INTERNAL_SERVER_ERROR
    type_parts = [part.strip() for part in content_type.split(";")]
    mime_type = type_parts[0]
    parameters = {key: value for pair in type_parts[1:] for key, _, value in [pair.partition("=")]}
    if parameters.get("charset", "utf-8").lower() != "utf-8":
        return _text(415, "The scoring server only supports UTF-8")
    unexpected = set(parameters).difference({"charset"})
    if unexpected:
        from mlflow.pyfunc.scoring_server import SCORING_PROTOCOL_CHANGE_INFO

        return _text(
            415,
            f"Unrecognized content type parameters: {', '.join(unexpected)}. "
            f"{SCORING_PROTOCOL_CHANGE_INFO}",
        )

    unwrapped = False
    if mime_type == CONTENT_TYPE_CSV:
        request = _read_csv(served, body)
    elif mime_type == CONTENT_TYPE_JSON:
        request = _read_json(served, body)
        unwrapped = request.kind == "llm"
    elif mime_type == CONTENT_TYPE_PARQUET:
        request = _read_parquet(body)
    else:
        return _text(
            415,
            "This predictor only supports the following content types:"
            f" Types: {CONTENT_TYPES}."
            f" Got '{content_type}'.",
        )

    data, enforce, shown = _model_input(served, request)
    try:
        params = validate_json_params(request.params, served.params_schema)
    except InvalidParams as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
    try:
        prediction = served.predictor(data, params, enforce=enforce)
    except SigawareError as exc:
        raise _model_error(exc, shown) from None
    return ScoringResponse(200, format_predictions(prediction, unwrapped), JSON_RESPONSE_TYPE)


def _model_error(exc: SigawareError, shown: Any) -> MlflowException:
    """What MLflow answers when ``model.predict`` raises (after its own input checks passed)."""
    original = exc.__context__ if isinstance(exc, ModelFailure) else None
    if isinstance(original, MlflowException):
        # MLflow re-raises an MlflowException from predict with its own code, message prefixed.
        return MlflowException(
            f"Failed to predict data '{shown}'. \nError: {original.message}",
            error_code=_error_code_number(original.error_code),
        )
    extra: dict[str, Any] = {}
    if INCLUDE_STACK_TRACE:
        source = original if original is not None else exc
        extra["stack_trace"] = "".join(
            traceback.format_exception(type(source), source, source.__traceback__)
        )
    return MlflowException(_MODEL_ERROR_MESSAGE, error_code=BAD_REQUEST, **extra)


def _error_code_number(name: str) -> int:
    from mlflow.protos.databricks_pb2 import ErrorCode

    return ErrorCode.Value(name)


# ---------------------------------------------------------------------------------- formatting


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


# ------------------------------------------------------------------------------------- reading


@dataclass
class _Request:
    """A request body read by content type, before any conversion to the model's types."""

    kind: str  # "json", "llm", "csv", "parquet"
    payload: Any  # json: the format keys' dict; llm: the data dict; csv/parquet: a DataFrame
    params: Any = None


def _read_csv(served: "ServedModel", body: bytes) -> _Request:
    from mlflow.pyfunc.scoring_server import parse_csv_input

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise MlflowInvalidInputException(
            f"Ensure that input is a valid UTF-8 encoded string. Error: '{ex!r}'"
        ) from ex
    # MLflow's parser, as is: it reads the columns as the schema's pandas types, and its errors
    # (400 BAD_REQUEST with a stack trace) are part of the protocol.
    frame = parse_csv_input(csv_input=StringIO(text), schema=served.input_schema)
    return _Request("csv", frame)


def _read_parquet(body: bytes) -> _Request:
    from mlflow.pyfunc.scoring_server import parse_parquet_input

    return _Request("parquet", parse_parquet_input(parquet_input=BytesIO(body)))


def _load_json(body: bytes) -> Any:
    # orjson reads integers outside [-2**63, 2**64) as floats where Python's json keeps them exact:
    # a body with a run of 19+ digits (anywhere, strings included) is left to Python's json.
    if _NINETEEN_DIGITS not in body.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    # Python's json is more lenient (NaN/Infinity, UTF-16/32 and BOMs, integers beyond 64 bits,
    # lone surrogates); MLflow uses it, so does the fallback. Its errors become MLflow's message.
    from mlflow.pyfunc.scoring_server import _decode_json_input

    return _decode_json_input(body)


def _read_json(served: "ServedModel", body: bytes) -> _Request:
    document = _load_json(body)
    if not isinstance(document, dict):
        from mlflow.pyfunc.scoring_server import _decode_json_input

        _decode_json_input(body)  # raises MLflow's "Received a list." / "unexpected input type"
        raise AssertionError("unreachable")  # pragma: no cover
    if any(key in document for key in LLM_KEYS):
        schema = served.params_schema
        names = {p.name for p in schema.params} if schema is not None else set()
        data = {k: v for k, v in document.items() if k not in names}
        params = {k: v for k, v in document.items() if k in names}
        return _Request("llm", data, params)
    formats = {k: v for k, v in document.items() if k in SUPPORTED_FORMATS}
    return _Request("json", formats, document.get(PARAMS_KEY))


# ------------------------------------------------------------------------------ model input


class _UseMlflow(Exception):
    """The fast path does not take this payload shape: MLflow's own reading decides."""


def _model_input(served: "ServedModel", request: _Request) -> tuple[Any, bool, Any]:
    """``(data, enforce, shown)``: the model input, whether the predictor must still run MLflow's
    enforcement on it, and what MLflow would print as the data in its "Failed to predict" messages."""
    our_error: Optional[InvalidInput] = None
    if _fast_path_allowed(served, request):
        try:
            frame = _uniform_frame(served, request)
            if frame is not None:
                return frame, False, frame
            inputs = _fast_inputs(served, request)
            v2 = InferenceRequest.model_construct(id=None, parameters=None, inputs=inputs, outputs=None)
            data = served.invocations_decoder.decode_inputs(v2)
            _check_decoded(served, data)
            enforce = served.needs_enforcement(v2)
            if enforce:
                data = served.predictor.enforce(data)
            return data, False, data
        except _UseMlflow:
            pass
        except InvalidInput as exc:
            our_error = exc
        except Exception:  # a shape our codec did not foresee: MLflow's reading is the reference
            logger.debug("fast /invocations decoding failed; using MLflow's", exc_info=True)
    return _mlflow_input(served, request, our_error)


def _uniform_frame(served: "ServedModel", request: _Request) -> Optional[pd.DataFrame]:
    """The frame of a plain numeric ``dataframe_split``/``dataframe_records`` table for an all-float
    signature (the common tabular request), or ``None``.

    The general fast path turns each column into a V2 input for the decoder (~40 µs a column); a table
    of numbers needs none of that: one ``np.asarray`` of the rows is the model's block. Taken only when
    the table names exactly the signature's columns and holds only ints and floats (no null, bool or
    text, which MLflow reads in ways of its own), so the frame is the one the general path builds (a
    test compares them).
    """
    decoder = served.invocations_decoder
    if decoder.uniform_target is None or served.always_enforce or request.kind != "json":
        return None
    formats = request.payload
    if len(formats) != 1:
        return None
    fmt, payload = next(iter(formats.items()))
    names = decoder.uniform_names
    if fmt == DF_SPLIT:
        if type(payload) is not dict or payload.keys() != {"columns", "data"}:
            return None
        columns, rows = payload["columns"], payload["data"]
        if (
            type(columns) is not list
            or set(map(type, columns)) != {str}
            or len(set(columns)) != len(columns)
            or sorted(columns) != sorted(names)
        ):
            return None
        if type(rows) is not list or not rows or set(map(type, rows)) != {list}:
            return None
    elif fmt == DF_RECORDS:
        if type(payload) is not list or not payload or set(map(type, payload)) != {dict}:
            return None
        keys = payload[0].keys()
        if sorted(keys) != sorted(names) or not all(map(keys.__eq__, map(dict.keys, payload))):
            return None
        columns = list(keys)
        # By key, not by position: records may list the same keys in different orders.
        rows = list(map(itemgetter(*columns), payload))
    else:
        return None
    if set(map(len, rows)) != {len(names)} or not set(map(type, chain.from_iterable(rows))) <= _PLAIN_NUMBERS:
        return None
    table = np.asarray(rows)
    if table.dtype.kind not in _NUMERIC_KINDS:  # e.g. an int beyond 64 bits
        return None
    block = table.T if columns == list(names) else table.T[[columns.index(n) for n in names]]
    return decoder.uniform_frame(np.ascontiguousarray(block))



def _fast_path_allowed(served: "ServedModel", request: _Request) -> bool:
    if request.kind not in ("json", "csv"):
        return False
    plan = served.inputs
    if plan.layout is Layout.ANY:
        return False
    if plan.layout is Layout.COLUMNS and not all(f.named for f in plan.fields):
        return False  # MLflow matches unnamed columns by position
    try:
        return not served.predictor.pyfunc.metadata._is_signature_from_type_hint()
    except AttributeError:  # pragma: no cover - older MLflow
        return True


def _mlflow_input(
    served: "ServedModel", request: _Request, our_error: Optional[InvalidInput]
) -> tuple[Any, bool, Any]:
    """MLflow's own parsing and schema enforcement of ``request`` (what ``invocations`` and
    ``PyFuncModel.predict`` do before calling the model)."""
    from mlflow.pyfunc import _validate_prediction_input
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    pyfunc = served.predictor.pyfunc
    metadata = pyfunc.metadata
    schema = served.input_schema
    type_hinted = bool(getattr(metadata, "_is_signature_from_type_hint", lambda: False)())
    if request.kind == "json":
        if type_hinted:
            if INPUTS not in request.payload:
                raise MlflowException.invalid_parameter_value(
                    "Request payload must be a dictionary with 'inputs' key when "
                    f"the model contains a valid type hint. Found keys in payload: "
                    f"{request.payload.keys()}."
                )
            return request.payload[INPUTS], False, request.payload[INPUTS]
        try:
            parsed = infer_and_parse_data(dict(request.payload), schema)
        except MlflowException as exc:
            raise (_with_message(exc, str(our_error)) if our_error is not None else exc) from None
    else:
        parsed = request.payload
    if type_hinted:  # the model validates its own input
        return parsed, False, parsed
    try:
        data, _ = _validate_prediction_input(parsed, None, schema, None, served.predictor.loader_module)
    except MlflowException as exc:
        message = str(our_error) if our_error is not None else exc.message
        exc.message = f"Failed to predict data '{parsed}'. \nError: {message}"
        raise exc from None
    return data, False, parsed


# -------------------------------------------------------------------- fast path: payload -> V2


_FLOAT_TYPES = (DataType.float, DataType.double)
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_NINETEEN_DIGITS = b"0" * 19  # (1 ms/MB with translate, where a regex takes 30)
_DIGITS = re.compile(r"\d")


def _fast_inputs(served: "ServedModel", request: _Request) -> list[RequestInput]:
    """The payload as V2 inputs for our decoder, or :class:`_UseMlflow` for shapes MLflow reads
    differently from what our codec would do with them:

    * anything but a regular table (``dataframe_split`` with ``columns`` and rows of equal length and
      no ``index``; ``dataframe_records``/``instances``/``inputs`` records with the same keys;
      ``inputs`` as a dict of equal-length lists or of scalars; a list of scalars for a
      one-column model) or a regular nested list for tensors;
    * a null outside a float column (MLflow: an error for integers, ``False`` for booleans, the text
      ``"None"`` for strings in ``inputs``...);
    * binary, datetime or composite (array/object/map) values outside ``dataframe_*`` (MLflow does not
      base64-decode binary there, parses datetimes with numpy, and reads a dict of composite values
      as one row), binary in CSV (passed on as text);
    * datetimes not all written in one format, or with a UTC offset (MLflow: an error).
    """
    plan = served.inputs
    if plan.layout is Layout.COLUMNS:
        columns = _table(request, plan)
        return [_column_input(plan.by_name.get(name), values, request, name) for name, values in columns.items()]
    if plan.layout is Layout.TENSOR:
        value = _tensor_payload(request)
        return [_tensor_input(plan.fields[0], plan.fields[0].name, value)]
    if plan.layout is Layout.TENSORS:
        columns = _table(request, plan)
        return [_tensor_input(plan.by_name.get(name), name, values) for name, values in columns.items()]
    raise _UseMlflow


def _format(request: _Request) -> tuple[str, Any]:
    if request.kind == "csv":
        return "csv", request.payload
    formats = request.payload
    if len(formats) != 1:
        raise _UseMlflow  # MLflow's "exactly one of the input fields" error
    return next(iter(formats.items()))


def _records(rows: Any) -> dict[str, list]:
    # (C-level scans: these run over every row of big requests)
    if not isinstance(rows, list) or not rows or set(map(type, rows)) != {dict}:
        raise _UseMlflow
    keys = rows[0].keys()
    if not all(map(keys.__eq__, map(dict.keys, rows))):
        raise _UseMlflow
    return {k: list(map(itemgetter(k), rows)) for k in keys}


def _table(request: _Request, plan: SchemaPlan) -> dict[str, list]:
    """Column name -> values of a tabular payload."""
    fmt, payload = _format(request)
    if fmt == "csv":
        frame: pd.DataFrame = payload
        if not frame.columns.is_unique or not all(isinstance(c, str) for c in frame.columns):
            raise _UseMlflow
        return {c: frame[c].tolist() for c in frame.columns}
    if fmt == DF_SPLIT:
        if not isinstance(payload, dict) or set(payload) != {"columns", "data"}:
            raise _UseMlflow
        names, rows = payload["columns"], payload["data"]
        if (
            not isinstance(names, list)
            or not names
            or set(map(type, names)) != {str}
            or len(set(names)) != len(names)
            or not isinstance(rows, list)
            or not rows
            or set(map(type, rows)) != {list}
            or set(map(len, rows)) != {len(names)}
        ):
            raise _UseMlflow
        return {n: list(map(itemgetter(i), rows)) for i, n in enumerate(names)}
    if fmt in (DF_RECORDS, INSTANCES):
        if fmt == INSTANCES and isinstance(payload, list) and payload and not isinstance(payload[0], dict):
            return _single_column(payload, plan)
        return _records(payload)
    if fmt == INPUTS:
        if isinstance(payload, dict):
            values = list(payload.values())
            if not values:
                raise _UseMlflow
            if all(isinstance(v, list) for v in values):
                if len({len(v) for v in values}) != 1 or not values[0]:
                    raise _UseMlflow
                return dict(payload)
            if any(isinstance(v, (list, dict)) for v in values):
                raise _UseMlflow
            return {k: [v] for k, v in payload.items()}  # one row
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            return _records(payload)
        return _single_column(payload, plan)
    raise _UseMlflow


def _single_column(payload: Any, plan: SchemaPlan) -> dict[str, list]:
    """A bare list of values is the column of a one-column model (MLflow's ``_cast_schema_type``)."""
    if not isinstance(payload, list) or not payload or len(plan.fields) != 1:
        raise _UseMlflow
    return {plan.fields[0].name: payload}


_V2_OF_JSON = {
    frozenset({bool}): "BOOL",
    frozenset({int}): "INT64",
    frozenset({float}): "FP64",
    frozenset({int, float}): "FP64",
}


def _v2_datatype(types: set, spec: FieldSpec) -> str:
    """The V2 datatype a client would send values of these JSON ``types`` as (nulls aside):
    BOOL, INT64, FP64, or BYTES for text and anything mixed; the spec's own when all are null."""
    types = types - {type(None)}
    if not types:
        return spec.datatype
    return _V2_OF_JSON.get(frozenset(types), "BYTES")


def _v2_input(
    name: str, datatype: str, shape: list[int], data: list, content_type: Optional[str] = None
) -> RequestInput:
    return RequestInput.model_construct(
        name=name,
        shape=shape,
        datatype=datatype,
        parameters=Parameters(content_type=content_type) if content_type else None,
        data=TensorData.model_construct(root=data),
    )


def _column_input(spec: Optional[FieldSpec], values: list, request: _Request, name: str) -> RequestInput:
    fmt = "csv" if request.kind == "csv" else next(iter(request.payload))
    dataframe_format = fmt in (DF_SPLIT, DF_RECORDS)
    if spec is None:
        if not dataframe_format and fmt != "csv":
            raise _UseMlflow  # MLflow still runs np.array() on unknown inputs/instances keys
        return _v2_input(name, "BYTES", [len(values)], [])  # ignored by the decoder, as by MLflow
    t = spec.mlflow_type
    types = set(map(type, values))
    if t not in _FLOAT_TYPES and type(None) in types:
        raise _UseMlflow
    if not spec.is_composite and (list in types or dict in types):
        raise _UseMlflow  # MLflow keeps the object as one cell (our V2 decoder would flatten lists)
    if spec.is_composite:
        if not dataframe_format:
            raise _UseMlflow
        return _v2_input(spec.name, "BYTES", [len(values)], [orjson.dumps(v) for v in values], "json")
    if t is DataType.binary and not dataframe_format:
        raise _UseMlflow
    if t is DataType.datetime:
        if not dataframe_format:
            raise _UseMlflow
        # MLflow lets pandas infer one format from the first value; ours reads any ISO 8601 mix.
        # (Zoned values are caught after decoding, see _check_decoded.)
        if all(isinstance(v, str) for v in values) and len({_DIGITS.sub("0", v) for v in values}) != 1:
            raise _UseMlflow
    return _v2_input(spec.name, _v2_datatype(types, spec), [len(values)], values)


def _nested(value: Any, name: str) -> tuple[list[int], list]:
    """Shape and flat values of a (regular) nested list; :class:`InvalidInput` when ragged."""
    shape: list[int] = []
    level = [value]
    while level and type(level[0]) is list:
        if set(map(type, level)) != {list}:
            raise InvalidInput(f"input '{name}': ragged nested lists (lists mixed with values)")
        lengths = set(map(len, level))
        if len(lengths) != 1:
            raise InvalidInput(f"input '{name}': ragged nested lists (lengths {sorted(lengths)})")
        shape.append(lengths.pop())
        level = list(chain.from_iterable(level))
    if list in set(map(type, level)):
        raise InvalidInput(f"input '{name}': ragged nested lists (lists mixed with values)")
    return shape, level


def _tensor_payload(request: _Request) -> Any:
    fmt, payload = _format(request)
    if fmt in (INPUTS, INSTANCES):
        if not isinstance(payload, list) or (payload and isinstance(payload[0], dict)):
            raise _UseMlflow
        return payload
    if fmt == DF_SPLIT:
        if not isinstance(payload, dict) or not set(payload) <= {"columns", "data"} or "data" not in payload:
            raise _UseMlflow
        rows = payload["data"]
        if not isinstance(rows, list) or not rows or set(map(type, rows)) != {list}:
            raise _UseMlflow
        if set(map(len, rows)) != {len(payload.get("columns") or rows[0])}:
            raise _UseMlflow
        return rows
    raise _UseMlflow


def _tensor_input(spec: Optional[FieldSpec], name: str, value: Any) -> RequestInput:
    if spec is None:
        # MLflow ignores unknown tensors of a dict but still runs np.array() on them in `instances`
        raise _UseMlflow
    shape, flat = _nested(value, name)
    types = set(map(type, flat))
    if type(None) in types and spec.mlflow_type.kind != "f":
        raise _UseMlflow
    return _v2_input(name, _v2_datatype(types, spec), shape, flat)


def _check_decoded(served: "ServedModel", data: Any) -> None:
    """Decoded values MLflow would not have produced: zoned datetimes (MLflow: 400)."""
    if isinstance(data, pd.DataFrame):
        for spec in served.inputs.fields:
            if spec.mlflow_type is DataType.datetime and spec.name in data.columns:
                if isinstance(data[spec.name].dtype, pd.DatetimeTZDtype):
                    raise _UseMlflow
