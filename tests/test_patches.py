"""MLServer 1.7.1 fixes: errors raised in a worker keep their status and message across the pipe."""

from __future__ import annotations

import pickle

from mlserver.parallel.errors import WorkerError

import mlserver_sigaware  # noqa: F401  (applies the patches)
from mlserver_sigaware.errors import InvalidInput, ModelFailure, RegistryNotFound


def test_worker_error_keeps_status_through_pickle():
    # Unpatched, WorkerError(InvalidInput(...)) comes back from the worker as a 500.
    for exc, status in [(InvalidInput("input 'x' missing"), 400), (RegistryNotFound("nope"), 404),
                        (ModelFailure("boom"), 500)]:
        err = pickle.loads(pickle.dumps(WorkerError(exc)))
        assert err.status_code == status
        assert str(err) == str(exc)  # no "mlserver_sigaware.errors.InvalidInput:" prefix


def test_worker_error_for_foreign_exceptions_keeps_mlserver_message():
    err = pickle.loads(pickle.dumps(WorkerError(ValueError("bad"))))
    assert err.status_code == 500
    assert str(err) == "builtins.ValueError: bad"


def test_our_errors_pickle_with_status():
    err = pickle.loads(pickle.dumps(InvalidInput("x", 422)))
    assert (type(err), err.status_code, str(err)) == (InvalidInput, 422, "x")


def test_v2_validation_errors_are_400_naming_the_field():
    import asyncio

    import orjson
    from fastapi.exceptions import RequestValidationError
    from mlserver.rest.errors import _EXCEPTION_HANDLERS

    handler = _EXCEPTION_HANDLERS[RequestValidationError]
    exc = RequestValidationError(
        [
            {"loc": ("body", "inputs", 0, "datatype"), "msg": "Input should be 'BOOL'", "type": "enum"},
            {"loc": ("body", 81), "msg": "JSON decode error", "type": "json_invalid"},
        ]
    )
    response = asyncio.run(handler(None, exc))
    assert response.status_code == 400
    assert orjson.loads(response.body) == {
        "error": "inputs[0].datatype: Input should be 'BOOL'; body[81]: JSON decode error"
    }


def test_fixes_apply_only_to_the_mlserver_release_they_were_written_for(monkeypatch, caplog):
    """On another MLServer release the fixes stand aside (and say so) rather than patch changed code."""
    import mlserver

    from mlserver_sigaware import _patches

    assert _patches.applies_to_installed_mlserver()
    monkeypatch.setattr(mlserver, "__version__", "1.8.0")
    applied = []
    monkeypatch.setattr(_patches.worker_errors, "apply", lambda: applied.append("worker_errors"))
    monkeypatch.setattr(_patches.validation_errors, "apply", lambda: applied.append("validation_errors"))
    with caplog.at_level("WARNING", logger="mlserver.sigaware"):
        _patches.apply()
    assert applied == []
    assert "mlserver 1.8.0 is installed" in caplog.text
    monkeypatch.setattr(mlserver, "__version__", _patches.FIXED_FOR)
    _patches.apply()
    assert applied == ["worker_errors", "validation_errors"]
