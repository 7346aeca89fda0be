"""Many registry versions of one model behind one endpoint: selection, LRU cache, guard, alias hot-swap.

One :class:`VersionManager` per (registry, registered model) per process, shared by every MLServer model
instance of that name (the default instance and the per-version instances that
:class:`~mlserver_sigaware.versions.repository.MlflowRegistryRepository` lists). Managers live in this
module's :data:`_MANAGERS`, not on a runtime instance, because a reload builds the new instance before
the old one is unloaded and both must see the same loaded versions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Callable, Optional

from .. import metrics
from .._patches.graceful_shutdown import SHUTTING_DOWN
from ..errors import (
    ModelLoadError,
    RegistryNotFound,
    RegistryUnavailable,
    SigawareError,
    VersionConflict,
    VersionNotAllowed,
)
from ..model.location import ModelRef, ResolvedModel, validate_alias, validate_version
from ..model.registry import RegistryClient
from ..model.served import ServedModel
from ..settings import SigawareSettings
from ..signature import signature_diff

logger = logging.getLogger("mlserver.sigaware")

Loader = Callable[[ResolvedModel], ServedModel]


class VersionManager:
    """All loaded versions of one registered model in this process."""

    def __init__(self, name: str, client: RegistryClient, ref: ModelRef, cfg: SigawareSettings,
                 loader: Optional[Loader] = None):
        self.name = name  # registered model name (or the served name for non-registry models)
        self.client = client
        self.ref = ref
        self.cfg = cfg
        self._loader: Loader = loader or (lambda resolved: ServedModel.load(client, resolved, cfg))
        self.default: Optional[ServedModel] = None
        self._loaded: "OrderedDict[str, ServedModel]" = OrderedDict()
        self._loading: dict[str, asyncio.Future] = {}
        self._refused: dict[str, str] = {}
        # alias/stage targets that failed to load or were refused: (error class, message), re-raised fresh
        # (a stored exception would keep its traceback's frames, and the refused model, alive)
        self._rejected_targets: dict[str, tuple[type[SigawareError], str]] = {}
        self._last_warning: Optional[str] = None
        self._aliases: dict[str, tuple[str, float]] = {}
        self._start_lock: Optional[asyncio.Lock] = None
        self._swap_lock: Optional[asyncio.Lock] = None
        self._watch_task: Optional[asyncio.Task] = None
        self.users = 0

    @property
    def is_registry(self) -> bool:
        return self.ref.kind == "registry"

    @property
    def default_alias(self) -> Optional[str]:
        return self.ref.alias if self.is_registry else None

    @property
    def default_stage(self) -> Optional[str]:
        return self.ref.stage if self.is_registry else None

    @property
    def pinned_version(self) -> Optional[str]:
        """The version of a deployment pinned to one (``models:/name/3``)."""
        return self.ref.version if self.is_registry else None

    @property
    def _target(self) -> str:
        """What the default follows, in log lines and errors."""
        if self.default_alias:
            return f"alias '{self.default_alias}'"
        if self.default_stage:
            return f"stage '{self.default_stage}'"
        return "the latest version"

    # -- start-up ---------------------------------------------------------------------------------

    async def start(self, wait_for_registry: bool = False) -> ServedModel:
        """Resolve and load the default version, once per process.

        ``wait_for_registry`` (the server's start-up): an unreachable registry is waited for, with a log
        line saying what for, up to ``startup_registry_wait_seconds``; then a clear error, which makes
        the server exit non-zero (:mod:`mlserver_sigaware._patches.startup_failure`).
        """
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self.default is None:
                if wait_for_registry:
                    served = await self._load_default_waiting()
                else:
                    served = await self._load_default()
                self.default = served
                if served.version:
                    self._loaded[served.version] = served
                    metrics.loads().labels(self.name, served.version).inc()
                self._report_loaded()
                self._start_watch()
            return self.default

    async def _load_default(self) -> ServedModel:
        resolved = await asyncio.to_thread(self.client.resolve, self.ref)
        return await asyncio.to_thread(self._loader, resolved)

    async def _load_default_waiting(self) -> ServedModel:
        budget = self.cfg.startup_registry_wait_seconds
        started = time.monotonic()
        pause = max(self.cfg.registry_backoff_seconds, 0.5)
        next_note = started
        while True:
            try:
                served = await self._load_default()
            except RegistryUnavailable as exc:
                waited = time.monotonic() - started
                left = budget - waited
                if left <= 0:
                    raise ModelLoadError(
                        f"gave up waiting for the model registry after {waited:.0f} s "
                        f"(startup_registry_wait_seconds={budget:g}) to load {self.ref.describe}: {exc}"
                    ) from None
                if time.monotonic() >= next_note:  # at once, then every 30 s
                    logger.warning(
                        "waiting for the model registry to load %s (%s); retrying for up to %.0f s more "
                        "(startup_registry_wait_seconds=%g); liveness answers, readiness not until loaded",
                        self.ref.describe, exc, left, budget,
                    )
                    next_note = time.monotonic() + 30
                if await _stopping_within(min(pause, max(left, 0.01))):
                    raise ModelLoadError(f"the server is stopping: gave up waiting to load {self.ref.describe}")
                pause = min(pause * 2, 5.0)
                continue
            if time.monotonic() - started > 1 and next_note > started:
                logger.info("the model registry answered: %s loaded after %.0f s of waiting",
                            self.ref.describe, time.monotonic() - started)
            return served

    def _start_watch(self) -> None:
        follows = self.default_alias or self.default_stage
        if follows and self.cfg.alias_poll_seconds > 0 and self._watch_task is None:
            self._watch_task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.alias_poll_seconds)
            try:
                await self.refresh_default()
            except RegistryUnavailable:
                pass  # logged once per outage by the registry's health; the next poll tries again
            except SigawareError as exc:
                message = str(exc)
                if message != self._last_warning:  # once per problem, not once per poll
                    self._last_warning = message
                    logger.warning("%s of %s: keeping version %s: %s", self._target, self.name,
                                   self.default.version if self.default else None, message)
            except Exception:  # never let the watcher die
                logger.exception("%s of %s: refresh failed", self._target, self.name)

    def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            self._watch_task = None

    # -- selection --------------------------------------------------------------------------------

    async def get(self, selector: Optional[str]) -> ServedModel:
        """The version a request selected (``None``: the default)."""
        default = self.default if self.default is not None else await self.start()
        if selector is None:
            return default
        if not self.is_registry:
            raise RegistryNotFound(
                f"model '{self.name}' is not served from the model registry: it has no versions to select"
            )
        if selector.startswith("@"):
            alias = validate_alias(selector[1:])
            self._check_alias_allowed(alias)
            if alias == self.default_alias:
                return default
            version = await self._resolve_alias(alias)
            self._check_version_allowed(version, via_alias=True)
        else:
            version = validate_version(selector)
            self._check_version_allowed(version, via_alias=False)
        if version == default.version:
            return default
        return await self._get_version(version)

    def _check_version_allowed(self, version: str, via_alias: bool) -> None:
        allowed = self.cfg.allowed_versions
        if allowed is not None:
            if version not in {str(v) for v in allowed}:
                raise VersionNotAllowed(
                    f"version {version} of '{self.name}' is not allowed here; allowed: {allowed}"
                )
            return
        pinned = self.pinned_version
        if pinned is None or version == pinned:
            return
        if via_alias and self.cfg.allowed_aliases is not None:
            return  # the operator opened these aliases on purpose
        raise VersionNotAllowed(
            f"this deployment is pinned to version {pinned} of '{self.name}' ({self.ref.describe}); "
            f"version {version} is not served here (set allowed_versions to let requests select others)"
        )

    def _check_alias_allowed(self, alias: str) -> None:
        allowed = self.cfg.allowed_aliases
        if allowed is not None and alias not in allowed:
            raise VersionNotAllowed(f"alias '{alias}' of '{self.name}' is not allowed here; allowed: {allowed}")

    async def _resolve_alias(self, alias: str) -> str:
        cached = self._aliases.get(alias)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        ref = ModelRef("registry", f"models:/{self.name}@{alias}", name=self.name, alias=alias)
        try:
            resolved = await asyncio.to_thread(self.client.resolve, ref)
        except RegistryUnavailable:
            if cached:  # the registry is down: the last known target beats a 503
                return cached[0]
            raise
        assert resolved.version is not None
        self._aliases[alias] = (resolved.version, now + max(self.cfg.alias_poll_seconds, 1.0))
        return resolved.version

    async def _get_version(self, version: str) -> ServedModel:
        refused = self._refused.get(version)
        if refused is not None:
            raise VersionConflict(refused)
        served = self._loaded.get(version)
        if served is not None:
            self._loaded.move_to_end(version)
            return served
        pending = self._loading.get(version)
        if pending is None:
            pending = asyncio.get_running_loop().create_task(self._load(version))
            self._loading[version] = pending
            pending.add_done_callback(lambda _t, v=version: self._loading.pop(v, None))
        # shield: a client that disconnects must not cancel a load other requests wait for
        return await asyncio.shield(pending)

    async def _load(self, version: str) -> ServedModel:
        ref = ModelRef("registry", f"models:/{self.name}/{version}", name=self.name, version=version)
        resolved = await asyncio.to_thread(self.client.resolve, ref)
        served = await asyncio.to_thread(self._loader, resolved)
        try:
            self._guard(served)
        except VersionConflict:
            _close(served)  # nobody got it: its artifacts go now
            raise
        self._insert(served)
        return served

    def _guard(self, served: ServedModel) -> None:
        assert self.default is not None and served.version is not None
        problems = signature_diff(self.default.signature, served.signature, self.cfg.compatibility)
        if problems:
            message = (
                f"version {served.version} of '{self.name}' is not compatible with the default version "
                f"{self.default.version} ({self.cfg.compatibility}): " + "; ".join(problems)
            )
            self._refused[served.version] = message
            metrics.refusals().labels(self.name, served.version).inc()
            logger.warning(message)
            raise VersionConflict(message)

    def _insert(self, served: ServedModel) -> None:
        assert served.version is not None
        self._loaded[served.version] = served
        self._loaded.move_to_end(served.version)
        metrics.loads().labels(self.name, served.version).inc()
        self._evict()
        self._report_loaded()

    def _evict(self) -> None:
        limit = self.cfg.max_loaded_versions
        while len(self._loaded) > limit:
            victim = next((v for v in self._loaded if self.default is None or v != self.default.version), None)
            if victim is None:
                break
            del self._loaded[victim]
            metrics.evictions().labels(self.name, victim).inc()
            logger.info("evicted version %s of '%s' (max_loaded_versions=%d)", victim, self.name, limit)

    def _report_loaded(self) -> None:
        metrics.loaded_versions().labels(self.name).set(len(self._loaded) or (1 if self.default else 0))

    # -- alias hot-swap ---------------------------------------------------------------------------

    async def refresh_default(self) -> Optional[str]:
        """Re-resolve the default (an alias, a stage, or "latest" for a model deployed by name only);
        switch to the new target once loaded and accepted.

        Returns the new default version, or None when nothing changed. Raises (and keeps serving the
        old default) when the new target cannot load or is refused by the guard. A pinned version
        (``models:/name/3``) never moves.
        """
        alias = self.default_alias
        if not self.ref.moves or self.default is None:
            return None
        target = self._target
        if self._swap_lock is None:
            self._swap_lock = asyncio.Lock()
        async with self._swap_lock:
            resolved = await asyncio.to_thread(self.client.resolve, self.ref)
            current = self.default
            if resolved.version == current.version:
                return None
            assert resolved.version is not None
            rejected = self._rejected_targets.get(resolved.version)
            if rejected is not None:  # remembered: not downloaded again on every poll
                raise rejected[0](rejected[1])
            candidate = self._loaded.get(resolved.version)
            if candidate is None:
                try:
                    candidate = await asyncio.to_thread(self._loader, resolved)
                except RegistryUnavailable:
                    raise  # not the target's fault: tried again on the next poll
                except SigawareError as exc:
                    self._rejected_targets[resolved.version] = (type(exc), str(exc))
                    raise
            problems = signature_diff(current.signature, candidate.signature, self.cfg.compatibility)
            if problems:
                metrics.refusals().labels(self.name, resolved.version).inc()
                conflict = VersionConflict(
                    f"{target} of '{self.name}' moved to version {resolved.version}, which is not "
                    f"compatible with the serving version {current.version} ({self.cfg.compatibility}): "
                    + "; ".join(problems)
                )
                self._rejected_targets[resolved.version] = (VersionConflict, str(conflict))
                if resolved.version not in self._loaded:
                    _close(candidate)
                del candidate
                raise conflict
            # The switch itself is one assignment: requests already holding `current` finish on it.
            self.default = candidate
            self._refused.clear()  # the baseline changed: earlier refusals may no longer hold
            self._rejected_targets.clear()
            self._last_warning = None
            if alias:
                self._aliases.pop(alias, None)
            self._insert(candidate)
            metrics.alias_swaps().labels(self.name, alias or self.default_stage or "latest").inc()
            logger.info("%s of %s: switched from version %s to %s", target, self.name,
                        current.version, candidate.version)
            return candidate.version

    # -- introspection ----------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "default_version": self.default.version if self.default else None,
            "default_alias": self.default_alias,
            "default_stage": self.default_stage,
            "pinned": self.pinned_version is not None,
            "loaded_versions": list(self._loaded),
            "refused_versions": sorted(self._refused, key=int),
            "max_loaded_versions": self.cfg.max_loaded_versions,
            "compatibility": self.cfg.compatibility,
        }


async def _stopping_within(seconds: float) -> bool:
    """Sleep ``seconds``, waking early (True) if the server starts stopping (SIGTERM)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if SHUTTING_DOWN.is_set():
            return True
        await asyncio.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
    return SHUTTING_DOWN.is_set()


def _close(served: ServedModel) -> None:
    """Release a model nobody will use (its artifact folder goes at once)."""
    close = getattr(served, "close", None)
    if close is not None:
        close()


_MANAGERS: dict[tuple, VersionManager] = {}


def manager_for(name: str, client: RegistryClient, ref: ModelRef, cfg: SigawareSettings) -> VersionManager:
    """The process-wide manager of a registered model (or a private one for non-registry models).

    Keyed by registry and name and by the default ref, so a reload that changes the default (a new
    alias in model-settings.json) gets a fresh manager, while every instance of the same deployment
    shares one.
    """
    key = (client.registry_uri, client.tracking_uri, ref.kind, ref.name or ref.uri, ref.version, ref.alias,
           ref.stage, cfg.model_dump_json())
    manager = _MANAGERS.get(key)
    if manager is None:
        manager = VersionManager(ref.name or name, client, ref, cfg)
        _MANAGERS[key] = manager
    return manager
