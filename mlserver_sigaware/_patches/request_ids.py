"""A V2 request ``id`` is echoed into response headers only when a header can carry it; else a 400.

MLServer 1.7.1's CloudEvents middleware copies the request's ``id`` into the ``Ce-Id`` and
``Ce-Requestid`` response headers (REST) and trailing metadata (gRPC) whatever it is: a 1 MB id made a
1 MB header line that ordinary HTTP clients refuse to read (``LineTooLong``: the request "failed" after
the model ran), and an id with a newline or a non-Latin-1 character made the response itself fail (a
500 with a traceback). The id is checked before the model runs: longer than
:attr:`~..settings.ServerSettings.max_request_id_length`, or with a character outside printable ASCII, it
is a 400 naming ``id`` (gRPC ``INVALID_ARGUMENT``).
"""

from __future__ import annotations

import re
from typing import Any, Optional

from ..errors import InvalidInput
from ..settings import server_settings

__all__ = ["apply", "check_request_id"]

_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")


def check_request_id(request_id: Optional[str]) -> None:
    """400 for an id no response header can carry (too long, or not printable ASCII)."""
    if request_id is None:
        return
    limit = server_settings().max_request_id_length
    if len(request_id) > limit:
        raise InvalidInput(
            f"id: the request id is {len(request_id)} characters long, at most {limit} are accepted "
            f"(MLSERVER_SIGAWARE_MAX_REQUEST_ID_LENGTH)"
        )
    if not _PRINTABLE.match(request_id):
        raise InvalidInput("id: the request id must be printable ASCII (it is echoed in the Ce-Id response header)")


def apply() -> None:
    """Checked where MLServer prepares a request for the model (``DataPlane._prepare_payload``, REST and
    gRPC alike), before it gives an id-less request a generated UUID and the CloudEvents middleware
    copies the id into headers: only the client's own id is judged."""
    from mlserver.handlers.dataplane import DataPlane

    if getattr(DataPlane, "_sigaware_request_ids", False):
        return
    original = DataPlane._prepare_payload

    def _prepare_payload(self: Any, payload: Any, model: Any) -> Any:
        check_request_id(payload.id)
        return original(self, payload, model)

    DataPlane._prepare_payload = _prepare_payload  # type: ignore[method-assign]
    DataPlane._sigaware_request_ids = True  # type: ignore[attr-defined]
