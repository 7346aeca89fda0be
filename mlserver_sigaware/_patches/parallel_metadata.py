"""Model metadata asked of an inference worker is not cached forever for models whose metadata changes.

With ``parallel_workers`` >= 1 (MLServer's default is 1), MLServer 1.7.1's ``ParallelModel`` (the
server process's stand-in for a model loaded in the workers) caches the first metadata answer for the
life of the process. Our default version moves (alias hot-swap, a stage transition), so after a swap
``GET /v2/models/<name>`` kept reporting the old version and run id. A model class that sets
``dynamic_metadata = True`` (:class:`mlserver_sigaware.SignatureAwareRuntime` does) now has its metadata
asked of a worker every time; any other model keeps MLServer's cache.
"""

from __future__ import annotations

from mlserver.parallel.model import ParallelModel

__all__ = ["apply"]

_original_metadata = ParallelModel.metadata


async def _metadata(self: ParallelModel):
    if getattr(self._model, "dynamic_metadata", False):
        self._metadata = None
    return await _original_metadata(self)


def apply() -> None:
    if getattr(ParallelModel.metadata, "_sigaware_patched", False):
        return
    _metadata._sigaware_patched = True  # type: ignore[attr-defined]
    ParallelModel.metadata = _metadata  # type: ignore[method-assign]
