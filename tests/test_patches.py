"""MLServer 1.7.1 fixes: errors raised in a worker keep their status and message across the pipe."""

from __future__ import annotations

import asyncio
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
    fixes = ["worker_errors", "validation_errors", "graceful_shutdown", "startup_failure", "parallel_metadata",
             "grpc_unavailable"]
    for fix in fixes:
        monkeypatch.setattr(getattr(_patches, fix), "apply", lambda fix=fix: applied.append(fix))
    with caplog.at_level("WARNING", logger="mlserver.sigaware"):
        _patches.apply()
    assert applied == []
    assert "mlserver 1.8.0 is installed" in caplog.text
    monkeypatch.setattr(mlserver, "__version__", _patches.FIXED_FOR)
    _patches.apply()
    assert applied == fixes


# ------------------------------------------------------------------------ server lifecycle


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _not_shutting_down():
    """MLServer.stop marks the process as shutting down: undo it for the tests that follow."""
    from mlserver_sigaware._patches.graceful_shutdown import SHUTTING_DOWN

    yield
    SHUTTING_DOWN.clear()


class _Recorder:
    """Stand-ins for MLServer's servers and inference pool, recording what happened when."""

    def __init__(self, in_flight_for: float = 0.0):
        import types

        self.events: list[str] = []
        self.connections = {"in-flight request"}
        recorder = self

        class Rest:
            async def stop(self, sig=None):
                recorder.events.append("rest stops accepting")

                async def finish():
                    await asyncio.sleep(in_flight_for)
                    recorder.connections.clear()
                    recorder.events.append("in-flight requests answered")

                self.finishing = asyncio.ensure_future(finish())

        rest = Rest()
        rest._server = types.SimpleNamespace(server_state=types.SimpleNamespace(connections=self.connections,
                                                                                 tasks=set()))

        class Grpc:
            async def stop(self, sig=None):
                recorder.events.append("grpc stopped")

        class Pool:
            async def close(self):
                recorder.events.append("workers closed")

        self.server = types.SimpleNamespace(_rest_server=rest, _grpc_server=Grpc(), _inference_pool_registry=Pool(),
                                            _kafka_server=None, _metrics_server=None,
                                            # what the patched MLServer.start marks (the package was imported
                                            # before the server started)
                                            _sigaware_start_waits_for_stop=True)


def test_sigterm_closes_the_inference_workers_only_after_in_flight_requests_are_answered():
    # Unpatched, MLServer 1.7.1 closes the pool first: requests in flight lose their worker.
    import signal

    from mlserver.server import MLServer

    recorder = _Recorder(in_flight_for=0.3)
    asyncio.run(MLServer.stop(recorder.server, sig=signal.SIGTERM))
    assert recorder.events.index("workers closed") > recorder.events.index("in-flight requests answered")
    assert recorder.events[0] in ("rest stops accepting", "grpc stopped")


def test_imported_after_the_server_started_sigterm_keeps_mlservers_order(caplog):
    """Without our MLServer.start (package imported by a model load), the stop cannot be waited for:
    MLServer's own order is kept (workers first) rather than leave the workers running at exit."""
    import signal

    from mlserver.server import MLServer

    recorder = _Recorder(in_flight_for=0.3)
    del recorder.server._sigaware_start_waits_for_stop
    with caplog.at_level("WARNING", logger="mlserver"):
        asyncio.run(MLServer.stop(recorder.server, sig=signal.SIGTERM))
    assert recorder.events[0] == "workers closed"
    assert "imported after the server started" in caplog.text


def test_a_start_up_load_failure_exits_1_a_signal_or_a_plain_stop_does_not():
    import signal

    from mlserver.server import MLServer

    async def failed_startup(server):
        try:
            raise RuntimeError("model failed to load")
        except Exception:
            await MLServer.stop(server)  # what MLServer.start does on a start-up load failure

    with pytest.raises(SystemExit) as info:
        asyncio.run(failed_startup(_Recorder().server))
    assert info.value.code == 1
    asyncio.run(MLServer.stop(_Recorder().server, sig=signal.SIGTERM))
    asyncio.run(MLServer.stop(_Recorder().server))


def test_metadata_of_a_model_whose_default_moves_is_asked_every_time():
    # Unpatched, ParallelModel caches the first answer: after an alias swap it reported the old version.
    import types

    from mlserver.parallel.model import ParallelModel
    from mlserver.types import MetadataModelResponse

    from mlserver_sigaware import SignatureAwareRuntime

    answers = iter(["1", "2"])

    class Dispatcher:
        async def dispatch_request(self, message):
            return types.SimpleNamespace(return_value=MetadataModelResponse(name="m", platform="mlflow",
                                                                            versions=[next(answers)]))

    model = ParallelModel.__new__(ParallelModel)
    model._model, model._dispatcher, model._metadata = SignatureAwareRuntime.__new__(SignatureAwareRuntime), \
        Dispatcher(), None
    model._settings = types.SimpleNamespace(name="m", version=None)
    assert SignatureAwareRuntime.dynamic_metadata
    first = asyncio.run(model.metadata())
    second = asyncio.run(model.metadata())
    assert (first.versions, second.versions) == (["1"], ["2"])


def test_503_is_grpc_unavailable():
    import grpc
    from mlserver.grpc.utils import _grpc_status_code

    from mlserver_sigaware.errors import RegistryUnavailable

    assert _grpc_status_code(RegistryUnavailable("registry down")) == grpc.StatusCode.UNAVAILABLE
