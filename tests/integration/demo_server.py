"""What `make serve` serves, started for a test: the root settings, the examples, a populated demo registry.

Used by tests/integration/test_demo.py and tests/docs/test_snippets.py. The repository layout is the
checkout's (``model-settings.json`` at the root, ``examples/``, ``demo-registry/``), copied to ``root``;
``settings.json`` is the checkout's except its host and ports, which come from the OS.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from mlserver_sigaware import demo
from tests.integration.harness import MLServerProcess

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODELS = ["wine-regressor", "text-translator", "sentence-embedder"]


@contextlib.contextmanager
def demo_server(root: Path) -> Iterator[MLServerProcess]:
    """Populate ``root/demo-registry`` and serve ``root`` as ``make serve`` serves the checkout."""
    shutil.copy(ROOT / "model-settings.json", root / "model-settings.json")
    shutil.copytree(ROOT / "examples", root / "examples")
    demo.populate(root / "demo-registry")
    settings = json.loads((ROOT / "settings.json").read_text())
    keep = {k: v for k, v in settings.items() if not k.endswith("_port") and k != "host"}
    with MLServerProcess(root, parallel_workers=settings["parallel_workers"], extra_settings=keep,
                         models=DEMO_MODELS) as server:
        yield server
