"""The MLflow scoring protocol's HTTP routes, registered per model instance.

Why per instance: MLServer registers a model's custom handlers as FastAPI routes. A route with a
``{model_name}`` path parameter, or the same literal path registered by two models, is answered by
whichever model registered first, for every model (SeldonIO/MLServer#215, #260). So each instance
gets literal routes under its own name (``/v2/models/<name>/invocations``, the only prefix Seldon Core's
mesh forwards), and the bare ``/invocations`` consults :data:`DIRECTORY` to find the one model it may
serve.

Why plain values: with ``parallel_workers`` >= 1, MLServer pickles a handler's arguments to an
inference worker; a ``fastapi.Request`` cannot be pickled and the request hangs forever. FastAPI
dependencies run in the server process, so we read the body and headers there and pass bytes/str on.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Optional

from fastapi import Depends, Header
from mlserver.handlers.custom import CustomHandler, register_custom_handler
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import SignatureAwareRuntime


async def raw_body(request: Request) -> bytes:
    """The request body as bytes, read in the server process (a Request cannot cross to a worker)."""
    return await request.body()


async def version_selector(request: Request) -> Optional[str]:
    """The version a request's headers select (``mlflow-model-version`` / ``serve_multiplexed_model_id``)."""
    from .versions import selector_from_headers

    return selector_from_headers(dict(request.headers))


class ModelDirectory:
    """Which runtimes are loaded in this process, for the bare ``/invocations`` route.

    Lives in a module that MLServer does not reload (it re-imports only the implementation's own
    module when it builds an instance), so all instances in a process share it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, "SignatureAwareRuntime"] = {}

    def add(self, model: "SignatureAwareRuntime") -> None:
        with self._lock:
            self._models[model.name] = model

    def remove(self, model: "SignatureAwareRuntime") -> None:
        with self._lock:
            if self._models.get(model.name) is model:
                del self._models[model.name]

    def default(self) -> tuple[Optional["SignatureAwareRuntime"], list[str]]:
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


def _handler(name: str, fn: Callable[..., Any], path: str, method: str) -> Callable[..., Any]:
    fn.__name__ = name
    fn.__qualname__ = name
    register_custom_handler(CustomHandler(rest_path=path, rest_method=method), fn)
    return fn


def install(model: "SignatureAwareRuntime") -> None:
    """Attach this instance's route handlers as instance attributes MLServer will discover.

    Attribute names are fixed, so a worker process's instance of the same model has a method of the
    same name for the server process to call.
    """
    base = f"/v2/models/{model.name}"

    async def sigaware_invocations(
        body: bytes = Depends(raw_body),
        content_type: Optional[str] = Header(default=None),
        selector: Optional[str] = Depends(version_selector),
    ) -> Response:
        return await model.invocations(body, content_type, selector)

    async def sigaware_root_invocations(
        body: bytes = Depends(raw_body),
        content_type: Optional[str] = Header(default=None),
        selector: Optional[str] = Depends(version_selector),
    ) -> Response:
        target, names = DIRECTORY.default()
        if target is None:
            return model.no_default_model(names)
        return await target.invocations(body, content_type, selector)

    async def sigaware_ping() -> Response:
        return model.ping()

    async def sigaware_version() -> Response:
        return model.mlflow_version()

    # Each route needs its own function object to carry its tag, hence the near-twins.
    async def sigaware_health() -> Response:
        return model.ping()

    async def sigaware_model_ping() -> Response:
        return model.ping()

    async def sigaware_model_health() -> Response:
        return model.ping()

    async def sigaware_model_version() -> Response:
        return model.mlflow_version()

    if model.version:
        # A per-version instance (listed by MlflowRegistryRepository) answers only its own route;
        # the unversioned routes belong to the default instance.
        handlers = [("sigaware_invocations", sigaware_invocations,
                     f"{base}/versions/{model.version}/invocations", "POST")]
    else:
        handlers = [
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
    from .typed_routes import typed_handlers

    handlers += typed_handlers(model)
    for attr, fn, path, method in handlers:
        setattr(model, attr, _handler(attr, fn, path, method))
