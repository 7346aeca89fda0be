"""Fixes for MLServer 1.7.1 bugs that users hit through this runtime, applied on import.

MLServer has had no release since 1.7.1 (June 2025), so we fix what we need on our side, one module per
fix, each with a test (``tests/test_patches.py``, ``tests/integration/test_hostile_input.py``) that fails
without it:

* :mod:`.worker_errors`: errors raised in an inference worker keep their status (every 400/404 raised
  with ``parallel_workers`` >= 1 was a 500) and our messages lose the ``module.Class:`` prefix;
* :mod:`.validation_errors`: a V2 body that fails validation (or is not JSON) is a 400 naming the field,
  not FastAPI's bare 422;
* :mod:`.rest_app`: our REST middleware and exception handlers reach MLServer's app even when this
  package is imported after the app was built (a plain ``mlserver start``);
* :mod:`.request_limits`: request bodies are bounded (size, decompressed size, JSON depth), bad
  ``Content-Encoding`` is a 4xx, no exception reaches Starlette's traceback page, one log line per
  refused request;
* :mod:`.v2_infer`: our models' V2 REST ``infer`` routes read Triton's binary tensor extension (what
  ``tritonclient.http`` sends by default; MLServer answered ``400 JSON decode error``) and parse large
  JSON bodies into arrays without a Python object per value (:mod:`.binary_tensors`, :mod:`.v2_json`);
* :mod:`.request_ids`: a V2 request ``id`` no response header can carry is a 400, not a broken response;
* :mod:`.grpc_raw_contents`: gRPC ``raw_input_contents`` that do not fit their inputs are
  ``INVALID_ARGUMENT``, not ``INTERNAL``;
* :mod:`.grpc_raw_arrays`: gRPC ``raw_input_contents`` (what ``tritonclient.grpc`` sends) reach our models
  as arrays, not as lists of Python numbers pickled to the workers;
* :mod:`.quiet_logs`: a refused gRPC call or worker call is one log line, not a traceback;
* :mod:`.json_logs`: ``MLSERVER_SIGAWARE_LOG_FORMAT=json`` makes MLServer's log lines valid JSON;
* :mod:`.graceful_shutdown`: SIGTERM lets in-flight requests finish before the inference workers stop;
* :mod:`.startup_failure`: a model that fails to load at start-up makes the server exit 1, not 0;
* :mod:`.parallel_metadata`: metadata of a model whose default version moves is not cached forever in
  the server process (``parallel_workers`` >= 1);
* :mod:`.grpc_unavailable`: a 503 is gRPC ``UNAVAILABLE``, not ``UNKNOWN``.

Each fix is guarded by the MLServer version it was written for (:data:`FIXED_FOR`): on another
version the fixes are not applied and a warning says so, rather than patching code that may have changed.
"""

from __future__ import annotations

import logging

from . import (
    graceful_shutdown,
    grpc_raw_arrays,
    grpc_raw_contents,
    grpc_unavailable,
    json_logs,
    parallel_metadata,
    quiet_logs,
    request_ids,
    rest_app,
    startup_failure,
    v2_infer,
    validation_errors,
    worker_errors,
)

__all__ = ["FIXED_FOR", "FIXES", "apply", "applies_to_installed_mlserver"]

#: The MLServer release these fixes were written and tested against.
FIXED_FOR = "1.7.1"

#: Every fix, in the order :func:`apply` applies them.
FIXES = (
    worker_errors,
    validation_errors,
    rest_app,
    v2_infer,
    request_ids,
    grpc_raw_contents,
    grpc_raw_arrays,
    quiet_logs,
    json_logs,
    graceful_shutdown,
    startup_failure,  # wraps the MLServer.stop that graceful_shutdown installs
    parallel_metadata,
    grpc_unavailable,
)

logger = logging.getLogger("mlserver.sigaware")


def applies_to_installed_mlserver() -> bool:
    from mlserver import __version__

    return __version__ == FIXED_FOR


def apply() -> None:
    if not applies_to_installed_mlserver():
        from mlserver import __version__

        logger.warning(
            "mlserver %s is installed; mlserver-sigaware's fixes were written for %s and are not applied",
            __version__,
            FIXED_FOR,
        )
        return
    for fix in FIXES:
        fix.apply()
