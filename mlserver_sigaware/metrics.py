"""Prometheus metrics of the version cache, on MLServer's metrics endpoint (``:8082/metrics``).

Created lazily: MLServer switches prometheus_client to its multi-process value class at start-up
(``parallel_workers`` >= 1), and metrics created before that would be invisible to the collector.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_metrics: dict[str, Any] = {}


def _get(kind: str, name: str, doc: str, labels: tuple[str, ...], **kw: Any) -> Any:
    with _lock:
        metric = _metrics.get(name)
        if metric is None:
            import prometheus_client

            cls = getattr(prometheus_client, kind)
            metric = cls(name, doc, labels, **kw)
            _metrics[name] = metric
        return metric


def loads() -> Any:
    return _get("Counter", "sigaware_version_loads", "Registry versions loaded", ("model", "version"))


def evictions() -> Any:
    return _get("Counter", "sigaware_version_evictions", "Versions evicted from the LRU cache", ("model", "version"))


def refusals() -> Any:
    return _get(
        "Counter", "sigaware_version_refusals", "Versions refused by the compatibility guard", ("model", "version")
    )


def alias_swaps() -> Any:
    return _get("Counter", "sigaware_alias_swaps", "Default version changes through an alias", ("model", "alias"))


def requests() -> Any:
    return _get("Counter", "sigaware_version_requests", "Requests served per version", ("model", "version"))


def loaded_versions() -> Any:
    return _get(
        "Gauge", "sigaware_loaded_versions", "Versions loaded (summed over worker processes)", ("model",),
        multiprocess_mode="livesum",
    )


def registry_outages() -> Any:
    return _get("Counter", "sigaware_registry_outages", "Times the model registry became unreachable", ("registry",))


def registry_unavailable() -> Any:
    return _get(
        "Counter", "sigaware_registry_unavailable",
        "Registry operations that gave up on an unreachable registry (each one a 503 or a retry)", ("registry",),
    )


def registry_up() -> Any:
    return _get(
        "Gauge", "sigaware_registry_up", "1 when the last registry call got through, 0 during an outage",
        ("registry",), multiprocess_mode="livemin",
    )
