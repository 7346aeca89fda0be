"""A model that fails to load at start-up makes ``mlserver start`` exit with status 1, not 0.

MLServer 1.7.1's ``MLServer.start`` catches a start-up load failure, logs it, calls ``self.stop()``
(without a signal: the only call of its kind) from its ``except`` block and returns normally: the
process exits 0. Kubernetes (and any supervisor) then sees a clean exit and counts no crash. Here that
call, recognised by having no signal while an exception is being handled, stops the server as usual and
then raises ``SystemExit(1)``, which ends ``mlserver start`` with status 1 once the servers are down.

``MLServer.stop`` is looked up when it is called, so this works even when our package is first imported
by the model load itself (no ``MlflowRegistryRepository`` in settings.json).
"""

from __future__ import annotations

import logging
import sys
from typing import Optional

from mlserver.server import MLServer

__all__ = ["EXIT_CODE", "apply"]

EXIT_CODE = 1

logger = logging.getLogger("mlserver")


def _wrap(stop):
    async def _stop(self: MLServer, sig: Optional[int] = None) -> None:
        failed_startup = (
            sig is None and sys.exc_info()[0] is not None and not getattr(self, "_sigaware_stopping", False)
        )
        await stop(self, sig)
        if failed_startup:
            logger.error("mlserver exits with status %d: a model failed to load at start-up (see above)", EXIT_CODE)
            raise SystemExit(EXIT_CODE)

    return _stop


def apply() -> None:
    if getattr(MLServer, "_sigaware_startup_failure", False):
        return
    MLServer._sigaware_startup_failure = True  # type: ignore[attr-defined]
    MLServer.stop = _wrap(MLServer.stop)  # type: ignore[method-assign]
