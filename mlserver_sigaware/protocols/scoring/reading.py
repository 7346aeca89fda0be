"""A ``/invocations`` body read by its content type (JSON, CSV, Parquet), before any conversion.

The JSON reader keeps MLflow's semantics (Python's ``json`` where orjson would read a number
differently), so what reaches the decoder is what MLflow's scoring server would have parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO, StringIO
from typing import TYPE_CHECKING, Any

import orjson
from mlflow.utils.proto_json_utils import MlflowInvalidInputException

if TYPE_CHECKING:  # pragma: no cover
    from ...model.served import ServedModel

__all__ = [
    "CONTENT_TYPES",
    "CONTENT_TYPE_CSV",
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_PARQUET",
    "DF_RECORDS",
    "DF_SPLIT",
    "INPUTS",
    "INSTANCES",
    "LLM_KEYS",
    "PARAMS_KEY",
    "SUPPORTED_FORMATS",
    "ScoringRequest",
    "load_json",
    "read_csv",
    "read_json",
    "read_parquet",
]

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
DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
NINETEEN_DIGITS = b"0" * 19  # (1 ms/MB with translate, where a regex takes 30)


@dataclass
class ScoringRequest:
    """A request body read by content type, before any conversion to the model's types."""

    kind: str  # "json", "llm", "csv", "parquet"
    payload: Any  # json: the format keys' dict; llm: the data dict; csv/parquet: a DataFrame
    params: Any = None


def read_csv(served: "ServedModel", body: bytes) -> ScoringRequest:
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
    return ScoringRequest("csv", frame)


def read_parquet(body: bytes) -> ScoringRequest:
    from mlflow.pyfunc.scoring_server import parse_parquet_input

    return ScoringRequest("parquet", parse_parquet_input(parquet_input=BytesIO(body)))


def load_json(body: bytes) -> Any:
    # orjson reads integers outside [-2**63, 2**64) as floats where Python's json keeps them exact:
    # a body with a run of 19+ digits (anywhere, strings included) is left to Python's json.
    if NINETEEN_DIGITS not in body.translate(DIGITS_TO_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    # Python's json is more lenient (NaN/Infinity, UTF-16/32 and BOMs, integers beyond 64 bits,
    # lone surrogates); MLflow uses it, so does the fallback. Its errors become MLflow's message.
    from mlflow.pyfunc.scoring_server import _decode_json_input

    return _decode_json_input(body)


def read_json(served: "ServedModel", body: bytes) -> ScoringRequest:
    document = load_json(body)
    if not isinstance(document, dict):
        from mlflow.pyfunc.scoring_server import _decode_json_input

        _decode_json_input(body)  # raises MLflow's "Received a list." / "unexpected input type"
        raise AssertionError("unreachable")  # pragma: no cover
    if any(key in document for key in LLM_KEYS):
        schema = served.params_schema
        names = {p.name for p in schema.params} if schema is not None else set()
        data = {k: v for k, v in document.items() if k not in names}
        params = {k: v for k, v in document.items() if k in names}
        return ScoringRequest("llm", data, params)
    formats = {k: v for k, v in document.items() if k in SUPPORTED_FORMATS}
    return ScoringRequest("json", formats, document.get(PARAMS_KEY))

