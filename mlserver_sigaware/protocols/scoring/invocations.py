"""MLflow's scoring protocol (``POST /invocations`` of ``mlflow models serve``) as a pure module.

Deliberate differences from MLflow 3.17.2's scoring server
----------------------------------------------------------
1. **Messages of inputs our codec rejects** are our codec's (the V2 ones, naming the input and its
   expected type) instead of MLflow's, which embed ``repr()`` of the whole DataFrame and schema.
   Status, ``error_code``, ``error_class`` and ``sqlstate`` are MLflow's for the same request. Params
   errors likewise carry our message (MLflow lists every invalid param; we name the first). Where
   our codec was not involved (JSON/format/CSV/Parquet errors, shapes read by MLflow, model
   exceptions) the body is MLflow's own.
   Reason: one codec, one set of messages for V2 and /invocations.
2. **No** ``stack_trace``: MLflow adds a Python traceback to some error bodies (a model exception's
   400 ``BAD_REQUEST``, CSV/Parquet parse errors); we leave it out, since a traceback shows the
   server's internals to any client. The model setting ``invocations_stack_trace: true`` puts it back
   (MLflow's exact body); a model exception's trace then starts at our predictor's call into the model
   rather than at MLflow's server frames (we call the model ourselves).
3. A request **without** ``Content-Type`` is MLflow's 415 for an unsupported one (MLflow itself fails
   on the missing header with a bare 500: a client's mistake is never a 5xx here).
4. MLflow's request-timeout middleware (504) is not reproduced: the server's own timeouts apply.
5. **Zero rows** are a 400 ``INVALID_PARAMETER_VALUE`` before the model runs. MLflow refuses most
   empty payloads in its schema enforcement (those answers are MLflow's own bodies); an empty table
   that names its columns (``{"dataframe_split": {"columns": [...], "data": []}}``) MLflow hands to
   the model, whose answer depends on the flavor (200 without the promised outputs, or a 400 from
   inside the flavor). Reason: one rule on every route (docs/flavors.md).
6. Extensions without an MLflow counterpart: :func:`error_for_status` (e.g. an unknown model version
   selected by header, or conflicting version headers) and :func:`no_default_model` (bare
   ``/invocations`` on a multi-model server); the request limits of
   :mod:`mlserver_sigaware._patches.request_limits` (413, 415, and 400 for JSON nested too deep).

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
  :func:`fast_inputs` where our codec would *accept* but MLflow answers differently (a null outside
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

import logging
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE
from mlserver.types import InferenceRequest

from ...codec.params import validate_json_params
from ...errors import InvalidInput, InvalidParams, SigawareError
from .fastpath import UseMlflow, check_decoded, fast_inputs, fast_path_allowed, uniform_frame
from .reading import (
    CONTENT_TYPE_CSV,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_PARQUET,
    CONTENT_TYPES,
    INPUTS,
    ScoringRequest,
    read_csv,
    read_json,
    read_parquet,
)
from .responses import (
    INTERNAL_SERVER_ERROR,
    JSON_RESPONSE_TYPE,
    ScoringResponse,
    format_predictions,
    mlflow_error,
    model_error,
    text_response,
    with_message,
)

if TYPE_CHECKING:  # pragma: no cover
    from ...model.served import ServedModel

logger = logging.getLogger("mlserver.sigaware")

__all__ = ["invoke", "model_input"]


def invoke(
    served: "ServedModel", body: bytes, content_type: Optional[str], stack_trace: bool = False
) -> ScoringResponse:
    """Answer one ``POST /invocations`` as MLflow's scoring server would (``stack_trace``: whether error
    bodies keep the traceback MLflow puts in some of them; see the module docstring)."""
    try:
        return _invoke(served, body, content_type, stack_trace)
    except MlflowException as exc:
        return mlflow_error(exc, stack_trace)
    except RecursionError:
        # Python's JSON parser (MLflow's, for bodies orjson leaves to it) on nesting the request limits
        # let through (max_json_depth raised past ~900): the client's mistake, not a crash.
        return mlflow_error(MlflowException("request body: JSON nested too deeply", error_code=BAD_REQUEST))
    except Exception:
        # MLflow lets these escape to Starlette, whose answer is a bare 500 in plain text.
        logger.exception("unexpected error while scoring on /invocations")
        return INTERNAL_SERVER_ERROR


def _invoke(served: "ServedModel", body: bytes, content_type: Optional[str], stack_trace: bool) -> ScoringResponse:
    if content_type is None:
        # MLflow calls content_type.split() on the missing header: AttributeError, a bare 500. A missing
        # header is the client's mistake: MLflow's own answer to an unsupported one (deliberate difference).
        return _unsupported_content_type(None)
    type_parts = [part.strip() for part in content_type.split(";")]
    mime_type = type_parts[0]
    parameters = {key: value for pair in type_parts[1:] for key, _, value in [pair.partition("=")]}
    if parameters.get("charset", "utf-8").lower() != "utf-8":
        return text_response(415, "The scoring server only supports UTF-8")
    unexpected = set(parameters).difference({"charset"})
    if unexpected:
        from mlflow.pyfunc.scoring_server import SCORING_PROTOCOL_CHANGE_INFO

        return text_response(
            415,
            f"Unrecognized content type parameters: {', '.join(unexpected)}. "
            f"{SCORING_PROTOCOL_CHANGE_INFO}",
        )

    unwrapped = False
    if mime_type == CONTENT_TYPE_CSV:
        request = read_csv(served, body)
    elif mime_type == CONTENT_TYPE_JSON:
        request = read_json(served, body)
        unwrapped = request.kind == "llm"
    elif mime_type == CONTENT_TYPE_PARQUET:
        request = read_parquet(body)
    else:
        return _unsupported_content_type(content_type)

    data, enforce, shown = model_input(served, request)
    if has_no_rows(data):
        raise MlflowException.invalid_parameter_value(
            "The input has no rows: a request needs at least one row."
        )
    try:
        params = validate_json_params(request.params, served.params_schema)
    except InvalidParams as exc:
        raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
    try:
        prediction = served.predictor(data, params, enforce=enforce)
    except SigawareError as exc:
        raise model_error(exc, shown, stack_trace) from None
    return ScoringResponse(200, format_predictions(prediction, unwrapped), JSON_RESPONSE_TYPE)


def _unsupported_content_type(content_type: Optional[str]) -> ScoringResponse:
    return text_response(
        415,
        "This predictor only supports the following content types:"
        f" Types: {CONTENT_TYPES}."
        f" Got '{content_type}'.",
    )


def has_no_rows(data: Any) -> bool:
    """Whether the model input has zero rows (a frame, an array, a dict of arrays, a list)."""
    if isinstance(data, (pd.DataFrame, pd.Series, list)):
        return len(data) == 0
    if isinstance(data, np.ndarray):
        return data.ndim > 0 and data.shape[0] == 0
    if isinstance(data, dict):
        return any(has_no_rows(v) for v in data.values() if isinstance(v, (np.ndarray, list)))
    return False


def model_input(served: "ServedModel", request: ScoringRequest) -> tuple[Any, bool, Any]:
    """``(data, enforce, shown)``: the model input, whether the predictor must still run MLflow's
    enforcement on it, and what MLflow would print as the data in its "Failed to predict" messages."""
    our_error: Optional[InvalidInput] = None
    if fast_path_allowed(served, request):
        try:
            frame = uniform_frame(served, request)
            if frame is not None:
                return frame, False, frame
            inputs = fast_inputs(served, request)
            v2 = InferenceRequest.model_construct(id=None, parameters=None, inputs=inputs, outputs=None)
            data = served.invocations_decoder.decode_inputs(v2)
            check_decoded(served, data)
            enforce = served.needs_enforcement(v2)
            if enforce:
                data = served.predictor.enforce(data)
            return data, False, data
        except UseMlflow:
            pass
        except InvalidInput as exc:
            our_error = exc
        except Exception:  # a shape our codec did not foresee: MLflow's reading is the reference
            logger.debug("fast /invocations decoding failed; using MLflow's", exc_info=True)
    return _mlflow_input(served, request, our_error)


def _mlflow_input(
    served: "ServedModel", request: ScoringRequest, our_error: Optional[InvalidInput]
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
            raise (with_message(exc, str(our_error)) if our_error is not None else exc) from None
    else:
        parsed = request.payload
    if type_hinted:  # the model validates its own input
        return parsed, False, parsed
    try:
        data, _ = _validate_prediction_input(parsed, None, schema, None, served.predictor.loader_module)
    except MlflowException as exc:
        # MLflow's message starts with the whole parsed input ("Failed to predict data '<frame>'"):
        # where our codec refused the input, its message (naming the input and the expected type)
        # replaces all of it, so no body echoes the client's data back.
        exc.message = str(our_error) if our_error is not None else f"Failed to predict data '{parsed}'. \nError: {exc.message}"
        raise exc from None
    return data, False, parsed

