"""What every HTTP route of ours shares: how it is registered with MLServer and what it may take.

Why routes are registered per model instance, under literal paths: MLServer registers a model's custom
handlers as FastAPI routes, and a route with a ``{model_name}`` path parameter, or the same literal path
registered by two models, is answered by whichever model registered first, for every model
(SeldonIO/MLServer#215, #260). So each instance gets literal routes under its own name
(``/v2/models/<name>/...``, the only prefix Seldon Core's mesh forwards).

Why handlers take plain values: with ``parallel_workers`` >= 1, MLServer pickles a handler's arguments to
an inference worker; a ``fastapi.Request`` cannot be pickled and the request hangs forever. FastAPI
dependencies run in the server process, so :func:`raw_body` and :func:`version_selector` read the body
and headers there and pass bytes/str on.

Why handlers answer with finished responses: errors included, so nothing reaches MLServer's error
handler (no traceback in a body, statuses kept).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

import orjson
from mlserver.handlers.custom import CustomHandler, register_custom_handler
from starlette.requests import Request
from starlette.responses import Response

from ..model.served import ServedModel
from ..settings import SigawareSettings
from ..versions.selectors import VERSION_HEADERS, selector_from_headers

__all__ = [
    "JSON",
    "VERSION_HEADER",
    "Handler",
    "ModelEndpoint",
    "json_error",
    "raw_body",
    "register",
    "selected",
    "version_headers",
    "version_selector",
]

#: Response header (REST) naming the registry version that answered.
VERSION_HEADER = "mlflow-model-version"
JSON = "application/json"

#: ``(attribute name, handler, path, method)`` of one route of one model instance.
Handler = tuple[str, Callable[..., Any], str, str]


class ModelEndpoint(Protocol):
    """What a protocol needs of the model it serves (the runtime, seen from the protocols)."""

    name: str
    config: SigawareSettings

    @property
    def pinned_version(self) -> Optional[str]:
        """The registry version this instance is pinned to (a per-version instance), else None."""

    async def select(self, selector: Optional[str]) -> ServedModel:
        """The loaded version that answers a request with this version selector."""


async def raw_body(request: Request) -> bytes:
    """The request body as bytes, read in the server process (a Request cannot cross to a worker)."""
    return await request.body()


async def version_selector(request: Request) -> Optional[dict[str, str]]:
    """The request's version headers (``mlflow-model-version`` / ``serve_multiplexed_model_id``), as sent.

    Read here, judged by the handler (:func:`selected`): two headers that disagree are the client's
    mistake, answered in the route's own error shape (MLflow's on ``/invocations``).
    """
    wanted = {h for v in VERSION_HEADERS for h in (v, v.replace("_", "-"))}
    found = {k: v for k, v in request.headers.items() if k in wanted}
    return found or None


def selected(headers: Optional[dict[str, str]]) -> Optional[str]:
    """The version selector of :func:`version_selector`'s headers (400 when they conflict)."""
    return selector_from_headers(headers)


def version_headers(served: ServedModel) -> Optional[dict[str, str]]:
    """The response headers that name the version that answered (none for a non-registry model)."""
    return {VERSION_HEADER: served.version} if served.version else None


def json_error(status: int, message: str) -> Response:
    """A ``{"error": message}`` answer, the shape of every V2 error body."""
    return Response(orjson.dumps({"error": message}), status_code=status, media_type=JSON)


def register(name: str, fn: Callable[..., Any], path: str, method: str) -> Callable[..., Any]:
    """Tag ``fn`` as MLServer's custom handler for ``method path``, named ``name``.

    The name is the attribute the handler is stored under on the model instance: a worker process's
    instance of the same model has a handler of the same name for the server process to call.
    """
    fn.__name__ = name
    fn.__qualname__ = name
    register_custom_handler(CustomHandler(rest_path=path, rest_method=method), fn)
    return fn
