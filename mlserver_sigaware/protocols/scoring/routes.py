"""The HTTP routes of MLflow's scoring protocol, per model instance (see :mod:`..http` for the rules).

``POST /v2/models/<name>/invocations`` for every model (and ``.../versions/<v>/invocations`` for the
per-version instances), the bare ``POST /invocations`` (the only model, or the one marked
``default_invocations_model``: see :class:`ModelDirectory`), and MLflow's ``/ping``, ``/health`` and
``/version``, bare and under the model's prefix.
"""

from __future__ import annotations

import threading
from typing import Optional

from fastapi import Depends, Header
from starlette.responses import Response

from ...errors import SigawareError
from ..http import Handler, ModelEndpoint, raw_body, selected, version_headers, version_selector
from .invocations import invoke
from .responses import ScoringResponse, error_for_status, no_default_model, ping_body, version_body

__all__ = ["DIRECTORY", "ModelDirectory", "invocations_response", "scoring_handlers"]


class ModelDirectory:
    """Which models are loaded in this process, for the bare ``/invocations`` route.

    Module-level state: MLServer reloads only the package named by ``implementation`` when it builds an
    instance, never this module, so all instances in a process share it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ModelEndpoint] = {}

    def add(self, model: ModelEndpoint) -> None:
        with self._lock:
            self._models[model.name] = model

    def remove(self, model: ModelEndpoint) -> None:
        with self._lock:
            if self._models.get(model.name) is model:
                del self._models[model.name]

    def default(self) -> tuple[Optional[ModelEndpoint], list[str]]:
        """The model the bare route serves: the only one, or the one marked default; else None."""
        with self._lock:
            models = list(self._models.values())
        if len(models) == 1:
            return models[0], [models[0].name]
        marked = [m for m in models if m.config.default_invocations_model]
        if len(marked) == 1:
            return marked[0], [m.name for m in models]
        return None, sorted(m.name for m in models)


DIRECTORY = ModelDirectory()


def _response(result: ScoringResponse, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(content=result.body, status_code=result.status, media_type=result.content_type, headers=headers)


def _plain(answer: tuple[int, bytes, str]) -> Response:
    status, body, media_type = answer
    return Response(content=body, status_code=status, media_type=media_type)


async def invocations_response(
    model: ModelEndpoint, body: bytes, content_type: Optional[str], versions: Optional[dict[str, str]]
) -> Response:
    """``POST .../invocations``: the selected version answers as ``mlflow models serve`` would."""
    try:
        served = await model.select(selected(versions))
    except SigawareError as exc:
        return _response(error_for_status(exc.status_code, str(exc)))
    answer = invoke(served, body, content_type, stack_trace=model.config.invocations_stack_trace)
    return _response(answer, version_headers(served))


def scoring_handlers(model: ModelEndpoint) -> list[Handler]:
    """``(attribute name, handler, path, method)`` of this instance's scoring routes.

    A per-version instance (listed by ``MlflowRegistryRepository``) answers only its own
    ``versions/<v>/invocations``; the unversioned routes belong to the default instance.
    """
    base = f"/v2/models/{model.name}"

    async def sigaware_invocations(
        body: bytes = Depends(raw_body),
        content_type: Optional[str] = Header(default=None),
        versions: Optional[dict[str, str]] = Depends(version_selector),
    ) -> Response:
        return await invocations_response(model, body, content_type, versions)

    if model.pinned_version:
        path = f"{base}/versions/{model.pinned_version}/invocations"
        return [("sigaware_invocations", sigaware_invocations, path, "POST")]

    async def sigaware_root_invocations(
        body: bytes = Depends(raw_body),
        content_type: Optional[str] = Header(default=None),
        versions: Optional[dict[str, str]] = Depends(version_selector),
    ) -> Response:
        target, names = DIRECTORY.default()
        if target is None:
            return _response(no_default_model(names))
        return await invocations_response(target, body, content_type, versions)

    # Each route needs its own function object to carry its tag, hence the near-twins.
    async def sigaware_ping() -> Response:
        return _plain(ping_body())

    async def sigaware_health() -> Response:
        return _plain(ping_body())

    async def sigaware_version() -> Response:
        return _plain(version_body())

    async def sigaware_model_ping() -> Response:
        return _plain(ping_body())

    async def sigaware_model_health() -> Response:
        return _plain(ping_body())

    async def sigaware_model_version() -> Response:
        return _plain(version_body())

    return [
        ("sigaware_invocations", sigaware_invocations, f"{base}/invocations", "POST"),
        ("sigaware_root_invocations", sigaware_root_invocations, "/invocations", "POST"),
        ("sigaware_ping", sigaware_ping, "/ping", "GET"),
        ("sigaware_health", sigaware_health, "/health", "GET"),
        ("sigaware_version", sigaware_version, "/version", "GET"),
        # The same under the model's prefix: the only paths Seldon Core's mesh forwards, and what
        # MLflow's ScoringServerClient reaches when pointed at `<host>:<port>/v2/models/<name>`.
        ("sigaware_model_ping", sigaware_model_ping, f"{base}/ping", "GET"),
        ("sigaware_model_health", sigaware_model_health, f"{base}/health", "GET"),
        ("sigaware_model_version", sigaware_model_version, f"{base}/version", "GET"),
    ]
