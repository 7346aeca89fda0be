"""A model that fails to load at start-up makes ``mlserver start`` exit with status 1, not 0.

MLServer 1.7.1's ``MLServer.start`` catches a start-up load failure, logs it, stops the servers and
returns normally: the process exits 0. Kubernetes (and any supervisor) then sees a clean exit, does not
count a crash, and an operator sees no failure. Here the start-up loads run as a task the server keeps
(:data:`STARTUP_TASK`), so that a SIGTERM during a long start-up (waiting for the registry) cancels
them instead of waiting for them (see :mod:`.graceful_shutdown`), and a failure ends the process with
:data:`EXIT_CODE`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import List

from mlserver.server import MLServer
from mlserver.settings import ModelSettings

__all__ = ["EXIT_CODE", "STARTUP_TASK", "apply"]

#: Attribute of the MLServer instance holding the start-up loads while they run.
STARTUP_TASK = "_sigaware_startup_loads"
EXIT_CODE = 1

logger = logging.getLogger("mlserver")


async def _start(self: MLServer, models_settings: List[ModelSettings] = []) -> None:  # noqa: B006
    servers = [self._rest_server.start(), self._grpc_server.start()]
    if self._metrics_server:
        servers.append(self._metrics_server.start())
    if self._kafka_server:
        servers.append(self._kafka_server.start())
    servers_task = asyncio.gather(*servers)

    loads = asyncio.ensure_future(
        asyncio.gather(*[self._model_registry.load(settings) for settings in models_settings])
    )
    setattr(self, STARTUP_TASK, loads)
    failed = False
    try:
        await loads
    except asyncio.CancelledError:
        if not loads.cancelled():  # we were cancelled ourselves, not the loads by a stop
            raise
        logger.info("Start-up model loads cancelled: the server is stopping.")
    except Exception:
        failed = True
        logger.exception("Some of the models failed to load during startup!")
        await self.stop()
    finally:
        setattr(self, STARTUP_TASK, None)
        await servers_task
    if failed:
        logger.error("mlserver exits with status %d: a model failed to load at start-up (see above)", EXIT_CODE)
        raise SystemExit(EXIT_CODE)


def apply() -> None:
    if getattr(MLServer.start, "_sigaware_patched", False):
        return
    _start._sigaware_patched = True  # type: ignore[attr-defined]
    MLServer.start = _start  # type: ignore[method-assign]
