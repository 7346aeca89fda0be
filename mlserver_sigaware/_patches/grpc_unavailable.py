"""A 503 (the model registry is unreachable) is gRPC ``UNAVAILABLE``, not ``UNKNOWN``.

MLServer 1.7.1 maps only 400, 404, 422 and 500 to gRPC status codes; every other status becomes
``UNKNOWN``. ``UNAVAILABLE`` is the code gRPC clients and retry policies treat as "try again later",
which is what a registry outage means for a version that is not loaded yet.
"""

from __future__ import annotations

import grpc
from mlserver.grpc import utils as _grpc_utils

__all__ = ["apply"]


def apply() -> None:
    _grpc_utils.STATUS_CODE_MAPPING.setdefault(503, grpc.StatusCode.UNAVAILABLE)
