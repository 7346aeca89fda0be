"""Test-process set-up shared by every test.

``tritonclient.grpc`` and MLServer both register the V2 protocol's messages (``inference.ServerLiveRequest``,
...) in protobuf's default descriptor pool under different file names, so importing both in one process
fails ("duplicate symbol"). Servers run in their own processes; only this test process needs both (MLServer
for unit tests, tritonclient as a real client), so tritonclient's generated modules are built into a
private pool here, before any test module imports either. The messages are the same on the wire.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from google.protobuf import descriptor_pool


def _import_tritonclient_grpc_in_private_pool() -> None:
    default = descriptor_pool.Default
    private = descriptor_pool.DescriptorPool()
    descriptor_pool.Default = lambda: private  # type: ignore[assignment]
    try:
        import tritonclient.grpc  # noqa: F401
    finally:
        descriptor_pool.Default = default  # type: ignore[assignment]


_import_tritonclient_grpc_in_private_pool()

# No downloads at run time: tests and the servers they start (which inherit this environment) load
# every model from disk, and a hub name would fail instead of being fetched.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def flavor_zoo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The tiny transformers / sentence-transformers / PyTorch models (tests/flavor_zoo.py).

    Built once and kept in pytest's cache dir (``.pytest_cache``), keyed by the zoo's source and the
    library versions: building them costs ~40 s of CPU, and every flavor test file needs them.
    Without the cache provider (``-p no:cacheprovider``) they live in this session's tmp dir.
    """
    from tests import flavor_zoo

    cache = getattr(request.config, "cache", None)
    if cache is not None:
        base = Path(cache.mkdir(f"flavor-zoo-{flavor_zoo.cache_key()}"))
    else:
        base = tmp_path_factory.mktemp("flavor-zoo")
    return flavor_zoo.FlavorZoo(base)


@pytest.fixture(scope="session", autouse=True)
def _no_mlflow_lock_files_left() -> Iterator[None]:
    """MLflow creates an empty ``db_init_lock-<hash>`` in the system temp folder for every sqlite
    registry it opens and never removes it; the tests open dozens. Remove those made during the session
    (only new ones: another process's locks are left alone)."""
    import tempfile

    folder = Path(tempfile.gettempdir())
    before = set(folder.glob("db_init_lock-*"))
    yield
    for lock in set(folder.glob("db_init_lock-*")) - before:
        try:
            if lock.stat().st_size == 0:
                lock.unlink()
        except OSError:
            pass
