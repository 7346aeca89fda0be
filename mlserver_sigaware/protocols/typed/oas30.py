"""JSON Schema as pydantic writes it (draft 2020-12) -> OpenAPI 3.0 Schema Objects.

Why 3.0 and not 3.1 (which is JSON Schema itself): the Swagger UI we can serve offline
(``swagger-ui-bundle``, Swagger UI 4.15) renders only OpenAPI 3.0 documents. 3.0 has no ``null`` type
(``nullable: true`` instead), no ``const``, boolean ``exclusiveMinimum``, ``example`` instead of
``examples``, and ignores siblings of ``$ref``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["to_oas30"]

_NULL = {"type": "null"}
_DROPPED = frozenset({"$schema", "$id", "$defs", "definitions"})


def to_oas30(node: Any) -> Any:
    """A copy of ``node`` (a schema, or anything holding schemas) in OpenAPI 3.0's dialect."""
    if isinstance(node, list):
        return [to_oas30(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "examples" and isinstance(value, list):
            if value:
                out["example"] = value[0]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key in ("properties", "patternProperties"):
            out[key] = {name: to_oas30(s) for name, s in value.items()}
        else:
            out[key] = to_oas30(value)
    if out.get("type") == "null":
        del out["type"]
        out.update(nullable=True, enum=[None])
    for key in ("anyOf", "oneOf"):
        if key in out:
            _fold_null(out, key)
    return out


def _fold_null(out: dict[str, Any], key: str) -> None:
    """``anyOf: [X, {"type": "null"}]`` -> X with ``nullable: true``."""
    branches = out[key]
    rest = [b for b in branches if b != {"nullable": True, "enum": [None]} and b != _NULL]
    if len(rest) == len(branches):
        return
    out["nullable"] = True
    if len(rest) != 1:
        out[key] = rest
        return
    del out[key]
    only = rest[0]
    if "$ref" in only:
        out["allOf"] = [only]  # 3.0 ignores siblings of $ref: wrap it
    else:
        for k, v in only.items():
            out.setdefault(k, v)
