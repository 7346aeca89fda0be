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

Start-up loads still running (a start-up waiting for the registry) are cancelled first
(:mod:`.startup_failure`), so SIGTERM during a long start-up stops the server at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from mlserver.rest.server import RESTServer
from mlserver.server import MLServer

from .startup_failure import STARTUP_TASK

__all__ = ["apply"]

logger = logging.getLogger("mlserver")

_DONE = "_sigaware_serving_done"


async def _rest_start(self: RESTServer) -> None:
    done = asyncio.Event()
    setattr(self, _DONE, done)
    try:
        await _original_rest_start(self)
    finally:
        done.set()


async def _stop(self: MLServer, sig: Optional[int] = None) -> None:
    if getattr(self, "_sigaware_stopping", False):
        return  # a second signal: the first stop is under way
    self._sigaware_stopping = True  # type: ignore[attr-defined]
    startup = getattr(self, STARTUP_TASK, None)
    if startup is not None and not startup.done():
        startup.cancel()

    stops = []
    if self._rest_server:
        stops.append(self._rest_server.stop(sig))
    if self._grpc_server:
        stops.append(self._grpc_server.stop(sig))
    await asyncio.gather(*stops)
    done = getattr(self._rest_server, _DONE, None) if self._rest_server else None
    if done is not None:
        await done.wait()  # in-flight REST requests answered (they still need the workers)
    logger.info("HTTP and gRPC servers stopped; closing the inference workers")

    if self._inference_pool_registry:
        await self._inference_pool_registry.close()
    if self._kafka_server:
        await self._kafka_server.stop()
    if self._metrics_server:
        await self._metrics_server.stop(sig)


_original_rest_start = RESTServer.start


def apply() -> None:
    if getattr(MLServer.stop, "_sigaware_patched", False):
        return
    _stop._sigaware_patched = True  # type: ignore[attr-defined]
    MLServer.stop = _stop  # type: ignore[method-assign]
    RESTServer.start = _rest_start  # type: ignore[method-assign]
