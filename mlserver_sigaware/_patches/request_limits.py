"""Every REST request passes one ASGI middleware that bounds it before MLServer or a route sees it.

MLServer 1.7.1 accepts a body of any size (a 200 MB body costs +2 GB of RSS), inflates a
``Content-Encoding: gzip`` body without a bound (261 kB became 256 MB) and with an unhandled error on a
body that is not gzip (a 500 with a Starlette traceback in the body under ``debug``), and lets JSON nested
10,000 deep reach Python's recursive parser (a plain-text 500 ``RecursionError`` on ``/invocations``).
:class:`RequestLimits` answers all of these itself, on every route, with a JSON body:

* ``Content-Length`` above :attr:`~..settings.ServerSettings.max_body_bytes`: 413 before one byte of the
  body is read; a chunked body: 413 as soon as it grows past the limit;
* ``Content-Encoding`` ``gzip``/``x-gzip``/``deflate`` decoded here, incrementally, 413 as soon as the
  output passes :attr:`~..settings.ServerSettings.max_decompressed_bytes`; a body that is not what its
  encoding says: 400; another encoding: 415. Downstream sees the decoded body and no encoding header;
* a JSON body (``Content-Type`` with ``json``, or none) nested deeper than
  :attr:`~..settings.ServerSettings.max_json_depth`: 400, before anything parses it (:func:`json_depth`;
  of a binary tensor body, its JSON header);
* an exception that escapes the application: 500 ``{"error": "internal error"}``, logged once with its
  traceback, never sent (Starlette's debug page would send it);
* one log line per refused request (:func:`~..logs.log_rejected`): status, route, model, version and the
  reason, read from the error body the client got.

Error bodies follow the route: MLflow's ``{"error_code", "message"}`` on ``.../invocations``, V2's
``{"error"}`` elsewhere. The request's body is read once, here, and handed on as a single message, so
the application's own ``await request.body()`` holds no second copy.
"""

from __future__ import annotations

import json
import logging
import re
import zlib
from typing import Any, Awaitable, Callable, Optional

import numpy as np
import orjson

from ..logs import REQUEST_ID, RequestId, log_rejected
from ..settings import ServerSettings, server_settings
from .v2_json import data_arrays

__all__ = ["RequestLimits", "json_depth", "replay_body"]

logger = logging.getLogger("mlserver.sigaware")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Response header naming the registry version that answered (protocols/http.py sets it).
_VERSION_HEADER = b"mlflow-model-version"
#: Of a refused request's answer, what is kept to name the reason in the log line.
_KEPT_ERROR_BYTES = 16384
_MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?")
_REQUEST_ID_CHARS = re.compile(r"^[\x21-\x7e]+$")

# ------------------------------------------------------------------------------------- JSON depth

#: Every byte but the five that shape a JSON document: deleted to get its skeleton.
_NOT_STRUCTURAL = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_STEP = np.zeros(256, dtype=np.int8)
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_QUOTE = ord('"')
_CHUNK = 1 << 22
_CURLY_AS_SQUARE = bytes.maketrans(b"{}", b"[]")


def json_depth(body: bytes, limit: int) -> int:
    """How deep ``body``'s arrays and objects nest, counted up to just past ``limit`` (it stops there).

    Without parsing: escaped characters are dropped, every byte but ``" [ ] { }`` is deleted
    (``bytes.translate``, ~1 ns a byte) and adjacent quote pairs (the strings, now empty) are removed.
    What is left is, in the usual case, brackets only: each pass of ``replace(b"[]", b"")`` (C speed)
    removes exactly one level, so the passes count the depth. Where a string held a bracket (a quote is
    left), a running sum over the skeleton that skips brackets between an odd number of quotes gives it
    (numpy). A 35 MB ``dataframe_records`` body takes ~50 ms (orjson parses it in ~220 ms); a small
    request ~2 µs. Long flat ``"data"`` arrays (a V2 body's numbers) are cut first
    (:func:`_without_flat_data`): a 10,000-row V2 body takes ~0.05 ms instead of ~0.2 ms. Invalid JSON
    gets some number: the parser that runs next refuses it anyway.
    """
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    elif len(body) >= _CUT_FROM:
        body = _without_flat_data(body)
    skeleton = body.translate(None, _NOT_STRUCTURAL).replace(b'""', b"")
    if b'"' not in skeleton:
        level = skeleton.translate(_CURLY_AS_SQUARE)
        depth = 0
        while level:
            shorter = level.replace(b"[]", b"")
            if len(shorter) == len(level):
                break  # unbalanced (a truncated body): counted exactly below
            level = shorter
            depth += 1
            if depth > limit:
                return depth
        if not level:
            return depth
    marks = np.frombuffer(skeleton, dtype=np.uint8)
    depth = quotes = deepest = 0
    for start in range(0, len(marks), _CHUNK):
        part = marks[start : start + _CHUNK]
        inside = (np.cumsum(part == _QUOTE, dtype=np.int64) + quotes) & 1
        steps = _STEP[part]
        steps[inside.astype(bool)] = 0
        running = np.cumsum(steps, dtype=np.int64) + depth
        deepest = max(deepest, int(running.max()))
        if deepest > limit:
            return deepest
        depth = int(running[-1])
        quotes += int(np.count_nonzero(part == _QUOTE))
    return deepest


_NUMPY_COUNT_FROM = 4096
#: Bodies from this size on have their long flat ``"data"`` arrays cut before the walk.
_CUT_FROM = 4096
_MIN_FLAT_BYTES = 256


def _without_flat_data(body: bytes) -> bytes:
    """``body`` with each long flat array under a ``"data"`` key (``[`` to the first ``]``, no ``[ { "``
    between) replaced by ``[]``: the same depth, and a V2 body's numbers need no walk.

    In valid JSON without a backslash every ``"data"`` is that very string (a string cannot hold a
    quote), so the cut is exact; in invalid JSON it removes only what lies between an open and the next
    close, which can raise the count but never lower it. The arrays are found by
    :func:`~.v2_json.data_arrays` (memchr speed): a 660 kB body of 13 such arrays takes ~0.05 ms
    instead of the walk's ~0.2 ms."""
    pieces: list[bytes] = []
    pos = 0
    for start, end in data_arrays(body, _MIN_FLAT_BYTES):
        if any(body.find(c, start + 1, end) >= 0 for c in (b"[", b"{", b'"')):
            continue
        pieces.append(body[pos : start + 1])
        pos = end
    if not pieces:
        return body
    pieces.append(body[pos:])
    return b"".join(pieces)


def _opens(body: bytes) -> int:
    """How many ``[`` and ``{`` ``body`` holds: a bound of its depth, so most bodies need no walk.
    (numpy on large bodies: a compare per byte is ~5x faster than two ``bytes.count``.)"""
    if len(body) < _NUMPY_COUNT_FROM:
        return body.count(b"[") + body.count(b"{")
    marks = np.frombuffer(body, dtype=np.uint8)
    return int(np.count_nonzero(marks == ord("["))) + int(np.count_nonzero(marks == ord("{")))


# ---------------------------------------------------------------------------------------- helpers


class _Refused(Exception):
    def __init__(self, status: int, message: str, error_code: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


#: The request headers the middleware reads (ASGI gives header names in lower case).
_WANTED = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"content-encoding",
        b"content-type",
        b"x-request-id",
        b"inference-header-content-length",
    }
)


def _headers(scope: Scope) -> dict[bytes, str]:
    """The few headers we read, in one pass (``content-encoding`` values joined by commas)."""
    found: dict[bytes, str] = {}
    for key, value in scope.get("headers") or ():
        if key in _WANTED:
            text = value.decode("latin-1")
            found[key] = f"{found[key]},{text}" if key in found else text
    return found


def _is_json(content_type: Optional[str]) -> bool:
    return content_type is None or "json" in content_type.lower()


def _json_part(body: bytes, headers: dict[bytes, str]) -> bytes:
    """The JSON of a body: all of it, or the header of Triton's binary tensor extension (the bytes after
    it are raw tensors, whose bytes may look like brackets). A header length that does not fit the body
    leaves nothing to check here: the V2 route refuses it (400)."""
    length = headers.get(b"inference-header-content-length")
    if length is None:
        return body
    length = length.strip()
    return body[: int(length)] if length.isdigit() and int(length) <= len(body) else b""


def _is_scoring(path: str) -> bool:
    return path.endswith("/invocations")


def _error_body(path: str, status: int, message: str, error_code: str) -> bytes:
    if _is_scoring(path):  # MLflow's MlflowException.serialize_as_json shape (stdlib json separators)
        return json.dumps({"error_code": error_code, "message": message}).encode("utf-8")
    return orjson.dumps({"error": message})


def _reason(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace").strip() or "(empty body)"
    if isinstance(doc, dict):
        for key in ("error", "message", "detail"):
            if key in doc:
                value = doc[key]
                return value if isinstance(value, str) else orjson.dumps(value).decode()
    return body.decode("utf-8", errors="replace")


def _model_of(path: str) -> tuple[Optional[str], Optional[str]]:
    found = _MODEL_PATH.match(path)
    if not found:
        return None, None
    return found.group(1), found.group(2)


def request_id_of(headers: dict[bytes, str], max_length: int) -> RequestId:
    """The client's ``x-request-id`` when it is a sane one, else a new id made when a log line needs it."""
    given = headers.get(b"x-request-id")
    if given and len(given) <= max_length and _REQUEST_ID_CHARS.match(given):
        return RequestId(given)
    return RequestId(None)


class _Decoder:
    """One ``Content-Encoding`` layer, decoded incrementally within a byte budget."""

    def __init__(self, encoding: str, budget: int):
        self.encoding = encoding
        self.budget = budget
        self.produced = 0
        self._wbits = 31 if encoding in ("gzip", "x-gzip") else 15
        self._inflater = zlib.decompressobj(self._wbits)

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        pending = data
        while True:
            if self._inflater.eof:
                # gzip allows several members one after the other: decode each (trailing garbage: 400)
                pending = self._inflater.unused_data + pending
                if not pending:
                    break
                self._inflater = zlib.decompressobj(self._wbits)
            before = pending
            try:
                # at most 1 MiB per step (the output held is the budget, not twice it); an empty input
                # still drains output zlib holds back from the previous step
                chunk = self._inflater.decompress(pending, min(_INFLATE_STEP, self.budget + 1 - self.produced))
            except zlib.error as exc:
                raise _Refused(
                    400, f"request body is not valid {self.encoding} data (Content-Encoding: {self.encoding}): {exc}",
                    "BAD_REQUEST",
                ) from None
            self.produced += len(chunk)
            if self.produced > self.budget:
                raise _Refused(
                    413,
                    f"request body inflates past {self.budget} bytes (Content-Encoding: {self.encoding}); "
                    f"the limit is MLSERVER_SIGAWARE_MAX_DECOMPRESSED_BYTES",
                    "RESOURCE_EXHAUSTED",
                )
            if chunk:
                out.append(chunk)
            pending = self._inflater.unconsumed_tail
            # (a member that ends here with no output, e.g. an empty one, may be followed by another:
            # the top of the loop takes it from unused_data)
            if not chunk and not self._inflater.eof and (not pending or pending == before):
                break
        return b"".join(out)

    def finish(self) -> None:
        if not self._inflater.eof:
            raise _Refused(
                400,
                f"request body is not valid {self.encoding} data (Content-Encoding: {self.encoding}): truncated",
                "BAD_REQUEST",
            )


_SUPPORTED_ENCODINGS = ("gzip", "x-gzip", "deflate")
_INFLATE_STEP = 1 << 20


def _encodings(header: Optional[str]) -> list[str]:
    """The body's content codings, in the order they were applied (``identity`` dropped)."""
    if not header:
        return []
    found = [e.strip().lower() for e in header.split(",") if e.strip()]
    found = [e for e in found if e != "identity"]
    unsupported = [e for e in found if e not in _SUPPORTED_ENCODINGS]
    if unsupported:
        raise _Refused(
            415,
            f"Content-Encoding {unsupported[0]!r} is not supported; send the body as is, or gzip or deflate",
            "BAD_REQUEST",
        )
    return found


# ------------------------------------------------------------------------------------- middleware


class RequestLimits:
    """The ASGI middleware described in the module docstring (installed by :mod:`.rest_app`)."""

    def __init__(self, app: Any, settings: Optional[ServerSettings] = None):
        self.app = app
        self._settings = settings

    @property
    def settings(self) -> ServerSettings:
        return self._settings or server_settings()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        headers = _headers(scope)
        token = REQUEST_ID.set(request_id_of(headers, settings.max_request_id_length))
        watch = _ResponseWatch(scope, send)
        try:
            try:
                scope, receive = await self._bounded(scope, headers, receive, settings)
            except _Refused as refused:
                await watch.refuse(refused)
                return
            except _ClientGone:
                return
            try:
                await self.app(scope, receive, watch.send)
            except Exception:
                logger.exception("unexpected error while answering %s %s", scope.get("method"), scope.get("path"))
                if not watch.started:
                    await watch.refuse(_Refused(500, "internal error", "INTERNAL_ERROR"), log=False)
                return
            watch.log()
        finally:
            REQUEST_ID.reset(token)

    async def _bounded(
        self, scope: Scope, headers: dict[bytes, str], receive: Receive, settings: ServerSettings
    ) -> tuple[Scope, Receive]:
        """``(scope, receive)`` of the request with its body read, decoded and checked (or ``_Refused``)."""
        limit = settings.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            raise _Refused(
                413,
                f"request body is {int(length)} bytes, larger than the {limit} accepted "
                f"(MLSERVER_SIGAWARE_MAX_BODY_BYTES)",
                "RESOURCE_EXHAUSTED",
            )
        has_body = (length is not None and length.strip() not in ("", "0")) or b"transfer-encoding" in headers
        if not has_body:
            return scope, receive
        encodings = _encodings(headers.get(b"content-encoding"))
        decoders = [_Decoder(e, settings.max_decompressed_bytes) for e in reversed(encodings)]
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone()
            data = message.get("body", b"")
            received += len(data)
            if received > limit:
                raise _Refused(
                    413,
                    f"request body is larger than the {limit} bytes accepted (MLSERVER_SIGAWARE_MAX_BODY_BYTES)",
                    "RESOURCE_EXHAUSTED",
                )
            for decoder in decoders:
                data = decoder.feed(data)
            if data:
                chunks.append(data)
            if not message.get("more_body", False):
                break
        for decoder in decoders:
            decoder.finish()
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        del chunks
        if body and (_is_json(headers.get(b"content-type")) or b"inference-header-content-length" in headers):
            part = _json_part(body, headers)
            if _opens(part) > settings.max_json_depth and json_depth(part, settings.max_json_depth) > settings.max_json_depth:
                raise _Refused(
                    400,
                    f"request body: JSON nested deeper than {settings.max_json_depth} levels "
                    f"(MLSERVER_SIGAWARE_MAX_JSON_DEPTH)",
                    "BAD_REQUEST",
                )
        if encodings:
            headers = [
                (k, v) for k, v in scope["headers"] if k.lower() not in (b"content-encoding", b"content-length")
            ]
            headers.append((b"content-length", str(len(body)).encode("ascii")))
            scope = dict(scope, headers=headers)
        return scope, replay_body(body, receive)


class _ClientGone(Exception):
    pass


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the application the whole body once, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _ResponseWatch:
    """Passes the response on, noting its status and (for an error) the reason, for one log line."""

    def __init__(self, scope: Scope, send: Send):
        self.scope = scope
        self._send = send
        self.started = False
        self.status = 0
        self.version: Optional[str] = None
        self._error = bytearray()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.status = int(message["status"])
            for key, value in message.get("headers") or ():
                if key.lower() == _VERSION_HEADER:
                    self.version = value.decode("latin-1")
        elif kind == "http.response.body" and self.status >= 400 and len(self._error) < _KEPT_ERROR_BYTES:
            self._error += message.get("body", b"")[: _KEPT_ERROR_BYTES - len(self._error)]
        await self._send(message)

    async def refuse(self, refused: _Refused, log: bool = True) -> None:
        path = self.scope.get("path", "")
        body = _error_body(path, refused.status, refused.message, refused.error_code)
        await self._send(
            {
                "type": "http.response.start",
                "status": refused.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await self._send({"type": "http.response.body", "body": body, "more_body": False})
        self.started = True
        self.status = refused.status
        if log:
            self._log(refused.message)

    def log(self) -> None:
        if self.status >= 400:
            self._log(_reason(bytes(self._error)))

    def _log(self, reason: str) -> None:
        path = self.scope.get("path", "")
        model, path_version = _model_of(path)
        route = f"{self.scope.get('method', '')} {path}"
        version = self.version or path_version
        if self.status >= 500:
            logger.error("failed %d %s model=%s version=%s: %s", self.status, route, model or "-", version or "-",
                         " ".join(reason.split())[:500])
        else:
            log_rejected(self.status, route, model, version, reason)
