"""The HTTP routes of the typed API, the OpenAPI document and the Swagger UI page, for ``routes.install``.

Same rules as ``routes.py`` (which see): literal paths under the model's own prefix (a path parameter
would make the first model answer for all), handlers that take only plain, picklable values (with
``parallel_workers`` >= 1 MLServer runs them in a worker), and fixed attribute names so that a worker's
instance of the model has the same handler. Each handler answers with a finished ``Response``: errors
included, so nothing reaches MLServer's error handler (no traceback in a body, statuses kept).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import orjson
from fastapi import Depends
from starlette.responses import Response

from .errors import SigawareError

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import SignatureAwareRuntime

__all__ = ["openapi_response", "predict_response", "swagger_asset_response", "swagger_page_response", "typed_handlers"]

VERSION_HEADER = "mlflow-model-version"
_JSON = "application/json"

Handler = tuple[str, Callable[..., Any], str, str]


def _error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=status, media_type=_JSON)


async def predict_response(model: "SignatureAwareRuntime", body: bytes, selector: Optional[str]) -> Response:
    """``POST .../predict``: the selected version's typed prediction."""
    from . import metrics
    from .typed import predict_typed

    try:
        served = await model.select(selector)
    except SigawareError as exc:
        return _error(exc.status_code, str(exc))
    status, content = predict_typed(served, body)
    version = served.version
    if version:
        metrics.requests().labels(model.name, version).inc()
    headers = {VERSION_HEADER: version} if version else None
    return Response(content, status_code=status, media_type=_JSON, headers=headers)


async def openapi_response(model: "SignatureAwareRuntime", selector: Optional[str]) -> Response:
    """``GET .../openapi.json``: the document of the selected version (the default one without a header)."""
    from .openapi import openapi_document

    try:
        served = await model.select(selector)
        document = openapi_document(served, model.name, model.version or None)
    except SigawareError as exc:
        return _error(exc.status_code, str(exc))
    except Exception as exc:  # a bug of ours: a clean 500
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")
    headers = {VERSION_HEADER: served.version} if served.version else None
    return Response(orjson.dumps(document), media_type=_JSON, headers=headers)


def swagger_page_response(model: "SignatureAwareRuntime") -> Response:
    """``GET /v2/models/<name>/swagger``."""
    from .swagger import swagger_html

    return Response(swagger_html(model.name), media_type="text/html; charset=utf-8")


def swagger_asset_response(filename: str) -> Response:
    """``GET /v2/models/<name>/swagger/<filename>``, cacheable (the bundle does not change while serving)."""
    from .swagger import swagger_asset

    try:
        content, media_type = swagger_asset(filename)
    except KeyError:
        return _error(404, f"no such asset {filename!r}")
    return Response(content, media_type=media_type, headers={"cache-control": "public, max-age=86400"})


def typed_handlers(model: "SignatureAwareRuntime") -> list[Handler]:
    """``(attribute name, handler, path, method)`` of this instance's routes, for ``routes.install``.

    The default instance gets ``predict``, ``openapi.json``, ``swagger`` and the Swagger UI assets;
    a per-version instance (``MlflowRegistryRepository``) its own ``versions/<v>/predict`` and
    ``versions/<v>/openapi.json``.
    """
    from .routes import raw_body, version_selector
    from .swagger import SWAGGER_ASSETS

    base = f"/v2/models/{model.name}"

    async def sigaware_predict(
        body: bytes = Depends(raw_body), selector: Optional[str] = Depends(version_selector)
    ) -> Response:
        return await predict_response(model, body, selector)

    async def sigaware_openapi(selector: Optional[str] = Depends(version_selector)) -> Response:
        return await openapi_response(model, selector)

    if model.version:
        prefix = f"{base}/versions/{model.version}"
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
