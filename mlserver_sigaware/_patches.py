"""Fixes for MLServer 1.7.1 bugs that users hit through this runtime, applied on import.

MLServer has had no release since 1.7.1, so we fix what we need here, each with a test
(tests/test_patches.py) that fails without the fix:

* ``WorkerError`` (how an exception raised in an inference worker travels back to the server process)
  does not survive pickling with its status: it is rebuilt as ``WorkerError(message)``, whose status is
  always 500. Every 400/404 raised in a worker (the default ``parallel_workers: 1``) became a 500.
* A V2 body that fails validation (unknown ``datatype``, missing ``shape``) is FastAPI's bare 422; we
  answer 400 naming the field, like every other bad input.
* It also prefixes our messages with the exception's import path
  (``mlserver_sigaware.errors.InvalidInput: ...``): for our own errors the message is already meant
  for the client, so it is kept as is.
"""

from __future__ import annotations

from mlserver.errors import MLServerError
from mlserver.parallel import errors as _parallel_errors

_WorkerError = _parallel_errors.WorkerError


def _rebuild_worker_error(message: str, status_code: int) -> MLServerError:
    err = _WorkerError.__new__(_WorkerError)
    MLServerError.__init__(err, message, status_code)
    return err


def _worker_error_reduce(self):
    return (_rebuild_worker_error, (str(self), self.status_code))


_original_init = _WorkerError.__init__


def _worker_error_init(self, exc: BaseException):
    from .errors import SigawareError

    if isinstance(exc, SigawareError):
        MLServerError.__init__(self, str(exc), exc.status_code)
        return
    _original_init(self, exc)


def apply() -> None:
    if getattr(_WorkerError, "_sigaware_patched", False):
        return
    _WorkerError.__reduce__ = _worker_error_reduce  # type: ignore[method-assign]
    _WorkerError.__init__ = _worker_error_init  # type: ignore[method-assign]
    _WorkerError._sigaware_patched = True  # type: ignore[attr-defined]
    apply_rest()


def _format_validation_error(exc) -> str:
    """``inputs[0].datatype: Input should be ...`` for each failing field of a V2 body."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        path = "body" if loc and loc[0].isdigit() else ""
        for p in loc:
            path += f"[{p}]" if p.isdigit() else (f".{p}" if path else p)
        parts.append(f"{path or 'body'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request body"


async def _validation_error_handler(request, exc):
    from mlserver.rest.errors import APIErrorResponse
    from mlserver.rest.responses import Response

    body = APIErrorResponse(error=_format_validation_error(exc))
    return Response(status_code=400, content=body.model_dump())


def apply_rest() -> None:
    """A malformed V2 body (e.g. an unknown ``datatype``) is a 400 naming the field, not FastAPI's 422.

    MLServer builds its FastAPI app from the module-level ``_EXCEPTION_HANDLERS`` dict, so adding to it
    takes effect for apps created afterwards: our package must be imported before the server starts,
    which naming ``mlserver_sigaware.MlflowRegistryRepository`` in settings.json guarantees.
    """
    from fastapi.exceptions import RequestValidationError
    from mlserver.rest import errors as rest_errors

    rest_errors._EXCEPTION_HANDLERS.setdefault(RequestValidationError, _validation_error_handler)
