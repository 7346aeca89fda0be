"""SIGTERM lets in-flight requests finish before the inference workers go.

MLServer 1.7.1's ``MLServer.stop`` closes the inference pool *first* (``parallel_workers`` >= 1, the
default), then the gRPC and REST servers: a request in flight when SIGTERM arrives loses the worker that
computes it and fails (or never returns). Here the order is the one a rolling update needs:

1. stop accepting on REST and gRPC at once; uvicorn answers the requests it has (and closes idle
   keep-alive connections), gRPC gets its usual 5 s grace;
2. wait until the REST server has answered them (uvicorn's own shutdown, with no time limit of its own:
   Kubernetes' ``terminationGracePeriodSeconds`` is the bound);
3. then close the inference pool, Kafka and the metrics server.

Because the servers now end before the stop does, ``MLServer.start`` (which returns once its servers
have ended, after which ``asyncio.run`` cancels every other task) is wrapped to wait for the stop to
finish. That wrapper must be in place before ``mlserver start`` calls ``MLServer.start``, i.e. this
package must be imported before the server starts: naming ``mlserver_sigaware.MlflowRegistryRepository``
in settings.json does that. If the package is first imported by a model load (the server already
running), MLServer's own stop order is kept, with a warning, rather than leave the workers running.

:data:`SHUTTING_DOWN` is set first: a start-up that waits for the registry gives up at once
(:meth:`mlserver_sigaware.versions.manager.VersionManager.start`), so SIGTERM during a long start-up
stops the server promptly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import List, Optional

from mlserver.rest.server import RESTServer
from mlserver.server import MLServer
from mlserver.settings import ModelSettings

__all__ = ["SHUTTING_DOWN", "apply"]

#: Set when the server starts stopping (in the server process).
SHUTTING_DOWN = threading.Event()

logger = logging.getLogger("mlserver")

_original_start = MLServer.start
_original_stop = MLServer.stop
_STARTED_WRAPPED = "_sigaware_start_waits_for_stop"
_STOP_TASK = "_sigaware_stop_task"


async def _start(self: MLServer, models_settings: List[ModelSettings] = []) -> None:  # noqa: B006
    setattr(self, _STARTED_WRAPPED, True)
    try:
        await _original_start(self, models_settings)
    finally:
        stop_task = getattr(self, _STOP_TASK, None)
        if stop_task is not None and stop_task is not asyncio.current_task():
            await stop_task  # the workers are closed last: do not let asyncio.run cancel that


async def _rest_drained(rest: RESTServer) -> None:
    """Until uvicorn has answered every request it had (its idle connections are closed at once)."""
    server = getattr(rest, "_server", None)
    if server is None:
        return
    await asyncio.sleep(0.2)  # uvicorn's main loop notices the exit flag and stops listening
    state = server.server_state
    while state.connections or state.tasks:
        await asyncio.sleep(0.05)


async def _stop(self: MLServer, sig: Optional[int] = None) -> None:
    if getattr(self, "_sigaware_stopping", False):
        return  # a second signal (uvicorn re-raises the one it captured): the first stop is under way
    self._sigaware_stopping = True  # type: ignore[attr-defined]
    SHUTTING_DOWN.set()
    if not getattr(self, _STARTED_WRAPPED, False):
        logger.warning(
            "mlserver_sigaware was imported after the server started: SIGTERM keeps MLServer's order "
            "(inference workers first). Name mlserver_sigaware.MlflowRegistryRepository as "
            "model_repository_implementation in settings.json for a graceful shutdown."
        )
        await _original_stop(self, sig)
        return
    setattr(self, _STOP_TASK, asyncio.current_task())

    stops = []
    if self._rest_server:
        stops.append(self._rest_server.stop(sig))
    if self._grpc_server:
        stops.append(self._grpc_server.stop(sig))
    await asyncio.gather(*stops)
    if self._rest_server:
        await _rest_drained(self._rest_server)  # in-flight REST requests still need the workers
    logger.info("HTTP and gRPC servers stopped; closing the inference workers")

    if self._inference_pool_registry:
        await self._inference_pool_registry.close()
    if self._kafka_server:
        await self._kafka_server.stop()
    if self._metrics_server:
        await self._metrics_server.stop(sig)


def apply() -> None:
    if getattr(MLServer, "_sigaware_graceful_shutdown", False):
        return
    MLServer._sigaware_graceful_shutdown = True  # type: ignore[attr-defined]
    MLServer.start = _start  # type: ignore[method-assign]
    MLServer.stop = _stop  # type: ignore[method-assign]
