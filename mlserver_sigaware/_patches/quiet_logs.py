"""A rejected request is one log line, not a traceback (gRPC, and MLServer's inference workers).

MLServer 1.7.1 logs every error it passes on with ``logger.exception``: its gRPC error decorator
(``mlserver.grpc``) for each refused gRPC call, and each inference worker (``mlserver.parallel``) for each
error raised in a worker, a client's 400 included: ~20 lines of ERROR traceback per bad request, which
buries real failures. Here:

* gRPC: each servicer method MLServer wraps with ``handle_mlserver_error`` gets our wrapper inside it
  (the decorator's closure cell is repointed: the server binds its handlers before our package is
  imported, so the class attribute cannot be replaced). A refused call (an ``MLServerError``) is logged
  as one line (:func:`~..logs.log_rejected`: status, ``gRPC <method>``, model, version, reason; a 5xx
  as one ERROR line), marked, and passed on; the decorator's own ``logger.exception`` for a marked error
  is dropped by a filter on ``mlserver.grpc``.
* Workers: a filter on ``mlserver.parallel`` drops the traceback of our own errors (their status says
  what happened; the server process logs the request's line, and a model's exception was already logged
  with its traceback, once, where the model raised).

Anything else (a bug, an exception that is not an ``MLServerError``) keeps MLServer's traceback.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, AsyncIterator, Callable

from ..errors import SigawareError
from ..logs import log_rejected

__all__ = ["apply"]

logger = logging.getLogger("mlserver.sigaware")

_DECORATED = {
    "handle_mlserver_error.<locals>._inner": False,
    "handle_mlserver_stream_error.<locals>._inner": True,
}
_MARK = "_sigaware_logged"
_VERSION_HEADERS = ("mlflow-model-version", "serve_multiplexed_model_id", "serve-multiplexed-model-id")


def _status(err: Any) -> int:
    return int(getattr(err, "status_code", 500) or 500)


def _requested(request: Any, context: Any) -> tuple[Any, Any]:
    model = getattr(request, "model_name", None) or getattr(request, "name", None)
    version = getattr(request, "model_version", None) or getattr(request, "version", None)
    if not version:
        try:
            metadata = dict(context.invocation_metadata() or ())
        except Exception:  # a context without metadata
            metadata = {}
        version = next((metadata[h] for h in _VERSION_HEADERS if metadata.get(h)), None)
    return model or None, version or None


def _log_refused(method: str, request: Any, context: Any, err: BaseException) -> None:
    model, version = _requested(request, context)
    status = _status(err)
    route = f"gRPC {method}"
    if status >= 500:
        logger.error("failed %d %s model=%s version=%s: %s", status, route, model or "-", version or "-",
                     " ".join(str(err).split())[:500])
    else:
        log_rejected(status, route, model, version, str(err))
    try:
        setattr(err, _MARK, True)
    except AttributeError:  # pragma: no cover - exceptions take attributes
        pass


def _logged(method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    from mlserver.errors import MLServerError

    async def logged(self: Any, request: Any, context: Any) -> Any:
        try:
            return await fn(self, request, context)
        except MLServerError as err:
            _log_refused(method, request, context, err)
            raise

    return logged


def _logged_stream(method: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    from mlserver.errors import MLServerError

    async def logged(self: Any, requests: Any, context: Any) -> AsyncIterator[Any]:
        try:
            async for response in fn(self, requests, context):
                yield response
        except MLServerError as err:
            _log_refused(method, None, context, err)
            raise

    return logged


def wrap_servicer(cls: type) -> list[str]:
    """Put our logging wrapper inside each of ``cls``'s MLServer-decorated methods; their names."""
    wrapped = []
    for name, fn in list(vars(cls).items()):
        stream = _DECORATED.get(getattr(fn, "__qualname__", ""))
        if stream is None or not fn.__closure__:
            continue
        cells = [c for c in fn.__closure__ if inspect.isfunction(c.cell_contents)]
        if len(cells) != 1 or getattr(cells[0].cell_contents, _MARK, False):
            continue
        inner = cells[0].cell_contents
        replacement = (_logged_stream if stream else _logged)(name, inner)
        setattr(replacement, _MARK, True)
        cells[0].cell_contents = replacement
        wrapped.append(name)
    return wrapped


class _DropLogged(logging.Filter):
    """Drops MLServer's traceback of an error that our wrapper has already logged as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and getattr(exc, _MARK, False))


class _DropOurWorkerErrors(logging.Filter):
    """Drops a worker's traceback of our own errors (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SigawareError)


def apply() -> None:
    from mlserver.grpc.model_repository import ModelRepositoryServicer
    from mlserver.grpc.servicers import InferenceServicer

    for cls in (InferenceServicer, ModelRepositoryServicer):
        wrap_servicer(cls)
    grpc_logger = logging.getLogger("mlserver.grpc")
    if not any(isinstance(f, _DropLogged) for f in grpc_logger.filters):
        grpc_logger.addFilter(_DropLogged())
    worker_logger = logging.getLogger("mlserver.parallel")
    if not any(isinstance(f, _DropOurWorkerErrors) for f in worker_logger.filters):
        worker_logger.addFilter(_DropOurWorkerErrors())
