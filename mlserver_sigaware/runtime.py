"""The MLServer runtime: MLServer's entry point, thin on purpose.

A request's path: a protocol adapter (:mod:`.protocols`) -> version selection (:mod:`.versions`) -> the
signature codec (:mod:`.codec`) -> the model (:mod:`.model`) -> the codec -> the response. This class
only wires them: it loads the version manager, answers MLServer's ``predict`` and ``metadata`` through
the V2 adapter and registers the other protocols' routes on itself, where MLServer looks for them.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

from mlserver import MLModel
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse

from .errors import ModelFailure
from .model.location import parse_model_location
from .model.registry import RegistryClient
from .model.served import ServedModel
from .protocols import routes, v2
from .protocols.scoring.routes import DIRECTORY
from .settings import VERSION_INSTANCE_KEY, SigawareSettings
from .versions.manager import VersionManager, manager_for
from .versions.selectors import parse_selector, selector_from_headers

__all__ = ["SignatureAwareRuntime"]

logger = logging.getLogger("mlserver.sigaware")


class SignatureAwareRuntime(MLModel):
    """Serves one MLflow model (local folder, ``runs:/`` or registry) by its signature.

    An instance whose model settings carry a ``version`` (the per-version instances that
    ``MlflowRegistryRepository`` lists) serves exactly that registry version, loaded lazily; the
    unversioned instance serves the default version and whatever version a request's headers select.
    """

    manager: Optional[VersionManager] = None
    #: Our V2 REST ``infer`` route answers this runtime's models (binary tensors, fast JSON):
    #: ``_patches/v2_infer.py``.
    sigaware_v2_rest = True
    #: The default version moves (alias, stage): MLServer must not cache our metadata
    #: (:mod:`mlserver_sigaware._patches.parallel_metadata`).
    dynamic_metadata = True

    def __init__(self, settings: ModelSettings):
        super().__init__(settings)
        params = settings.parameters
        self.config = SigawareSettings.from_extra(params.extra if params else None)
        routes.install(self)

    @property
    def settings_dir(self) -> Optional[str]:
        """The folder of this model's model-settings.json (relative URIs are resolved against it)."""
        source = getattr(self._settings, "_source", None)
        return os.path.dirname(os.path.abspath(source)) if source else None

    @property
    def pinned_version(self) -> Optional[str]:
        """The registry version a per-version instance (``MlflowRegistryRepository``) serves, else None.

        Not ``parameters.version``: platforms set that for their own bookkeeping (Seldon Core v2's
        agent writes ``"1"``, Seldon Core v1 ``MLSERVER_MODEL_VERSION=v1``), and such an instance must
        still serve the configured default version, on the unversioned routes.
        """
        params = self._settings.parameters
        version = (params.extra or {}).get(VERSION_INSTANCE_KEY) if params is not None else None
        return str(version) if version else None

    @property
    def is_default_instance(self) -> bool:
        return not self.pinned_version

    async def load(self) -> bool:
        # What `mlflow models serve` sets: type-hinted pyfuncs then parse inputs as in MLflow's server.
        os.environ.setdefault("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")
        params = self._settings.parameters
        client = RegistryClient(self.config, self.settings_dir)
        ref = parse_model_location(params.uri if params else None, self.settings_dir, self.name, self.config)
        manager = manager_for(self.name, client, ref, self.config)
        if self.is_default_instance:
            if manager.default is None:
                await manager.start(wait_for_registry=True)
            else:
                # A reload (POST /v2/repository/models/<name>/load): re-resolve the alias, or "latest" for a
                # model deployed by name only. A refused target raises 409 here, and MLServer keeps the
                # old instance serving.
                await manager.refresh_default()
            DIRECTORY.add(self)
        self.manager = manager
        default = manager.default
        logger.info(
            "model '%s'%s ready: %s%s",
            self.name,
            f" version {self.pinned_version}" if self.pinned_version else "",
            ref.describe,
            f" (default version {default.version})" if default is not None and default.version else "",
        )
        self.ready = True
        return True

    async def unload(self) -> bool:
        # A reload loads the new instance before unloading this one: shared state (the manager) stays.
        DIRECTORY.remove(self)
        return True

    async def select(self, selector: Optional[str]) -> ServedModel:
        """The version to answer with: this instance's own version, else the request's, else the default."""
        if self.manager is None:
            raise ModelFailure(f"model '{self.name}' is not loaded")
        if self.pinned_version:
            selector = self.pinned_version
        else:
            selector = parse_selector(selector)
        return await self.manager.get(selector)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        headers = payload.parameters.headers if payload.parameters is not None else None
        served = await self.select(selector_from_headers(headers))
        return v2.infer(self.name, served, payload)

    async def metadata(self) -> MetadataModelResponse:
        served = await self.select(None)
        extra = None
        if self.is_default_instance and self.manager is not None and self.manager.is_registry:
            extra = {"versions": self.manager.state()}
        return served.metadata(self.name, extra)


