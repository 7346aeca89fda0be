"""The version manager in-process: selection, LRU, single-flight loads, guard, alias hot-swap, bounds."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Optional

import pytest
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from mlserver_sigaware.errors import (
    InvalidInput,
    ModelLoadError,
    RegistryNotFound,
    RegistryUnavailable,
    VersionConflict,
    VersionNotAllowed,
)
from mlserver_sigaware.model.location import ModelRef, ResolvedModel
from mlserver_sigaware.settings import SigawareSettings
from mlserver_sigaware.versions import VersionManager, parse_selector, selector_from_headers

PROMPT = ModelSignature(Schema([ColSpec("string", "prompt")]), Schema([ColSpec("string", "translation_text")]))
RENAMED = ModelSignature(
    Schema([ColSpec("string", "text_to_translate")]), Schema([ColSpec("string", "translation_text")])
)


@dataclass
class FakeServed:
    version: Optional[str]
    signature: ModelSignature


class FakeRegistry:
    """Versions -> signatures, aliases -> versions; counts loads; can be made slow or broken."""

    def __init__(self):
        self.signatures = {"1": PROMPT, "2": PROMPT, "3": RENAMED, "4": PROMPT, "5": PROMPT}
        self.aliases = {"champion": "1", "challenger": "2"}
        self.stages = {"Production": "1", "Staging": "2"}
        self.down = False  # the registry is unreachable
        self.loads: list[str] = []
        self.delay = 0.0
        self.broken: set[str] = set()
        self.lock = threading.Lock()

    def resolve(self, ref: ModelRef) -> ResolvedModel:
        if self.down:
            raise RegistryUnavailable("the model registry is unreachable (connection refused)")
        if ref.stage:
            version = self.stages[ref.stage]
        elif ref.alias:
            if ref.alias not in self.aliases:
                raise RegistryNotFound(f"no alias {ref.alias}")
            version = self.aliases[ref.alias]
        elif ref.version:
            version = ref.version
        else:
            version = max(self.signatures, key=int)
        if version not in self.signatures:
            raise RegistryNotFound(f"model 'm' has no version {version}")
        return ResolvedModel(ref=ref, load_uri=f"models:/m/{version}", version=version)

    def load(self, resolved: ResolvedModel) -> FakeServed:
        time.sleep(self.delay)
        if resolved.version in self.broken:
            raise ModelLoadError(f"cannot load version {resolved.version}")
        with self.lock:
            self.loads.append(resolved.version)
        return FakeServed(resolved.version, self.signatures[resolved.version])


def manager(reg: FakeRegistry, uri="models:/m@champion", **cfg) -> VersionManager:
    ref = ModelRef("registry", uri, name="m", alias=uri.split("@")[1] if "@" in uri else None)
    return VersionManager("m", reg, ref, SigawareSettings(**{"alias_poll_seconds": 0, **cfg}), loader=reg.load)


def run(coro):
    return asyncio.run(coro)


def test_selectors_from_headers():
    assert selector_from_headers({"mlflow-model-version": " 3 "}) == "3"
    assert selector_from_headers({"serve_multiplexed_model_id": "@champion"}) == "@champion"
    assert selector_from_headers({"serve-multiplexed-model-id": "2"}) == "2"
    assert selector_from_headers({"other": "x"}) is None
    assert parse_selector("@champion") == "@champion"
    for bad in ["latest", "1.0", "@bad alias", "models:/other/1", "../1"]:
        with pytest.raises(InvalidInput):
            parse_selector(bad)


def test_conflicting_version_headers_are_refused_naming_both():
    """Issue 12: two headers that disagree were resolved silently (the first one won)."""
    with pytest.raises(InvalidInput, match=r"mlflow-model-version: '3' and serve_multiplexed_model_id: '@champion'"):
        selector_from_headers({"mlflow-model-version": "3", "serve-multiplexed-model-id": "@champion"})
    assert selector_from_headers({"mlflow-model-version": "3", "serve_multiplexed_model_id": " 3"}) == "3"
    assert selector_from_headers({"mlflow-model-version": "", "serve_multiplexed_model_id": "2"}) == "2"


def test_default_and_selection_by_version_and_alias():
    reg = FakeRegistry()

    async def go():
        m = manager(reg)
        assert (await m.get(None)).version == "1"
        assert (await m.get("2")).version == "2"
        assert (await m.get("@challenger")).version == "2"
        assert (await m.get("@champion")).version == "1"
        assert reg.loads == ["1", "2"]  # each loaded once

    run(go())


def test_lru_keeps_default_and_evicts_least_recently_used():
    reg = FakeRegistry()

    async def go():
        m = manager(reg, max_loaded_versions=3)
        await m.get("2")
        await m.get("4")
        await m.get("2")  # 4 is now least recently used
        await m.get("5")
        assert m.state()["loaded_versions"] == ["1", "2", "5"]
        await m.get("4")  # loads again
        assert reg.loads.count("4") == 2
        assert "1" in m.state()["loaded_versions"]  # the default is never evicted

    run(go())


def test_concurrent_first_requests_load_once_and_do_not_block_loaded_versions():
    reg = FakeRegistry()

    async def go():
        m = manager(reg)
        await m.get(None)
        reg.delay = 0.5
        start = time.monotonic()
        slow = [asyncio.create_task(m.get("2")) for _ in range(5)]
        await asyncio.sleep(0.05)
        fast = await m.get(None)  # the default answers while version 2 loads off the loop
        assert fast.version == "1" and time.monotonic() - start < 0.3
        results = await asyncio.gather(*slow)
        assert {r.version for r in results} == {"2"}
        assert reg.loads.count("2") == 1

    run(go())


def test_incompatible_version_is_409_with_diff_and_remembered():
    reg = FakeRegistry()

    async def go():
        m = manager(reg)
        for _ in range(3):
            with pytest.raises(VersionConflict) as err:
                await m.get("3")
            assert err.value.status_code == 409
            assert "input 'prompt' (string) missing; unexpected required input 'text_to_translate' (string)" in str(
                err.value
            )
        assert reg.loads.count("3") == 1  # refused once, not re-loaded on every request
        assert m.state()["refused_versions"] == ["3"]

    run(go())


def test_unknown_version_and_alias_are_404_and_bounds_are_403():
    reg = FakeRegistry()

    async def go():
        m = manager(reg)
        with pytest.raises(RegistryNotFound):
            await m.get("99")
        with pytest.raises(RegistryNotFound):
            await m.get("@nope")
        bounded = manager(reg, allowed_versions=["1", "2"], allowed_aliases=["champion"])
        assert (await bounded.get("2")).version == "2"
        with pytest.raises(VersionNotAllowed) as err:
            await bounded.get("4")
        assert err.value.status_code == 403
        with pytest.raises(VersionNotAllowed):
            await bounded.get("@challenger")

    run(go())


def test_alias_hot_swap_switches_and_refuses_incompatible_or_broken_targets():
    reg = FakeRegistry()

    async def go():
        m = manager(reg)
        old = await m.get(None)
        reg.aliases["champion"] = "2"
        assert await m.refresh_default() == "2"
        assert (await m.get(None)).version == "2"
        assert old.version == "1"  # a request holding the old version finishes on it
        assert await m.refresh_default() is None  # nothing moved
        reg.aliases["champion"] = "3"
        for _ in range(3):  # refused once, remembered: not re-loaded on every poll
            with pytest.raises(VersionConflict, match="moved to version 3"):
                await m.refresh_default()
        assert reg.loads.count("3") == 1
        assert (await m.get(None)).version == "2"
        reg.broken.add("4")
        reg.aliases["champion"] = "4"
        with pytest.raises(ModelLoadError):
            await m.refresh_default()
        assert (await m.get(None)).version == "2"

    run(go())


def test_reload_of_a_model_deployed_by_name_follows_the_latest_version():
    reg = FakeRegistry()
    for v in ("3", "4", "5"):
        del reg.signatures[v]

    async def go():
        m = manager(reg, uri="models:/m")
        assert (await m.get(None)).version == "2"
        assert await m.refresh_default() is None  # nothing new
        reg.signatures["4"] = PROMPT
        assert await m.refresh_default() == "4"
        assert (await m.get(None)).version == "4"
        reg.signatures["5"] = RENAMED
        with pytest.raises(VersionConflict, match="the latest version of 'm' moved to version 5"):
            await m.refresh_default()
        assert (await m.get(None)).version == "4"

    run(go())


def test_a_pinned_version_never_moves():
    reg = FakeRegistry()

    async def go():
        ref = ModelRef("registry", "models:/m/1", name="m", version="1")
        m = VersionManager("m", reg, ref, SigawareSettings(alias_poll_seconds=0), loader=reg.load)
        assert (await m.get(None)).version == "1"
        assert await m.refresh_default() is None
        assert (await m.get(None)).version == "1"

    run(go())


def test_alias_watch_polls_in_the_background():
    reg = FakeRegistry()

    async def go():
        m = manager(reg, alias_poll_seconds=0.1)
        await m.start()
        reg.aliases["champion"] = "2"
        for _ in range(50):
            await asyncio.sleep(0.05)
            if m.default.version == "2":
                break
        assert m.default.version == "2"
        reg.aliases["champion"] = "3"  # incompatible: the watcher logs and keeps serving 2
        await asyncio.sleep(0.4)
        assert m.default.version == "2"
        m.stop()

    run(go())


def test_non_registry_model_has_no_versions():
    reg = FakeRegistry()

    async def go():
        ref = ModelRef("local", "/models/x")
        m = VersionManager("x", reg, ref, SigawareSettings(), loader=lambda r: FakeServed(None, PROMPT))
        reg.resolve = lambda ref: ResolvedModel(ref=ref, load_uri=ref.uri)  # type: ignore[method-assign]
        assert (await m.get(None)).version is None
        with pytest.raises(RegistryNotFound, match="not served from the model registry"):
            await m.get("2")

    run(go())


# ---------------------------------------------------------------------------------------- pinned


def pinned(reg: FakeRegistry, **cfg) -> VersionManager:
    ref = ModelRef("registry", "models:/m/1", name="m", version="1")
    return VersionManager("m", reg, ref, SigawareSettings(**{"alias_poll_seconds": 0, **cfg}), loader=reg.load)


def test_a_pinned_deployment_serves_only_itself():
    reg = FakeRegistry()

    async def go():
        m = pinned(reg)
        assert (await m.get("1")).version == "1"
        assert (await m.get("@champion")).version == "1"  # an alias that names the pinned version
        for selector in ("2", "@challenger"):
            with pytest.raises(VersionNotAllowed, match="pinned to version 1 of 'm'.*set allowed_versions") as info:
                await m.get(selector)
            assert info.value.status_code == 403
        assert reg.loads == ["1"]

    run(go())


def test_allowed_versions_or_aliases_open_a_pinned_deployment():
    reg = FakeRegistry()

    async def go():
        assert (await pinned(reg, allowed_versions=["1", "2"]).get("2")).version == "2"
        m = pinned(reg, allowed_aliases=["challenger"])
        assert (await m.get("@challenger")).version == "2"
        with pytest.raises(VersionNotAllowed):
            await m.get("2")  # by number: still only the pinned version

    run(go())


def test_alias_and_name_only_deployments_still_select_any_version():
    reg = FakeRegistry()

    async def go():
        assert (await manager(reg).get("2")).version == "2"
        by_name = manager(reg, uri="models:/m")
        assert (await by_name.get("1")).version == "1"

    run(go())


# ---------------------------------------------------------------------------------------- stages


def staged(reg: FakeRegistry, stage: str, **cfg) -> VersionManager:
    ref = ModelRef("registry", f"models:/m/{stage}", name="m", stage=stage)
    return VersionManager("m", reg, ref, SigawareSettings(**{"alias_poll_seconds": 0, **cfg}), loader=reg.load)


def test_a_stage_is_followed_like_an_alias():
    reg = FakeRegistry()

    async def go():
        prod, staging = staged(reg, "Production"), staged(reg, "Staging")
        assert (await prod.get(None)).version == "1"
        assert (await staging.get(None)).version == "2"
        reg.stages["Production"] = "4"
        assert await prod.refresh_default() == "4"
        assert await staging.refresh_default() is None
        reg.stages["Production"] = "3"  # incompatible: the guard refuses, 4 keeps serving
        with pytest.raises(VersionConflict, match="stage 'Production' of 'm' moved to version 3"):
            await prod.refresh_default()
        assert prod.default.version == "4" and prod.state()["default_stage"] == "Production"

    run(go())


def test_stage_poller_runs_in_the_background():
    reg = FakeRegistry()

    async def go():
        m = staged(reg, "Production", alias_poll_seconds=0.05)
        await m.start()
        reg.stages["Production"] = "2"
        for _ in range(100):
            await asyncio.sleep(0.02)
            if m.default.version == "2":
                break
        assert m.default.version == "2"
        m.stop()

    run(go())


# ---------------------------------------------------------------------------------------- outages


def test_start_up_waits_for_the_registry_then_loads(caplog):
    reg = FakeRegistry()
    reg.down = True

    async def go():
        m = manager(reg, startup_registry_wait_seconds=30, registry_backoff_seconds=0.01)
        task = asyncio.create_task(m.start(wait_for_registry=True))
        await asyncio.sleep(0.3)
        assert not task.done()
        reg.down = False
        served = await asyncio.wait_for(task, 10)
        assert served.version == "1"

    with caplog.at_level("WARNING", logger="mlserver.sigaware"):
        run(go())
    waits = [r.getMessage() for r in caplog.records if "waiting for the model registry" in r.getMessage()]
    assert len(waits) == 1 and "models:/m@champion" in waits[0] and "startup_registry_wait_seconds=30" in waits[0]


def test_start_up_gives_up_after_the_configured_wait():
    reg = FakeRegistry()
    reg.down = True

    async def go():
        m = manager(reg, startup_registry_wait_seconds=0.3, registry_backoff_seconds=0.01)
        started = time.monotonic()
        with pytest.raises(ModelLoadError, match=r"gave up waiting for the model registry .*startup_registry_wait_seconds=0.3"):
            await m.start(wait_for_registry=True)
        assert time.monotonic() - started < 3

    run(go())


def test_during_an_outage_loaded_versions_serve_others_are_503_and_the_poller_recovers():
    reg = FakeRegistry()

    async def go():
        m = manager(reg, alias_poll_seconds=0.05)
        await m.start()
        await m.get("2")
        await m.get("@challenger")  # alias target cached
        reg.down = True
        assert (await m.get(None)).version == "1"
        assert (await m.get("2")).version == "2"
        with pytest.raises(RegistryUnavailable):
            await m.get("4")
        await asyncio.sleep(1.1)  # the poller fails quietly meanwhile; the alias cache (1 s) expires
        assert (await m.get("@challenger")).version == "2"  # stale alias target beats a 503
        assert m.default.version == "1"
        reg.aliases["champion"] = "4"
        reg.down = False
        for _ in range(100):
            await asyncio.sleep(0.02)
            if m.default.version == "4":
                break
        assert m.default.version == "4"
        m.stop()

    run(go())
