"""Where downloaded model artifacts live, and when they are removed.

Layout: ``<root>/proc-<pid>/<model>-v<version>-<hash>/``: one folder per server process (so that inference
workers never remove each other's files) and one per model version inside it (so that loading a version
again while it is loaded reuses its files instead of downloading another copy). A version's folder is
held by a :class:`Lease`; it is removed when its last lease is released: when the loaded version is
evicted or replaced *and* no request still uses it (the lease is released by a finalizer of the loaded
model), or at once when its load fails. Each process removes its own folder when it exits; folders of
processes that died without exiting (SIGKILL) are swept by the next process that uses the same root.

The root is ``artifact_cache_dir`` (default ``<system temp dir>/mlserver-sigaware-artifacts``).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Optional

__all__ = ["ArtifactCache", "Lease", "default_root"]

logger = logging.getLogger("mlserver.sigaware")

_PROC_PREFIX = "proc-"


def default_root() -> str:
    return os.path.join(tempfile.gettempdir(), "mlserver-sigaware-artifacts")


class Lease:
    """One user's hold on a cached folder; :meth:`release` (idempotent) drops it."""

    def __init__(self, cache: "ArtifactCache", key: str, local_path: str):
        self._cache = cache
        self.key = key
        self.local_path = local_path
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._cache._release(self.key)


class ArtifactCache:
    """The artifact folders of this process under one root."""

    def __init__(self, root: str):
        self.root = Path(root)
        self.pid = os.getpid()
        self.proc_dir = self.root / f"{_PROC_PREFIX}{self.pid}"
        self._refs: dict[str, int] = {}
        self._local: dict[str, str] = {}
        self._refs_lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._swept = False

    # -- public ---------------------------------------------------------------------------------

    @staticmethod
    def key_for(name: Optional[str], version: Optional[str], source: str) -> str:
        """A folder name that says what it holds and cannot collide (a hash of where it came from)."""
        digest = hashlib.sha256(source.encode()).hexdigest()[:10]
        if name and version:
            safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64]
            return f"{safe}-v{version}-{digest}"
        return f"artifact-{digest}"

    def checkout(self, key: str, fetch: Callable[[str], str]) -> Lease:
        """A lease on ``key``'s folder; ``fetch(folder)`` downloads into an empty folder when not cached
        and returns the local model path inside it. A failed fetch leaves nothing behind."""
        with self._fetch_lock:
            with self._refs_lock:
                if self._refs.get(key):
                    self._refs[key] += 1
                    return Lease(self, key, self._local[key])
            self._prepare()
            final = self.proc_dir / key
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.proc_dir))
            try:
                local = fetch(str(staging))
                relative = os.path.relpath(local, staging)
                if final.exists():  # a leftover of an earlier release whose removal failed
                    shutil.rmtree(final, ignore_errors=True)
                os.rename(staging, final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            local_path = str(final) if relative == "." else str(final / relative)
            with self._refs_lock:
                self._refs[key] = 1
                self._local[key] = local_path
            return Lease(self, key, local_path)

    def folders(self) -> list[str]:
        """The version folders this process holds now (for tests and introspection)."""
        if not self.proc_dir.is_dir():
            return []
        return sorted(p.name for p in self.proc_dir.iterdir() if not p.name.startswith("."))

    # -- internals ------------------------------------------------------------------------------

    def _release(self, key: str) -> None:
        with self._refs_lock:
            count = self._refs.get(key, 0) - 1
            if count > 0:
                self._refs[key] = count
                return
            self._refs.pop(key, None)
            self._local.pop(key, None)
            folder = self.proc_dir / key
            if not folder.exists():
                return
            # Renamed at once (the name is free for a new download), deleted off this thread: a release
            # may run on the event loop (a finalizer) and a model folder can be large.
            trash = self.proc_dir / f".trash-{key}-{os.urandom(4).hex()}"
            try:
                os.rename(folder, trash)
            except OSError:
                trash = folder
        threading.Thread(target=shutil.rmtree, args=(trash,), kwargs={"ignore_errors": True},
                         name="sigaware-artifact-removal", daemon=True).start()
        logger.info("removed the artifacts of %s", key)

    def _prepare(self) -> None:
        if not self._swept:
            self.proc_dir.parent.mkdir(parents=True, exist_ok=True)
            if self.proc_dir.exists():  # our pid, from an earlier process that was killed: stale
                shutil.rmtree(self.proc_dir, ignore_errors=True)
            sweep_dead(self.root)
            self._swept = True
        self.proc_dir.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Remove this process's folder (at exit)."""
        if os.getpid() != self.pid:  # a forked child inherited this object: not its folder
            return
        shutil.rmtree(self.proc_dir, ignore_errors=True)
        sweep_dead(self.root)
        try:
            self.root.rmdir()  # only if empty (another process may be using it)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead(root: Path) -> list[str]:
    """Remove the folders of processes that no longer run (killed before they could clean up)."""
    removed = []
    try:
        entries = list(Path(root).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(_PROC_PREFIX):
            continue
        try:
            pid = int(entry.name[len(_PROC_PREFIX):])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


_CACHES: dict[str, ArtifactCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(root: Optional[str]) -> ArtifactCache:
    """The process's cache under ``root`` (created on first use; removed at exit)."""
    path = os.path.abspath(root or default_root())
    with _CACHES_LOCK:
        cache = _CACHES.get(path)
        if cache is None or cache.pid != os.getpid():
            cache = _CACHES[path] = ArtifactCache(path)
            atexit.register(cache.close)
        return cache
