"""Our REST fixes reach MLServer's FastAPI app whenever this package is imported, early or late.

MLServer builds its app (and copies its exception handlers into it) when the server object is created,
before it imports any model's runtime: with a plain ``mlserver start .`` our package is imported only
when the first model loads, after the app exists, so the module-level ``_EXCEPTION_HANDLERS`` entry of
:mod:`.validation_errors` came too late and MLServer kept answering FastAPI's 422. This module installs
our middleware (:class:`.request_limits.RequestLimits`) and exception handlers both ways:

* early (settings.json names ``mlserver_sigaware.MlflowRegistryRepository``, imported with the
  settings): by wrapping the ``create_app`` that ``RESTServer`` calls;
* late (plain ``mlserver start``): when MLServer adds a model's custom handlers to the app (every model
  of this runtime has some), which happens before the model is served; the app's middleware stack is then
  rebuilt on its next request. Requests answered before the first model of this runtime loaded are
  MLServer's alone (health probes, mostly).
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply", "install"]

_MARK = "_sigaware_installed"


def install(app: Any) -> None:
    """Add our middleware and exception handlers to ``app`` (once)."""
    if getattr(app, _MARK, False):
        return
    from fastapi.exceptions import RequestValidationError
    from starlette.middleware import Middleware

    from .request_limits import RequestLimits
    from .validation_errors import validation_error_handler

    # Outermost of the app's own middleware (inside only Starlette's ServerErrorMiddleware): bodies are
    # bounded before MLServer's GZip, Prometheus and routing see them, and no exception reaches the
    # debug page that would print a traceback.
    app.user_middleware.insert(0, Middleware(RequestLimits))
    app.exception_handlers[RequestValidationError] = validation_error_handler
    app.middleware_stack = None  # rebuilt (with the above) on the next request
    setattr(app, _MARK, True)


def apply() -> None:
    from mlserver.rest import server as rest_server

    if getattr(rest_server.RESTServer, _MARK, False):
        return
    original_create_app = rest_server.create_app
    original_add = rest_server.RESTServer.add_custom_handlers

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = original_create_app(*args, **kwargs)
        install(app)
        return app

    async def add_custom_handlers(self: Any, model: Any) -> Any:
        install(self._app)
        return await original_add(self, model)

    rest_server.create_app = create_app
    rest_server.RESTServer.add_custom_handlers = add_custom_handlers  # type: ignore[method-assign]
    setattr(rest_server.RESTServer, _MARK, True)
