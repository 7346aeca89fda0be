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
        self.loads: list[str] = []
        self.delay = 0.0
        self.broken: set[str] = set()
        self.lock = threading.Lock()

    def resolve(self, ref: ModelRef) -> ResolvedModel:
        if ref.alias:
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
