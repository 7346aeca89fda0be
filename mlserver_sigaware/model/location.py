"""Where a model comes from: ``parameters.uri`` parsed into a :class:`ModelRef`.

Parsing is separate from resolving (:mod:`.registry`) so that a bad URI is refused at load with a clear
message before any registry call, and so that request-supplied selectors (a version number, an alias)
are validated by the same rules as the URIs an operator writes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

from ..errors import InvalidInput, ModelLoadError
from ..settings import SigawareSettings

__all__ = [
    "ModelRef",
    "ResolvedModel",
    "parse_model_location",
    "parse_registry_uri",
    "validate_alias",
    "validate_version",
]

_VERSION_RE = re.compile(r"^[1-9][0-9]{0,9}$")
#: MLflow's model version stages (case-insensitive in URIs, as MLflow reads them).
STAGES = ("None", "Staging", "Production", "Archived")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model location. ``kind`` is ``local``, ``registry`` or ``uri`` (runs:/, s3://, ...)."""

    kind: str
    uri: str
    name: Optional[str] = None
    version: Optional[str] = None
    alias: Optional[str] = None
    #: An MLflow stage (``Production``...): deprecated by MLflow, followed like an alias.
    stage: Optional[str] = None

    @property
    def describe(self) -> str:
        if self.kind != "registry":
            return self.uri
        if self.version:
            return f"models:/{self.name}/{self.version}"
        if self.alias:
            return f"models:/{self.name}@{self.alias}"
        if self.stage:
            return f"models:/{self.name}/{self.stage}"
        return f"models:/{self.name} (latest)"

    @property
    def moves(self) -> bool:
        """An alias, a stage or "latest": what it names can change while we serve it."""
        return self.kind == "registry" and not self.version


@dataclass(frozen=True)
class ResolvedModel:
    """A ref pinned to something loadable, with the registry version when there is one."""

    ref: ModelRef
    load_uri: str
    version: Optional[str] = None
    run_id: Optional[str] = None


def validate_version(version: str) -> str:
    if not _VERSION_RE.match(version):
        raise InvalidInput(f"invalid model version {version!r}: expected a positive integer")
    return version


def validate_alias(alias: str) -> str:
    if not _ALIAS_RE.match(alias):
        raise InvalidInput(f"invalid alias {alias!r}: letters, digits, '_' and '-' only")
    return alias


def parse_registry_uri(uri: str) -> ModelRef:
    """``models:/name``, ``models:/name/3``, ``models:/name@alias``, ``models:/name/Production`` (a stage)
    and ``models:/name/latest``."""
    rest = uri[len("models:/") :].strip("/")
    if not rest:
        raise ModelLoadError(f"invalid model URI {uri!r}: no model name")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return ModelRef("registry", uri, name=name, alias=alias)
    if "/" in rest:
        name, suffix = rest.rsplit("/", 1)
        if suffix.lower() == "latest":
            return ModelRef("registry", uri, name=name)
        if _VERSION_RE.match(suffix):
            return ModelRef("registry", uri, name=name, version=suffix)
        stage = next((s for s in STAGES if s.lower() == suffix.lower()), None)
        if stage is None:
            raise ModelLoadError(
                f"invalid model URI {uri!r}: {suffix!r} is neither a version number, 'latest' nor a stage "
                f"({', '.join(STAGES)})"
            )
        return ModelRef("registry", uri, name=name, stage=stage)
    return ModelRef("registry", uri, name=rest)


def parse_model_location(
    uri: Optional[str], settings_dir: Optional[str], model_name: str, cfg: SigawareSettings
) -> ModelRef:
    """Decide what to serve from ``parameters.uri``.

    MLServer fills a missing ``uri`` with the model folder's path, so a folder without an ``MLmodel``
    file means "no uri": then the registry model named ``registry_name`` (default: the MLServer model
    name) is served, so that deploying a registered model needs nothing but its name.

    The ``model_uri`` setting wins over ``uri``: it lives in ``parameters.extra``, which platforms that
    rewrite ``uri`` and the model name (Seldon Core v2's agent) carry over untouched.
    """
    if cfg.model_uri:
        uri = cfg.model_uri
    registry_name = cfg.registry_name or model_name
    if not uri:
        return ModelRef("registry", f"models:/{registry_name}", name=registry_name)
    if uri.startswith("models:/"):
        return parse_registry_uri(uri)
    if "://" in uri or uri.startswith("runs:/"):
        return ModelRef("uri", uri)
    path = uri[len("file:") :] if uri.startswith("file:") else uri
    if not os.path.isabs(path) and settings_dir:
        path = os.path.normpath(os.path.join(settings_dir, path))
    if os.path.isfile(os.path.join(path, "MLmodel")):
        return ModelRef("local", path)
    if os.path.isfile(path) and os.path.basename(path) == "MLmodel":
        return ModelRef("local", os.path.dirname(path))
    if os.path.isdir(path):
        return ModelRef("registry", f"models:/{registry_name}", name=registry_name)
    raise ModelLoadError(f"model uri {uri!r}: {path} is neither an MLflow model folder nor a known URI")

