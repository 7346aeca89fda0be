"""Our models' V2 REST ``infer`` routes read their bodies themselves: binary tensors, and large requests fast.

MLServer 1.7.1's ``POST /v2/models/<name>[/versions/<v>]/infer`` is a FastAPI route: FastAPI parses the
body with orjson into Python objects, validates them into an :class:`InferenceRequest`, and after the model
validates and serializes the response again. Two things follow that this fix changes, for models served
by this runtime only (other runtimes on the same server keep MLServer's route untouched):

* **Triton's binary tensor extension** (:mod:`.binary_tensors`), what ``tritonclient.http`` sends by
  default, was a ``400 JSON decode error``. A body with an ``Inference-Header-Content-Length`` header is
  now read as the extension says (inputs as ndarrays), and outputs go back binary when the request asks;
* **large JSON bodies** are parsed without a Python float per value (:mod:`.v2_json`): the float arrays
  reach the model, or the inference worker's pipe, as ndarrays.

Everything else MLServer's route does is done the same way: the HTTP headers go into
``parameters.headers`` (our version selection reads them), :meth:`DataPlane.infer` runs the request
(metrics, request ids, CloudEvents headers, adaptive batching, the response cache), the response's
``parameters.headers`` become response headers, the JSON is MLServer's (same fields left out, same
encoder). A JSON body the fast parser does not take as it is (invalid JSON, a body pydantic refuses, a
``Content-Type`` that is not JSON) goes to MLServer's own route, which answers it as before; for models
with adaptive batching or the response cache, which handle only lists, arrays become lists first.
``MLSERVER_SIGAWARE_FAST_V2=false`` gives every request to MLServer's route (no binary tensors).
"""

from __future__ import annotations

import email.message
from typing import Any, Awaitable, Callable, Optional

import numpy as np
from pydantic import ValidationError

from ..settings import server_settings
from . import binary_tensors
from .request_limits import replay_body
from .v2_json import parse_v2_json

__all__ = ["ARRAYS_MARK", "MARKER", "apply", "install", "is_ours", "lists_only"]

#: Class attribute of a runtime whose models take this route (``SignatureAwareRuntime``).
MARKER = "sigaware_v2_rest"
#: Key of ``parameters.headers`` by which this route tells the runtime that it writes ndarray outputs
#: itself. Its value is ``True``, which no HTTP header or gRPC metadata can carry (theirs are text), so
#: a client cannot set it through MLServer's own routes.
ARRAYS_MARK = "x-sigaware-array-outputs"
_INSTALLED = "_sigaware_v2_infer"
_INFER_PATHS = (
    "/v2/models/{model_name}/infer",
    "/v2/models/{model_name}/versions/{model_version}/infer",
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _is_json(content_type: Optional[str]) -> bool:
    """FastAPI's rule for parsing a body as JSON (no Content-Type, or ``application/json`` / ``+json``)."""
    if not content_type or content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def is_ours(model: Any) -> bool:
    """Whether MLServer's ``model`` (a runtime, or the ``ParallelModel`` in front of it when there are
    inference workers) is served by this runtime; not via ``settings.implementation``, which imports the
    class again on every access."""
    runtime = getattr(model, "_model", model)
    return getattr(type(runtime), MARKER, False)


def lists_only(model: Any, data_plane: Any) -> bool:
    """Whether ``model``'s requests must hold lists: adaptive batching and the response cache merge,
    split and serialize ``data`` as lists only."""
    return hasattr(model, "__adaptive_batching__") or (
        data_plane._response_cache is not None and model.settings.cache_enabled is not False
    )


#: With inference workers, input arrays smaller than this go as lists (a small list pickles faster).
_PICKLED_ARRAY_MIN = 512


def _as_lists(request: Any, below: Optional[int] = None) -> None:
    """Arrays back to the lists MLServer's parsing makes (for adaptive batching and the response cache),
    or only those of fewer than ``below`` values."""
    for inp in request.inputs:
        root = inp.data.root
        if isinstance(root, np.ndarray) and (below is None or root.size < below):
            inp.data.root = root.tolist()


def _validation_error(exc: ValidationError) -> Exception:
    """Pydantic's refusal of a binary request's JSON header, raised as FastAPI raises a refused body."""
    from fastapi.exceptions import RequestValidationError

    return RequestValidationError([{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors()])


class InferRoute:
    """The ASGI app of an ``infer`` route: ours for this runtime's models, MLServer's (``original``) else."""

    def __init__(self, original: Callable[[Scope, Receive, Send], Awaitable[None]], data_plane: Any):
        self.original = original
        self.data_plane = data_plane

    async def _model(self, name: str, version: Optional[str], binary: bool) -> Any:
        from mlserver.errors import MLServerError

        try:
            model = await self.data_plane._model_registry.get_model(name, version)
        except MLServerError:
            if binary:  # a 404, as for the same request in JSON (MLServer's route would say "not JSON")
                raise
            return None  # MLServer's route answers (404)
        return model if is_ours(model) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.datastructures import Headers

        params = scope.get("path_params") or {}
        name, version = params.get("model_name"), params.get("model_version")
        headers = Headers(scope=scope)
        binary = binary_tensors.HEADER_LENGTH in headers
        model = await self._model(name, version, binary) if server_settings().fast_v2 else None
        if model is None:
            await self.original(scope, receive, send)
            return
        body = await _read_body(receive)
        header_length = headers.get(binary_tensors.HEADER_LENGTH)
        if header_length is not None:
            length = binary_tensors.parse_header_length(header_length, len(body))
            try:
                request = binary_tensors.parse_binary_request(body, length)
            except ValidationError as exc:
                raise _validation_error(exc) from None
        else:
            request = parse_v2_json(body) if body and _is_json(headers.get("content-type")) else None
            if request is None:  # MLServer's route parses it again and answers (its errors, its 400s)
                await self.original(scope, replay_body(body, receive), send)
                return
        del body
        await self._answer(scope, receive, send, request, model, dict(headers), name, version)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, request: Any, model: Any, headers: dict,
        name: str, version: Optional[str],
    ) -> None:
        from mlserver.utils import extract_headers, insert_headers
        from starlette.responses import Response

        data_plane = self.data_plane
        lists = lists_only(model, data_plane)
        if lists:
            _as_lists(request)
        elif hasattr(model, "_dispatcher"):  # MLServer's ParallelModel: the request is pickled to a worker
            _as_lists(request, below=_PICKLED_ARRAY_MIN)
        asked = binary_tensors.wants_binary(request)
        insert_headers(request, headers)
        if not lists:
            request.parameters.headers[ARRAYS_MARK] = True
        response = await data_plane.infer(request, name, version)
        response_headers = extract_headers(response) or {}
        document = binary_tensors.response_document(response)
        if asked["*"] or len(asked) > 1:
            content, json_length = binary_tensors.render_response(document, asked)
        else:
            content, json_length = binary_tensors.encode_json(document), None
        if json_length is None:
            reply = Response(content, media_type="application/json", headers=response_headers)
        else:
            response_headers = dict(response_headers)
            response_headers["Inference-Header-Content-Length"] = str(json_length)
            reply = Response(content, media_type="application/octet-stream", headers=response_headers)
        await reply(scope, receive, send)


def install(app: Any) -> None:
    """Wrap the ``infer`` routes of MLServer's app (once): see the module docstring."""
    for route in app.router.routes:
        if getattr(route, "path", None) not in _INFER_PATHS or isinstance(getattr(route, "app", None), InferRoute):
            continue
        endpoint = getattr(route, "endpoint", None)
        data_plane = getattr(getattr(endpoint, "__self__", None), "_data_plane", None)
        if data_plane is None:
            continue
        route.app = InferRoute(route.app, data_plane)


def apply() -> None:
    """Nothing to patch at import: :func:`install` runs where :mod:`.rest_app` installs our middleware."""
