"""Fixes for MLServer 1.7.1 bugs that users hit through this runtime, applied on import.

MLServer has had no release since 1.7.1 (June 2025), so we fix what we need on our side, one module per
fix, each with a test (``tests/test_patches.py``) that fails without it:

* :mod:`.worker_errors`: errors raised in an inference worker keep their status (every 400/404 raised
  with ``parallel_workers`` >= 1 was a 500) and our messages lose the ``module.Class:`` prefix;
* :mod:`.validation_errors`: a V2 body that fails validation is a 400 naming the field, not FastAPI's
  bare 422;
* :mod:`.startup_failure`: a model that fails to load at start-up makes the server exit 1, not 0;
* :mod:`.graceful_shutdown`: SIGTERM lets in-flight requests finish before the inference workers stop;
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
    grpc_unavailable,
    parallel_metadata,
    startup_failure,
    validation_errors,
    worker_errors,
)

__all__ = ["FIXED_FOR", "apply", "applies_to_installed_mlserver"]

#: The MLServer release these fixes were written and tested against.
FIXED_FOR = "1.7.1"

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
    worker_errors.apply()
    validation_errors.apply()
    graceful_shutdown.apply()
    startup_failure.apply()  # wraps the stop graceful_shutdown installs
    parallel_metadata.apply()
    grpc_unavailable.apply()
