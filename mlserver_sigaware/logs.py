"""Log lines an operator can read: one line per rejected request, JSON lines for log pipelines.

* :func:`log_rejected`: a request refused for the client's mistake (a 4xx) is one line naming the
  status, the route, the model, the version and the reason, at the level
  :attr:`~.settings.ServerSettings.rejected_log_level` says, never a traceback. A model failure is
  logged once, with its traceback, where it happens (:mod:`.model.predictor`).
* :class:`JsonFormatter`: with ``MLSERVER_SIGAWARE_LOG_FORMAT=json`` every line of the process is one
  JSON object (``time``, ``level``, ``logger``, ``message``, ``model``/``model_version`` when known,
  ``request_id`` for lines about a request, ``traceback`` when there is one).
* :data:`REQUEST_ID`: the id of the request being handled (the ``x-request-id`` header, else generated),
  set by the REST middleware for the lines logged while it is handled.
"""

from __future__ import annotations

import datetime as _dt
import logging
import uuid
from contextvars import ContextVar
from typing import Any, Optional

import orjson

from .settings import server_settings

__all__ = ["REQUEST_ID", "JsonFormatter", "RequestId", "current_request_id", "log_rejected", "rejection_line", "requests_logger"]

class RequestId:
    """A request's id for log lines: the client's ``x-request-id``, else a UUID made on first use (most
    requests log nothing, and a UUID per request would cost every request)."""

    __slots__ = ("_value",)

    def __init__(self, given: Optional[str] = None):
        self._value = given

    def __str__(self) -> str:
        if self._value is None:
            self._value = uuid.uuid4().hex
        return self._value


#: The id of the request whose handling is being logged (set by the REST middleware).
REQUEST_ID: ContextVar[Optional[RequestId]] = ContextVar("sigaware_request_id", default=None)


def current_request_id() -> Optional[str]:
    """The id of the request being handled in this context, if any."""
    value = REQUEST_ID.get()
    return None if value is None else str(value)

#: The logger of rejected-request lines (a child of MLServer's, so it shares its handler and format).
requests_logger = logging.getLogger("mlserver.sigaware.requests")

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}
#: A reason is the error message the client got; a log line stays a line.
_MAX_REASON = 500


def rejection_line(
    status: int, route: str, model: Optional[str], version: Optional[str], reason: str
) -> str:
    """``rejected 400 POST /v2/models/wine/infer model=wine version=3: input 'x': ...``"""
    reason = " ".join(str(reason).split())
    if len(reason) > _MAX_REASON:
        reason = reason[:_MAX_REASON] + "..."
    return f"rejected {status} {route} model={model or '-'} version={version or '-'}: {reason}"


def log_rejected(
    status: int,
    route: str,
    model: Optional[str],
    version: Optional[str],
    reason: str,
    request_id: Optional[str] = None,
) -> None:
    """One line for one rejected request, at the configured level (nothing when ``off``)."""
    level = _LEVELS.get(server_settings().rejected_log_level)
    if level is None or not requests_logger.isEnabledFor(level):
        return
    extra = {
        "status": status,
        "route": route,
        "rejected_model": model,
        "rejected_version": version,
        "request_id": request_id or current_request_id(),
    }
    requests_logger.log(level, rejection_line(status, route, model, version, reason), extra=extra)


def _model_context() -> tuple[str, str]:
    try:
        from mlserver.context import model_name_var, model_version_var
    except ImportError:  # pragma: no cover - mlserver is a dependency
        return "", ""
    return model_name_var.get(""), model_version_var.get("")


class JsonFormatter(logging.Formatter):
    """One JSON object per line (orjson: control characters and quotes in messages are escaped).

    MLServer's own ``use_structured_logging`` writes the message unescaped into a JSON template, so a
    message with a quote or a newline (any traceback) is not JSON; this formatter is what
    ``MLSERVER_SIGAWARE_LOG_FORMAT=json`` puts in its place.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        name, version = _model_context()
        name = getattr(record, "rejected_model", None) or name
        version = getattr(record, "rejected_version", None) or version
        if name:
            doc["model"] = name
        if version:
            doc["model_version"] = version
        for key in ("status", "route"):
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            doc["request_id"] = request_id
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["traceback"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str).decode("utf-8")
