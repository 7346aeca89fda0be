"""``MLSERVER_SIGAWARE_LOG_FORMAT=json``: MLServer's and uvicorn's log lines as real JSON objects.

MLServer 1.7.1's ``use_structured_logging`` pastes the message unescaped into a JSON template
(``"message": "%(message)s"``), so any message with a quote, a backslash or a newline (every traceback)
is not valid JSON, and lines carry no request id. With the setting on, the formatters MLServer and
uvicorn use (:class:`mlserver.logging.ModelLoggerFormatter`, uvicorn's ``DefaultFormatter`` and
``AccessFormatter``) format through :class:`~..logs.JsonFormatter` instead: the class methods are
replaced, so handlers created before or after our import (MLServer's, the workers', uvicorn's) all
write JSON.
"""

from __future__ import annotations

import logging

from ..logs import JsonFormatter
from ..settings import server_settings

__all__ = ["apply", "enable"]

_JSON = JsonFormatter()


def _json_format(self: logging.Formatter, record: logging.LogRecord) -> str:
    return _JSON.format(record)


def enable() -> None:
    """Make MLServer's and uvicorn's formatters write JSON (whatever the setting says)."""
    from mlserver.logging import ModelLoggerFormatter

    classes: list[type] = [ModelLoggerFormatter]
    try:
        from uvicorn.logging import AccessFormatter, DefaultFormatter

        classes += [DefaultFormatter, AccessFormatter]
    except ImportError:  # pragma: no cover - uvicorn is MLServer's dependency
        pass
    for cls in classes:
        cls.format = _json_format  # type: ignore[method-assign]


def apply() -> None:
    if server_settings().log_format == "json":
        enable()
