"""The MLServer runtime: a thin shell that wires settings, versions, codec and predictor together."""

from __future__ import annotations

import logging
import os
from typing import Optional

from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse, Parameters
from starlette.responses import Response

from . import metrics, routes, versions
from .errors import ModelFailure, SigawareError
from .registry import RegistryClient, parse_model_location
from .served import ServedModel
from .settings import SigawareSettings

logger = logging.getLogger("mlserver.sigaware")

#: Response header (REST) naming the registry version that answered.
VERSION_HEADER = "mlflow-model-version"


class SignatureAwareRuntime(MLModel):
    """Serves one MLflow model (local folder, ``runs:/`` or registry) by its signature.

    An instance whose model settings carry a ``version`` (the per-version instances that
    ``MlflowRegistryRepository`` lists) serves exactly that registry version, loaded lazily; the
    unversioned instance serves the default version and whatever version a request's headers select.
    """

    manager: Optional[versions.VersionManager] = None

    def __init__(self, settings: ModelSettings):
        super().__init__(settings)
        params = settings.parameters
        self.config = SigawareSettings.from_extra(params.extra if params else None)
        routes.install(self)

    @property
    def settings_dir(self) -> Optional[str]:
        source = getattr(self._settings, "_source", None)
        return os.path.dirname(os.path.abspath(source)) if source else None

    @property
    def is_default_instance(self) -> bool:
        return not self.version

    async def load(self) -> bool:
        # What `mlflow models serve` sets: type-hinted pyfuncs then parse inputs as in MLflow's server.
        os.environ.setdefault("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "true")
        params = self._settings.parameters
        client = RegistryClient(self.config, self.settings_dir)
        ref = parse_model_location(params.uri if params else None, self.settings_dir, self.name, self.config)
        manager = versions.manager_for(self.name, client, ref, self.config)
        if self.is_default_instance:
            if manager.default is None:
                await manager.start()
            else:
                # A reload (POST /v2/repository/models/<name>/load): re-resolve the alias, or "latest" for a
                # model deployed by name only. A refused target raises 409 here, and MLServer keeps the
                # old instance serving.
                await manager.refresh_default()
            routes.DIRECTORY.add(self)
        self.manager = manager
        default = manager.default
        logger.info(
            "model '%s'%s ready: %s%s",
            self.name,
            f" version {self.version}" if self.version else "",
            ref.describe,
            f" (default version {default.version})" if default is not None and default.version else "",
        )
        self.ready = True
        return True

    async def unload(self) -> bool:
        # A reload loads the new instance before unloading this one: shared state (the manager) stays.
        routes.DIRECTORY.remove(self)
        return True

    async def select(self, selector: Optional[str]) -> ServedModel:
        """The version to answer with: this instance's own version, else the request's, else the default."""
        if self.manager is None:
            raise ModelFailure(f"model '{self.name}' is not loaded")
        if self.version:
            selector = str(self.version)
        else:
            selector = versions.parse_selector(selector)
        return await self.manager.get(selector)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        headers = payload.parameters.headers if payload.parameters is not None else None
        served = await self.select(versions.selector_from_headers(headers))
        try:
            data, params = served.decoder.decode(payload)
            prediction = served.predictor(data, params, enforce=served.needs_enforcement(payload))
            requested = [o.name for o in payload.outputs] if payload.outputs else None
            outputs = served.encoder.encode(prediction, requested)
        except MLServerError:
            raise
        except Exception as exc:  # a bug of ours must still be a clean 500, never a traceback
            logger.exception("unexpected error while serving '%s'", self.name)
            raise ModelFailure(f"internal error: {type(exc).__name__}: {exc}") from None
        version = served.version
        if version:
            metrics.requests().labels(self.name, version).inc()
        return InferenceResponse(
            model_name=self.name,
            model_version=version,
            outputs=outputs,
            parameters=Parameters(headers={VERSION_HEADER: version}) if version else None,
        )

    async def metadata(self) -> MetadataModelResponse:
        served = await self.select(None)
        extra = None
        if self.is_default_instance and self.manager is not None and self.manager.is_registry:
            extra = {"versions": self.manager.state()}
        return served.metadata(self.name, extra)

    # -- MLflow scoring protocol (routes.py registers these as HTTP routes) -----------------------

    async def invocations(self, body: bytes, content_type: Optional[str], selector: Optional[str]) -> Response:
        from . import scoring

        try:
            served = await self.select(selector)
        except SigawareError as exc:
            result = scoring.error_for_status(exc.status_code, str(exc))
            return Response(content=result.body, status_code=result.status, media_type=result.content_type)
        result = scoring.invoke(served, body, content_type)
        headers = {VERSION_HEADER: served.version} if served.version else None
        return Response(
            content=result.body, status_code=result.status, media_type=result.content_type, headers=headers
        )

    def ping(self) -> Response:
        from . import scoring

        status, body, media_type = scoring.ping_body()
        return Response(content=body, status_code=status, media_type=media_type)

    def mlflow_version(self) -> Response:
        from . import scoring

        status, body, media_type = scoring.version_body()
        return Response(content=body, status_code=status, media_type=media_type)

    def no_default_model(self, names: list[str]) -> Response:
        from . import scoring

        result = scoring.no_default_model(names)
        return Response(content=result.body, status_code=result.status, media_type=result.content_type)
