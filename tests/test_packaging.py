"""What the package's dependencies must give a fresh install (issues that only show at run time)."""

from __future__ import annotations


def test_uvicorn_parses_http_with_httptools() -> None:
    """MLServer runs uvicorn with ``http="auto"``; without httptools that is pure-Python h11, about a
    quarter slower on small requests for every route of the server (benchmarks/README.md)."""
    import uvicorn

    async def app(scope, receive, send):  # pragma: no cover - never called
        pass

    config = uvicorn.Config(app, http="auto")
    config.load()
    assert config.http_protocol_class.__module__ == "uvicorn.protocols.http.httptools_impl"


def test_uvloop_is_below_0_22() -> None:
    """MLServer 1.7.1's workers crash with uvloop >= 0.22 ("There is no current event loop")."""
    from importlib.metadata import version

    major, minor = (int(p) for p in version("uvloop").split(".")[:2])
    assert (major, minor) < (0, 22)
