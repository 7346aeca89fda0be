"""A V2 body that fails validation is a 400 naming the field, not FastAPI's bare 422.

MLServer 1.7.1 validates a V2 body (unknown ``datatype``, missing ``shape``...) into pydantic models
before any runtime runs, and answers FastAPI's 422 ``{"detail": [...]}``: a different status and shape
from every other bad input. We answer 400 ``{"error": "inputs[0].datatype: ..."}``.
"""

from __future__ import annotations

__all__ = ["apply", "format_validation_error", "validation_error_handler"]


def format_validation_error(exc) -> str:
    """``inputs[0].datatype: Input should be ...`` for each failing field of a V2 body."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        path = "body" if loc and loc[0].isdigit() else ""
        for p in loc:
            path += f"[{p}]" if p.isdigit() else (f".{p}" if path else p)
        message = err.get("msg", "invalid")
        detail = (err.get("ctx") or {}).get("error")
        if err.get("type") == "json_invalid" and detail:
            message = f"request body is not valid JSON: {detail}"
        parts.append(f"{path or 'body'}: {message}")
    return "; ".join(parts) or "invalid request body"


async def validation_error_handler(request, exc):
    from mlserver.rest.errors import APIErrorResponse
    from mlserver.rest.responses import Response

    body = APIErrorResponse(error=format_validation_error(exc))
    return Response(status_code=400, content=body.model_dump())


def apply() -> None:
    """MLServer builds its FastAPI app from the module-level ``_EXCEPTION_HANDLERS`` dict, so adding to
    it takes effect for apps created afterwards: our package must be imported before the server starts,
    which naming ``mlserver_sigaware.MlflowRegistryRepository`` in settings.json guarantees."""
    from fastapi.exceptions import RequestValidationError
    from mlserver.rest import errors as rest_errors

    rest_errors._EXCEPTION_HANDLERS.setdefault(RequestValidationError, validation_error_handler)
