"""The HTTP routes of the typed API, the OpenAPI document and the Swagger UI page, per model instance.

The rules every route of ours follows (literal paths, plain picklable arguments, finished responses)
are in :mod:`mlserver_sigaware.protocols.http`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import orjson
from fastapi import Depends
from starlette.responses import Response

from ... import metrics
from ...errors import SigawareError
from ..http import JSON, Handler, ModelEndpoint, json_error, raw_body, selected, version_headers, version_selector
from .api import predict_typed
from .openapi import openapi_document
from .swagger import SWAGGER_ASSETS, swagger_asset, swagger_html

__all__ = ["openapi_response", "predict_response", "swagger_asset_response", "swagger_page_response", "typed_handlers"]


async def predict_response(model: ModelEndpoint, body: bytes, versions: Optional[dict[str, str]]) -> Response:
    """``POST .../predict``: the selected version's typed prediction."""
    try:
        served = await model.select(selected(versions))
    except SigawareError as exc:
        return json_error(exc.status_code, str(exc))
    status, content = predict_typed(served, body)
    version = served.version
    if version:
        metrics.requests().labels(model.name, version).inc()
    return Response(content, status_code=status, media_type=JSON, headers=version_headers(served))


async def openapi_response(model: ModelEndpoint, versions: Optional[dict[str, str]]) -> Response:
    """``GET .../openapi.json``: the document of the selected version (the default one without a header)."""
    try:
        served = await model.select(selected(versions))
        document = openapi_document(served, model.name, model.pinned_version)
    except SigawareError as exc:
        return json_error(exc.status_code, str(exc))
    except Exception as exc:  # a bug of ours: a clean 500
        return json_error(500, f"internal error: {type(exc).__name__}: {exc}")
    return Response(orjson.dumps(document), media_type=JSON, headers=version_headers(served))


def swagger_page_response(model: ModelEndpoint) -> Response:
    """``GET /v2/models/<name>/swagger``."""
    return Response(swagger_html(model.name), media_type="text/html; charset=utf-8")


def swagger_asset_response(filename: str) -> Response:
    """``GET /v2/models/<name>/swagger/<filename>``, cacheable (the bundle does not change while serving)."""
    try:
        content, media_type = swagger_asset(filename)
    except KeyError:
        return json_error(404, f"no such asset {filename!r}")
    return Response(content, media_type=media_type, headers={"cache-control": "public, max-age=86400"})


def typed_handlers(model: ModelEndpoint) -> list[Handler]:
    """``(attribute name, handler, path, method)`` of this instance's typed routes.

    The default instance gets ``predict``, ``openapi.json``, ``swagger`` and the Swagger UI assets;
    a per-version instance (``MlflowRegistryRepository``) its own ``versions/<v>/predict`` and
    ``versions/<v>/openapi.json``.
    """
    base = f"/v2/models/{model.name}"

    async def sigaware_predict(
        body: bytes = Depends(raw_body), versions: Optional[dict[str, str]] = Depends(version_selector)
    ) -> Response:
        return await predict_response(model, body, versions)

    async def sigaware_openapi(versions: Optional[dict[str, str]] = Depends(version_selector)) -> Response:
        return await openapi_response(model, versions)

    if model.pinned_version:
        prefix = f"{base}/versions/{model.pinned_version}"
        return [
            ("sigaware_predict", sigaware_predict, f"{prefix}/predict", "POST"),
            ("sigaware_openapi", sigaware_openapi, f"{prefix}/openapi.json", "GET"),
        ]

    async def sigaware_swagger() -> Response:
        return swagger_page_response(model)

    handlers: list[Handler] = [
        ("sigaware_predict", sigaware_predict, f"{base}/predict", "POST"),
        ("sigaware_openapi", sigaware_openapi, f"{base}/openapi.json", "GET"),
        ("sigaware_swagger", sigaware_swagger, f"{base}/swagger", "GET"),
    ]
    for i, filename in enumerate(SWAGGER_ASSETS):
        handlers.append((f"sigaware_swagger_asset_{i}", _asset_handler(filename), f"{base}/swagger/{filename}", "GET"))
    return handlers


def _asset_handler(filename: str) -> Callable[..., Any]:
    async def handler() -> Response:
        return swagger_asset_response(filename)

    return handler
