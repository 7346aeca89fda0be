"""Errors that carry their HTTP status, so every layer (REST, gRPC, worker processes) maps them the same.

MLServer turns any :class:`mlserver.errors.MLServerError` into a JSON ``{"error": ...}`` body with the
error's ``status_code`` on REST, and into a gRPC status on gRPC. Anything else becomes a bare 500 (with a
traceback when ``debug`` is on), so the runtime converts every failure into one of these classes.
"""

from __future__ import annotations

from fastapi import status
from mlserver.errors import MLServerError


class SigawareError(MLServerError):
    """Base class. Pickles with its status code: errors raised in a worker process cross a pipe."""

    default_status: int = status.HTTP_500_INTERNAL_SERVER_ERROR

    def __init__(self, msg: str, status_code: int | None = None):
        super().__init__(msg, status_code if status_code is not None else self.default_status)

    def __reduce__(self):  # pragma: no cover - exercised through pickle in tests
        return (self.__class__, (str(self), self.status_code))


class InvalidInput(SigawareError):
    """A request input does not match the signature: missing, unknown, wrong type or wrong shape."""

    default_status = status.HTTP_400_BAD_REQUEST


class InvalidParams(SigawareError):
    """A request param is unknown or does not match the params schema."""

    default_status = status.HTTP_400_BAD_REQUEST


class ModelLoadError(SigawareError):
    """The model (or its registry entry) could not be resolved or loaded."""

    default_status = status.HTTP_500_INTERNAL_SERVER_ERROR


class RegistryNotFound(SigawareError):
    """A registered model, version or alias does not exist."""

    default_status = status.HTTP_404_NOT_FOUND


class ModelFailure(SigawareError):
    """The model itself raised: a 500 with the model's own message, never a traceback."""

    default_status = status.HTTP_500_INTERNAL_SERVER_ERROR


class OutputEncodingError(SigawareError):
    """The model returned something that cannot be encoded as its output signature promises."""

    default_status = status.HTTP_500_INTERNAL_SERVER_ERROR


class VersionConflict(SigawareError):
    """A registry version whose signature is incompatible with the default version's."""

    default_status = status.HTTP_409_CONFLICT


class VersionNotAllowed(SigawareError):
    """A version or alias outside ``allowed_versions`` / ``allowed_aliases``."""

    default_status = status.HTTP_403_FORBIDDEN


class RegistryUnavailable(SigawareError):
    """The model registry (or its artifact store) did not answer within the retry budget.

    A 503: the request may succeed later, and versions already loaded keep serving. Over gRPC it is
    ``UNAVAILABLE`` (see :mod:`mlserver_sigaware._patches.grpc_unavailable`).
    """

    default_status = status.HTTP_503_SERVICE_UNAVAILABLE
