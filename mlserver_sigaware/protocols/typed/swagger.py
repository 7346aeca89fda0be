"""A Swagger UI page per model that works offline: its assets come from the installed
``swagger-ui-bundle`` package (Swagger UI 4.15.5), never from a CDN.

MLServer's own ``/v2/models/<name>/docs`` page loads Swagger UI from a CDN (blank without internet) and
documents the generic V2 API. Ours, at ``GET /v2/models/<name>/swagger``, loads
``/v2/models/<name>/openapi.json`` (:mod:`.openapi`) and the assets from
``/v2/models/<name>/swagger/<asset>``: every route lives under the model's own prefix, the only one
Seldon Core's mesh forwards (see :mod:`mlserver_sigaware.protocols.routes`). Swagger UI's online validator badge is switched off
(``validatorUrl: null``), so the page makes no request outside the server.
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from typing import Optional
from urllib.parse import quote

__all__ = ["SWAGGER_ASSETS", "swagger_asset", "swagger_html", "swagger_ui_version"]

#: The asset files the page loads; each needs a route ``GET /v2/models/<name>/swagger/<file>``.
SWAGGER_ASSETS: tuple[str, ...] = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

_MEDIA_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
#: The bundle's ``sourceMappingURL`` comments name .map files we do not serve (404s in devtools).
_SOURCE_MAP = re.compile(rb"\n?(//# sourceMappingURL=\S+|/\*# sourceMappingURL=\S+ ?\*/)\s*$")


def _asset_dir():
    from swagger_ui_bundle import swagger_ui_path

    return swagger_ui_path


def swagger_ui_version() -> str:
    """Version of the bundled Swagger UI (its folder is named ``swagger-ui-<version>``)."""
    return str(_asset_dir().name).rsplit("-", 1)[-1]


@lru_cache(maxsize=None)
def swagger_asset(filename: str) -> tuple[bytes, str]:
    """``(content, media type)`` of one of :data:`SWAGGER_ASSETS`; ``KeyError`` for any other name
    (no path is ever built from a request)."""
    if filename not in SWAGGER_ASSETS:
        raise KeyError(filename)
    path = _asset_dir() / filename
    content = path.read_bytes()
    if filename.endswith((".js", ".css")):
        content = _SOURCE_MAP.sub(b"\n", content)
    return content, _MEDIA_TYPES[filename[filename.rindex(".") :]]


def model_prefix(model_name: str, version: Optional[str] = None) -> str:
    """URL path prefix of a model (name percent-encoded), e.g. ``/v2/models/wine``."""
    prefix = f"/v2/models/{quote(model_name, safe='')}"
    return prefix + (f"/versions/{quote(version, safe='')}" if version else "")


def swagger_html(model_name: str, version: Optional[str] = None) -> str:
    """The page for ``GET /v2/models/<name>/swagger`` (with ``version``: that version's document)."""
    assets = f"{model_prefix(model_name)}/swagger"
    config = {
        "url": f"{model_prefix(model_name, version)}/openapi.json",
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "docExpansion": "list",
        "defaultModelsExpandDepth": 0,
        "tryItOutEnabled": True,
        "validatorUrl": None,
    }
    title = html.escape(f"{model_name}" + (f" version {version}" if version else "") + " - Swagger UI")
    # JSON in a <script>: escape "<" so a model name cannot close the script element.
    config_js = json.dumps(config).replace("<", "\\u003c")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="{html.escape(assets)}/swagger-ui.css">
<link rel="icon" type="image/png" href="{html.escape(assets)}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{html.escape(assets)}/swagger-ui-bundle.js" charset="utf-8"></script>
<script>
window.ui = SwaggerUIBundle({config_js});
</script>
</body>
</html>
"""
