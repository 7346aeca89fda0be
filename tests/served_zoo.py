"""Zoo models loaded in this process as :class:`ServedModel` s, built on first use (for unit tests of
the typed API and the OpenAPI documents, which need a served model but no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc

from mlserver_sigaware.model.location import ModelRef, ResolvedModel
from mlserver_sigaware.model.served import ServedModel
from mlserver_sigaware.settings import SigawareSettings
from tests import zoo


def _build(kind: str, dest: Path) -> Path:
    if kind == "wine":  # cloudpickle loads faster than skops and predicts the same
        return zoo.build_wine(dest, serialization_format="cloudpickle")
    return zoo.BUILDERS[kind](dest)


def load_served(path: Path, version: str | None = None, **settings: Any) -> ServedModel:
    ref = ModelRef("local", str(path))
    resolved = ResolvedModel(ref=ref, load_uri=str(path), version=version)
    return ServedModel.from_pyfunc(mlflow.pyfunc.load_model(str(path)), resolved, SigawareSettings(**settings))


class ServedZoo(dict):
    """``zoo[kind]`` -> a ServedModel of that zoo kind (saved under ``base`` once)."""

    def __init__(self, base: Path):
        super().__init__()
        self.base = base

    def path(self, kind: str) -> Path:
        dest = self.base / kind
        return dest if (dest / "MLmodel").is_file() else _build(kind, dest)

    def __missing__(self, kind: str) -> ServedModel:
        served = self[kind] = load_served(self.path(kind))
        return served
