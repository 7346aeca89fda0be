"""Which version a request asks for: its headers read, its selector validated before any work.

A selector is a version number (``"3"``) or an alias (``"@champion"``); it can only name versions of the
configured registered model, never a URI. Two headers may carry it: ours (``mlflow-model-version``) and
Ray Serve's multiplexing header (``serve_multiplexed_model_id``), so clients written for either work.
"""

from __future__ import annotations

from typing import Optional

from ..errors import InvalidInput
from ..model.location import validate_alias

__all__ = ["VERSION_HEADERS", "parse_selector", "selector_from_headers"]

#: Request headers that select a version: ours, and Ray Serve's multiplexing header.
VERSION_HEADERS = ("mlflow-model-version", "serve_multiplexed_model_id")


def selector_from_headers(headers: Optional[dict]) -> Optional[str]:
    """The version a request asks for (``"3"`` or ``"@alias"``), from its headers.

    Both headers may be sent (a client written for one, behind a proxy that adds the other); when they
    name different versions the request is refused (400 naming both) rather than one silently winning.
    """
    if not headers:
        return None
    found: dict[str, str] = {}
    for key in VERSION_HEADERS:
        value = headers.get(key)
        if value is None:
            value = headers.get(key.replace("_", "-"))
        if value is not None and str(value).strip():
            found[key] = str(value).strip()
    if len(set(found.values())) > 1:
        shown = " and ".join(f"{k}: {v!r}" for k, v in found.items())
        raise InvalidInput(
            f"conflicting version headers {shown}; send one of them, or the same version in both"
        )
    return next(iter(found.values()), None)


def parse_selector(value: Optional[str]) -> Optional[str]:
    """Validate a header's version selector early, so a bad one is a 400 before any work."""
    if value is None:
        return None
    if value.startswith("@"):
        validate_alias(value[1:])
    elif not value.isdigit():
        raise InvalidInput(
            f"invalid version selector {value!r}: expected a version number like '3' or an alias like '@champion'"
        )
    return value
