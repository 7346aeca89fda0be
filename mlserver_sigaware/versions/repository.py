"""``MlflowRegistryRepository``: lists each registered model's versions as MLServer model versions.

MLServer answers 404 for ``/v2/models/<name>/versions/<v>/...`` (and tritonclient's ``model_version=``)
unless a model instance with that version is registered, before any runtime sees the request. So for
every model-settings.json served by :class:`~mlserver_sigaware.SignatureAwareRuntime` from the registry,
this repository also lists one copy per registry version, with ``parameters.version`` set and the
version also named under ``parameters.extra`` (``VERSION_INSTANCE_KEY``): that key, not
``parameters.version``, is what makes the runtime serve exactly that version, because platforms set
``parameters.version`` for their own bookkeeping (Seldon Core's agent writes ``"1"``). Those
instances load nothing up front: they share the process's version cache
(:mod:`mlserver_sigaware.versions.manager`) and load their version on first use.

Versions registered after start are reachable by header at once; by versioned route after
``POST /v2/repository/models/<name>/load``, which calls :meth:`find` and so re-lists them.

Naming it in settings.json also makes MLServer import this package before it builds its HTTP app,
which is when our REST fixes (:mod:`mlserver_sigaware._patches`) must be in place.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import List

from mlserver.repository.repository import SchemalessModelRepository
from mlserver.settings import ModelSettings

from ..settings import VERSION_INSTANCE_KEY

logger = logging.getLogger("mlserver.sigaware")

_RUNTIME_PATH = "mlserver_sigaware.SignatureAwareRuntime"


def _is_ours(settings: ModelSettings) -> bool:
    impl = getattr(settings, "implementation_", None)
    return impl == _RUNTIME_PATH or (isinstance(impl, str) and impl.endswith(".SignatureAwareRuntime"))


def registry_versions(settings: ModelSettings) -> list[str]:
    """Registry versions of the model a model-settings.json serves ([] if not from the registry)."""
    from ..model.location import parse_model_location
    from ..model.registry import RegistryClient
    from ..settings import SigawareSettings

    params = settings.parameters
    if params is not None and params.version:
        return []  # already versioned (one of ours, or by the platform): listed as it is
    source = getattr(settings, "_source", None)
    settings_dir = os.path.dirname(os.path.abspath(source)) if source else None
    cfg = SigawareSettings.from_extra(params.extra if params else None)
    ref = parse_model_location(params.uri if params else None, settings_dir, settings.name, cfg)
    if ref.kind != "registry" or ref.name is None:
        return []
    allowed = cfg.allowed_versions
    if allowed is None and ref.version:
        return [ref.version]  # pinned: serves only itself (see VersionManager._check_version_allowed)
    versions = RegistryClient(cfg, settings_dir).list_versions(ref.name)
    if allowed is not None:
        versions = [v for v in versions if v in {str(a) for a in allowed}]
    return versions


def with_versions(settings: ModelSettings) -> List[ModelSettings]:
    """The settings followed by one lazily-loading copy per registry version."""
    out = [settings]
    if not _is_ours(settings):
        return out
    try:
        versions = registry_versions(settings)
    except Exception as exc:  # the default instance will report the real problem when it loads
        logger.warning(
            "cannot list the registry versions of '%s' (%s): versioned routes (/v2/models/%s/versions/<v>) "
            "answer 404 until POST /v2/repository/models/%s/load lists them again; the default version and "
            "selection by header are not affected",
            settings.name, exc, settings.name, settings.name,
        )
        return out
    for version in versions:
        copy = settings.model_copy(deep=True)
        copy._source = getattr(settings, "_source", None)
        assert copy.parameters is not None
        copy.parameters.version = version
        copy.parameters.extra = {**(copy.parameters.extra or {}), VERSION_INSTANCE_KEY: version}
        out.append(copy)
    return out


class MlflowRegistryRepository(SchemalessModelRepository):
    """MLServer's file-based repository, plus the registry versions of each registry-served model."""

    async def list(self) -> List[ModelSettings]:
        found = await super().list()
        expanded = await asyncio.gather(*[asyncio.to_thread(with_versions, s) for s in found])
        return [s for group in expanded for s in group]

    async def find(self, name: str) -> List[ModelSettings]:
        found = await super().find(name)
        expanded = await asyncio.gather(*[asyncio.to_thread(with_versions, s) for s in found])
        return [s for group in expanded for s in group]
