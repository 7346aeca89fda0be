"""Is a registry reachable? One warning when an outage starts, one line when it ends, and metrics.

Every registry call reports here (:meth:`RegistryHealth.failed` / :meth:`RegistryHealth.succeeded`), so
an outage seen by the alias poller, by a request for a version not loaded yet and by the start-up wait
is one outage: logged once, counted once (``sigaware_registry_outages_total``), with
``sigaware_registry_up`` at 0 until a call gets through again. State is per process (each inference
worker reports its own).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from .. import metrics
from .registry_http import display_uri

__all__ = ["RegistryHealth", "health_of"]

logger = logging.getLogger("mlserver.sigaware")


class RegistryHealth:
    def __init__(self, uri: str):
        self.uri = display_uri(uri)
        self.down_since: Optional[float] = None
        self.reason: Optional[str] = None
        self._lock = threading.Lock()

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def failed(self, reason: str) -> None:
        with self._lock:
            metrics.registry_unavailable().labels(self.uri).inc()
            if self.down_since is not None:
                return
            self.down_since = time.monotonic()
            self.reason = reason
        metrics.registry_outages().labels(self.uri).inc()
        metrics.registry_up().labels(self.uri).set(0)
        logger.warning(
            "model registry %s is unreachable (%s): requests that need it answer 503 until it is back; "
            "loaded versions keep serving",
            self.uri,
            reason,
        )

    def succeeded(self) -> None:
        if self.down_since is None:  # the common case: no lock, no metric write
            return
        with self._lock:
            if self.down_since is None:
                return
            took = time.monotonic() - self.down_since
            self.down_since = None
            self.reason = None
        metrics.registry_up().labels(self.uri).set(1)
        logger.info("model registry %s is reachable again (unreachable for %.1f s)", self.uri, took)


_HEALTH: dict[str, RegistryHealth] = {}
_HEALTH_LOCK = threading.Lock()


def health_of(uri: str) -> RegistryHealth:
    with _HEALTH_LOCK:
        health = _HEALTH.get(uri)
        if health is None:
            health = _HEALTH[uri] = RegistryHealth(uri)
        return health
