"""SIGTERM lets in-flight requests finish before the inference workers go.

MLServer 1.7.1's ``MLServer.stop`` closes the inference pool *first* (``parallel_workers`` >= 1, the
default), then the gRPC and REST servers: a request in flight when SIGTERM arrives loses the worker that
computes it and fails, and the REST server keeps accepting connections during the gRPC grace period.
Here the order is the one a rolling update needs:

1. stop accepting on REST and gRPC at once; uvicorn answers the requests it has (and closes idle
   keep-alive connections), gRPC gets its usual 5 s grace;
2. wait until the REST server has finished them (uvicorn's own shutdown, bounded by its
   ``timeout_graceful_shutdown``, unset by default: Kubernetes' ``terminationGracePeriodSeconds`` is
   the bound);
3. then close the inference pool, Kafka and the metrics server.

:data:`SHUTTING_DOWN` is set first: a start-up that waits for the registry gives up at once
(:meth:`mlserver_sigaware.versions.manager.VersionManager.start`), so SIGTERM during a long start-up
stops the server promptly.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Optional

from mlserver.rest.server import RESTServer
from mlserver.server import MLServer

__all__ = ["SHUTTING_DOWN", "apply"]

#: Set when the server starts stopping (in the server process).
SHUTTING_DOWN = threading.Event()

logger = logging.getLogger("mlserver")


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
        return  # a second signal: the first stop is under way
    self._sigaware_stopping = True  # type: ignore[attr-defined]
    SHUTTING_DOWN.set()

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
    MLServer.stop = _stop  # type: ignore[method-assign]
