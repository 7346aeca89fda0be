"""Errors raised in an inference worker keep their status (and our messages keep their wording).

MLServer 1.7.1's ``WorkerError`` (how an exception raised in an inference worker travels back to the
server process) does not survive pickling with its status: it is rebuilt as ``WorkerError(message)``,
whose status is always 500, so every 400/404 raised in a worker (the default ``parallel_workers: 1``)
became a 500. It also prefixes our messages with the exception's import path
(``mlserver_sigaware.errors.InvalidInput: ...``): for our own errors the message is already meant for
the client, so it is kept as is.
"""

from __future__ import annotations

from mlserver.errors import MLServerError
from mlserver.parallel import errors as _parallel_errors

from ..errors import SigawareError

__all__ = ["apply"]

_WorkerError = _parallel_errors.WorkerError
_original_init = _WorkerError.__init__


def _rebuild_worker_error(message: str, status_code: int) -> MLServerError:
    err = _WorkerError.__new__(_WorkerError)
    MLServerError.__init__(err, message, status_code)
    return err


def _worker_error_reduce(self):
    return (_rebuild_worker_error, (str(self), self.status_code))


def _worker_error_init(self, exc: BaseException):
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
