"""The artifact cache: one folder per version, reused while held, removed when released or when a load
fails, the process's folder removed at exit and dead processes' folders swept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlserver_sigaware.model.artifacts import ArtifactCache, sweep_dead


def fetch_into(calls: list):
    def fetch(folder: str) -> str:
        calls.append(folder)
        model = Path(folder) / "model"
        model.mkdir()
        (model / "MLmodel").write_text("flavors: {}\n")
        return str(model)

    return fetch


def wait_gone(path: Path, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not path.exists(), path


def test_one_folder_per_version_reused_while_held_removed_when_released(tmp_path):
    cache = ArtifactCache(str(tmp_path))
    calls: list = []
    key = ArtifactCache.key_for("m", "3", "sqlite:///x|models:/m/3")
    first = cache.checkout(key, fetch_into(calls))
    second = cache.checkout(key, fetch_into(calls))
    assert len(calls) == 1  # downloaded once
    assert first.local_path == second.local_path == str(cache.proc_dir / key / "model")
    assert cache.folders() == [key]
    first.release()
    first.release()  # idempotent: the second holder still has it
    assert cache.folders() == [key]
    second.release()
    assert cache.folders() == []
    wait_gone(cache.proc_dir / key)
    deadline = time.monotonic() + 5
    while list(cache.proc_dir.iterdir()) and time.monotonic() < deadline:  # removal runs off-thread
        time.sleep(0.02)
    assert list(cache.proc_dir.iterdir()) == []  # no staging or trash left behind


def test_a_failed_download_leaves_nothing(tmp_path):
    cache = ArtifactCache(str(tmp_path))

    def failing(folder: str) -> str:
        (Path(folder) / "half-written").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError):
        cache.checkout("m-v1-abc", failing)
    assert list(cache.proc_dir.iterdir()) == []


def test_keys_name_the_version_and_differ_by_source():
    a = ArtifactCache.key_for("team/wine", "2", "http://a|models:/team/wine/2")
    b = ArtifactCache.key_for("team/wine", "2", "http://b|models:/team/wine/2")
    assert a.startswith("team_wine-v2-") and a != b
    assert ArtifactCache.key_for(None, None, "runs:/abc/model").startswith("artifact-")


def test_close_removes_the_process_folder_and_the_empty_root(tmp_path):
    root = tmp_path / "cache"
    cache = ArtifactCache(str(root))
    cache.checkout("m-v1-abc", fetch_into([]))
    cache.close()
    assert not root.exists()


def test_folders_of_dead_processes_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"proc-{dead.pid}" / "m-v1-abc").mkdir(parents=True)
    (tmp_path / f"proc-{os.getppid()}").mkdir()  # alive: kept
    (tmp_path / "unrelated").mkdir()
    assert sweep_dead(tmp_path) == [f"proc-{dead.pid}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"proc-{os.getppid()}", "unrelated"])


def test_a_served_model_releases_its_folder_when_collected_or_closed(tmp_path):
    """The lease is tied to the loaded model: dropped (evicted, replaced) or closed (refused) -> removed."""
    import gc

    from mlserver_sigaware.model.served import ServedModel

    cache = ArtifactCache(str(tmp_path))
    leases = [cache.checkout(f"m-v{v}-abc", fetch_into([])) for v in (1, 2)]
    served = [ServedModel.__new__(ServedModel) for _ in leases]
    import weakref

    for s, lease in zip(served, leases):
        s._release = weakref.finalize(s, lease.release)
    served[0].close()
    assert cache.folders() == ["m-v2-abc"]
    del s
    served.pop()
    gc.collect()
    assert cache.folders() == []
