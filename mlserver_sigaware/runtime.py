"""The MLServer runtime: a thin shell that wires settings, registry, codec and predictor together."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Optional

from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.settings import ModelSettings
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse, Parameters
from starlette.responses import Response

from . import routes

from .errors import ModelFailure
from .registry import RegistryClient, parse_model_location
from .served import ServedModel
from .settings import SigawareSettings

logger = logging.getLogger("mlserver_sigaware")

#: Response header (REST) naming the registry version that answered.
VERSION_HEADER = "mlflow-model-version"


class SignatureAwareRuntime(MLModel):
    """Serves one MLflow model (local folder, ``runs:/`` or registry) by its signature."""

    _served: Optional[ServedModel] = None

    def __init__(self, settings: ModelSettings):
        super().__init__(settings)
        params = settings.parameters
        self.config = SigawareSettings.from_extra(params.extra if params else None)
        routes.install(self)

    @property
    def settings_dir(self) -> Optional[str]:
        source = getattr(self._settings, "_source", None)
        return os.path.dirname(os.path.abspath(source)) if source else None

    async def load(self) -> bool:
        params = self._settings.parameters
        self.registry = RegistryClient(self.config, self.settings_dir)
        ref = parse_model_location(params.uri if params else None, self.settings_dir, self.name, self.config)
        # Resolving and loading block on I/O and unpickling: keep them off the event loop.
        resolved = await asyncio.to_thread(self.registry.resolve, ref)
        self._served = await asyncio.to_thread(ServedModel.load, self.registry, resolved, self.config)
        logger.info(
            "loaded %s as model '%s'%s",
            ref.describe,
            self.name,
            f" version {resolved.version}" if resolved.version else "",
        )
        routes.DIRECTORY.add(self)
        self.ready = True
        return True

    async def unload(self) -> bool:
        routes.DIRECTORY.remove(self)
        return True

    def current(self) -> ServedModel:
        # A method, not a property: MLServer's inspect.getmembers() evaluates properties before load().
        if self._served is None:
            raise ModelFailure(f"model '{self.name}' is not loaded")
        return self._served

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        served = self.current()
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
        return InferenceResponse(
            model_name=self.name,
            model_version=version,
            outputs=outputs,
            parameters=Parameters(headers={VERSION_HEADER: version}) if version else None,
        )

    async def metadata(self) -> MetadataModelResponse:
        return self.current().metadata(self.name)

    # -- MLflow scoring protocol (routes.py registers these as HTTP routes) -----------------------

    def invocations(self, body: bytes, content_type: Optional[str]) -> Response:
        from . import scoring

        result = scoring.invoke(self.current(), body, content_type)
        return Response(content=result.body, status_code=result.status, media_type=result.content_type)

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
