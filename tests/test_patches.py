"""MLServer 1.7.1 fixes (``mlserver_sigaware/_patches/``), each alone; the integration tests
(``tests/integration/test_hostile_input.py``) show them in a real server."""

from __future__ import annotations

import asyncio
import pickle

import numpy as np
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
    fixes = [fix.__name__.rsplit(".", 1)[1] for fix in _patches.FIXES]
    for fix, name in zip(_patches.FIXES, fixes):
        monkeypatch.setattr(fix, "apply", lambda name=name: applied.append(name))
    with caplog.at_level("WARNING", logger="mlserver.sigaware"):
        _patches.apply()
    assert applied == []
    assert "mlserver 1.8.0 is installed" in caplog.text
    monkeypatch.setattr(mlserver, "__version__", _patches.FIXED_FOR)
    _patches.apply()
    assert applied == fixes
    assert {"worker_errors", "validation_errors", "graceful_shutdown", "startup_failure", "parallel_metadata",
            "grpc_unavailable"} <= set(fixes)
    assert fixes.index("graceful_shutdown") < fixes.index("startup_failure")  # wraps the stop it installs


# ------------------------------------------------------------------------- issue 12: hostile input

import json  # noqa: E402
import logging  # noqa: E402

import pytest  # noqa: E402
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mlserver_sigaware._patches import grpc_raw_contents, quiet_logs, request_ids  # noqa: E402
from mlserver_sigaware._patches.request_limits import RequestLimits, json_depth  # noqa: E402
from mlserver_sigaware.settings import ServerSettings  # noqa: E402

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(alphabet='[]{}"\\ab\n\u00e9'),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(alphabet='[]{}"\\k'), children, max_size=4),
    max_leaves=40,
)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES, st.booleans())
def test_json_depth_counts_what_a_parser_would(value, ascii_only) -> None:
    """Brackets and quotes inside strings (escaped or not) do not count; the depth is exact."""
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    assert json_depth(body, 1000) == _depth(value)


_FLAT_NUMBERS = st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers(), min_size=0, max_size=400)
_DATA_VALUES = st.recursive(
    _FLAT_NUMBERS | st.text(alphabet='[]{}" :data,'),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["data", "name", 'da"ta', "[data]"]), children, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_DATA_VALUES, min_size=1, max_size=6), st.sampled_from([None, 0, 2]))
def test_json_depth_is_exact_with_flat_data_arrays_cut(values, indent) -> None:
    """Large bodies have their flat ``"data"`` arrays cut before the walk (V2 bodies): still exact,
    whatever else holds brackets, quotes or the word data."""
    value = {"inputs": [{"name": "x", "data": v} for v in values], "data": values}
    body = json.dumps(value, indent=indent).encode("utf-8")
    body += b" " * max(0, 4096 - len(body))  # the cut is for large bodies
    assert json_depth(body, 1000) == _depth(value)


def test_flat_data_arrays_are_cut() -> None:
    from mlserver_sigaware._patches.request_limits import _without_flat_data

    body = json.dumps({"inputs": [{"name": "a", "data": [1.5] * 1000}, {"data": [[1.5] * 1000]}]}).encode()
    cut = _without_flat_data(body)
    assert b'"data": []}' in cut and b"[[1.5" in cut and len(cut) < len(body) / 1.5
    assert _without_flat_data(b'{"data": "[' + b"1," * 500 + b']"}') == b'{"data": "[' + b"1," * 500 + b']"}'


def test_json_depth_stops_early_on_deep_bodies() -> None:
    body = b"[" * 5_000_000 + b"]" * 5_000_000
    assert 32 < json_depth(body, 32) <= 5_000_000
    assert json_depth(b'{"a": [[[1]]], "b": "[[[[[[[[[[[[[[[["}', 3) == 4


def _asgi_call(app, body: bytes, headers: list[tuple[bytes, bytes]], path: str = "/v2/models/m/infer"):
    import asyncio

    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers}
    asyncio.run(app(scope, receive, send))
    status = sent[0]["status"]
    return status, b"".join(m.get("body", b"") for m in sent[1:])


def test_request_limits_middleware_in_process() -> None:
    """The middleware alone: what reaches the application, and what never does."""
    import gzip

    seen: list[tuple[bytes, list]] = []

    async def app(scope, receive, send):
        message = await receive()
        seen.append((message["body"], scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = RequestLimits(app, ServerSettings(max_body_bytes=100, max_decompressed_bytes=200, max_json_depth=3))
    ok = b'{"a": [[1]]}'
    assert _asgi_call(limits, ok, [(b"content-length", b"12")]) == (200, b"ok")
    status, body = _asgi_call(limits, gzip.compress(ok), [(b"content-length", b"32"), (b"content-encoding", b"gzip")])
    assert status == 200 and seen[-1][0] == ok and (b"content-encoding", b"gzip") not in seen[-1][1]
    count = len(seen)
    for headers, payload, want in [
        ([(b"content-length", b"101")], b"x" * 101, 413),
        ([(b"transfer-encoding", b"chunked")], b"x" * 101, 413),
        ([(b"content-length", b"60"), (b"content-encoding", b"gzip")], gzip.compress(b" " * 201), 413),
        ([(b"content-length", b"2"), (b"content-encoding", b"gzip")], b"{}", 400),
        ([(b"content-length", b"2"), (b"content-encoding", b"zstd")], b"{}", 415),
        ([(b"content-length", b"11")], b"[[[[1]]]]", 400),
    ]:
        status, body = _asgi_call(limits, payload, headers)
        assert status == want, (headers, body)
        assert set(json.loads(body)) == {"error"}
    assert len(seen) == count  # none of them reached the application
    status, body = _asgi_call(limits, b"[[[[1]]]]", [(b"content-length", b"9")], path="/invocations")
    assert status == 400 and json.loads(body)["error_code"] == "BAD_REQUEST"  # MLflow's shape there
    csv = b"[[[[[[[[a\n1"
    assert _asgi_call(limits, csv, [(b"content-length", b"11"), (b"content-type", b"text/csv")])[0] == 200


def test_request_limits_middleware_sends_no_traceback() -> None:
    async def broken(scope, receive, send):
        raise RuntimeError("a bug of ours")

    status, body = _asgi_call(RequestLimits(broken, ServerSettings()), b"", [])
    assert (status, json.loads(body)) == (500, {"error": "internal error"})


def test_request_ids_are_refused_when_no_header_can_carry_them(monkeypatch) -> None:
    from mlserver_sigaware.errors import InvalidInput
    from mlserver_sigaware.settings import reset_server_settings

    monkeypatch.setenv("MLSERVER_SIGAWARE_MAX_REQUEST_ID_LENGTH", "8")
    reset_server_settings()
    try:
        request_ids.check_request_id(None)
        request_ids.check_request_id("abc-123_")
        for bad in ("abcdefghi", "a\r\nb", "\u00e9"):
            with pytest.raises(InvalidInput, match="^id: "):
                request_ids.check_request_id(bad)
    finally:
        monkeypatch.delenv("MLSERVER_SIGAWARE_MAX_REQUEST_ID_LENGTH")
        reset_server_settings()


def test_raw_contents_are_checked_against_their_inputs() -> None:
    import struct

    from mlserver.types import RequestInput

    from mlserver_sigaware.errors import InvalidInput

    def elem(datatype, shape):
        return RequestInput.model_construct(name="x", datatype=datatype, shape=shape, data=[])

    grpc_raw_contents.check_raw_contents([elem("FP32", [2])], [struct.pack("<2f", 1, 2)])
    grpc_raw_contents.check_raw_contents([elem("BYTES", [2])], [b"\x01\x00\x00\x00a\x00\x00\x00\x00"])
    for inputs, raw, needle in [
        ([elem("FP32", [2])], [b"\x00" * 7], "has 7 bytes, shape [2] of FP32 needs 8"),
        ([elem("FP32", [2])], [], "0 buffers for 1 input"),
        ([elem("INT64", [1])], [b"\x00" * 8, b""], "2 buffers for 1 input"),
        ([elem("BYTES", [2])], [b"\x01\x00\x00\x00a"], "holds 1 BYTES element, shape [2] needs 2"),
        ([elem("BYTES", [1])], [b"\x09\x00\x00\x00a"], "element 0 needs 9 bytes"),
        ([elem("BYTES", [1])], [b"\x01\x00"], "length prefix is cut off"),
        ([elem("FP32", [-1])], [b""], "non-negative"),
    ]:
        with pytest.raises(InvalidInput, match=re.escape(needle)):
            grpc_raw_contents.check_raw_contents(inputs, raw)


import re  # noqa: E402


def test_refused_grpc_calls_are_one_line_and_worker_tracebacks_of_our_errors_are_dropped(caplog) -> None:
    import asyncio

    from mlserver.errors import MLServerError
    from mlserver.grpc.servicers import InferenceServicer

    from mlserver_sigaware.errors import InvalidInput

    cells = [c for c in InferenceServicer.ModelInfer.__closure__ if callable(c.cell_contents)]
    assert getattr(cells[0].cell_contents, "_sigaware_logged", False)  # our wrapper sits inside MLServer's

    class Request:
        model_name, model_version, raw_input_contents = "wine", "3", []

    class Context:
        def invocation_metadata(self):
            return ()

        async def abort(self, code, details):
            raise RuntimeError(f"aborted {code} {details}")

    class Plane:
        async def infer(self, **kwargs):
            raise InvalidInput("input 'x': bad")

    servicer = InferenceServicer.__new__(InferenceServicer)
    servicer._data_plane = Plane()
    servicer._InsertHeaders = lambda request, context: None
    with caplog.at_level(logging.INFO):
        with pytest.raises(RuntimeError, match="aborted StatusCode.INVALID_ARGUMENT input 'x': bad"):
            asyncio.run(InferenceServicer.ModelInfer(servicer, Request(), Context()))
    lines = [r for r in caplog.records if r.name.startswith("mlserver")]
    assert [r.getMessage() for r in lines if r.name == "mlserver.sigaware.requests"] == [
        "rejected 400 gRPC ModelInfer model=wine version=3: input 'x': bad"
    ]
    assert not any(r.exc_info for r in lines), [r.getMessage() for r in lines]

    worker = logging.getLogger("mlserver.parallel")
    for exc, kept in ((InvalidInput("bad"), False), (MLServerError("theirs"), True), (ValueError("bug"), True)):
        record = worker.makeRecord("mlserver.parallel", logging.ERROR, __file__, 1, "worker", (), (type(exc), exc, None))
        assert all(f.filter(record) for f in worker.filters) is kept
    assert quiet_logs.wrap_servicer(InferenceServicer) == []  # applied once


def test_json_log_lines_are_json_whatever_the_message() -> None:
    from mlserver_sigaware.logs import REQUEST_ID, JsonFormatter, RequestId

    token = REQUEST_ID.set(RequestId("r-1"))
    try:
        try:
            raise ValueError('a "quoted"\nmessage')
        except ValueError as exc:
            record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, 'said: "%s"', (exc,),
                                                       (ValueError, exc, exc.__traceback__))
        doc = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert doc["message"] == 'said: "a "quoted"\nmessage"' and doc["request_id"] == "r-1"
    assert doc["level"] == "ERROR" and "ValueError" in doc["traceback"]


def test_server_wide_settings_are_refused_in_parameters_extra() -> None:
    from mlserver_sigaware.settings import SigawareSettings

    with pytest.raises(ValueError, match="max_body_bytes: server-wide setting.*MLSERVER_SIGAWARE_MAX_BODY_BYTES"):
        SigawareSettings.from_extra({"max_body_bytes": 10})
    assert ServerSettings().max_body_bytes == 32 * 1024 * 1024


@settings(max_examples=60, deadline=None)
@example(members=[b"", b"\x00"], step=5000, spaces=0)  # an empty member, then another, in one chunk
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=3), st.integers(1, 5000), st.integers(0, 200_000))
def test_gzip_is_decoded_incrementally_whatever_the_chunking(members, step, spaces) -> None:
    """Several gzip members, any network chunking, output drained in 1 MiB steps: exactly gzip's answer."""
    import gzip

    from mlserver_sigaware._patches.request_limits import _Decoder

    members = [m + b" " * spaces for m in members]
    body = b"".join(gzip.compress(m) for m in members)
    decoder = _Decoder("gzip", 10**8)
    out = b"".join(decoder.feed(body[i : i + step]) for i in range(0, len(body), step))
    decoder.finish()
    assert out == b"".join(members) == gzip.decompress(body)


def test_rejected_log_level_setting(monkeypatch, caplog) -> None:
    from mlserver_sigaware import logs
    from mlserver_sigaware.settings import reset_server_settings

    try:
        for level, expected in (("warning", [logging.WARNING]), ("off", []), ("info", [logging.INFO])):
            monkeypatch.setenv("MLSERVER_SIGAWARE_REJECTED_LOG_LEVEL", level)
            reset_server_settings()
            caplog.clear()
            with caplog.at_level(logging.DEBUG, logger="mlserver.sigaware.requests"):
                logs.log_rejected(400, "POST /x", "m", None, "bad\n  input")
            assert [r.levelno for r in caplog.records] == expected
            if expected:
                assert caplog.records[0].getMessage() == "rejected 400 POST /x model=m version=-: bad input"
    finally:
        monkeypatch.delenv("MLSERVER_SIGAWARE_REJECTED_LOG_LEVEL")
        reset_server_settings()


def test_grpc_raw_contents_become_arrays_for_our_models_only() -> None:
    """Our converter (what ``_InsertHeaders`` uses for this runtime's models) makes raw tensors ndarrays
    (the list MLServer makes, without the Python numbers); BYTES stay lists; MLServer's makes lists."""
    import numpy as np
    from mlserver.grpc import converters
    from mlserver.grpc import dataplane_pb2 as pb

    from mlserver_sigaware._patches import grpc_raw_arrays

    request = pb.ModelInferRequest(model_name="m")
    values = np.array([[1.5, -2.0], [3.25, 4.0]])
    request.inputs.add(name="x", datatype="FP64", shape=[2, 2])
    request.inputs.add(name="s", datatype="BYTES", shape=[1])
    request.raw_input_contents.extend([values.tobytes(), b"\x03\x00\x00\x00abc"])
    fast = grpc_raw_arrays.to_types(request)
    plain = converters.ModelInferRequestConverter.to_types(request)
    assert isinstance(fast.inputs[0].data.root, np.ndarray) and fast.inputs[0].data.root.tolist() == values.ravel().tolist()
    assert plain.inputs[0].data.root == values.ravel().tolist()
    assert fast.inputs[1].data.root == plain.inputs[1].data.root == [b"abc"]


_GRPC_TENSORS = st.sampled_from(
    [("FP64", "fp64_contents", np.float64), ("FP32", "fp32_contents", np.float32), ("INT64", "int64_contents", np.int64),
     ("INT32", "int_contents", np.int32), ("UINT8", "uint_contents", np.uint8), ("BOOL", "bool_contents", np.bool_)]
)


def _grpc_request(draw_tensors, raw: bool, parameters: dict, outputs: list[str], request_id: str):
    from mlserver.grpc import dataplane_pb2 as pb

    request = pb.ModelInferRequest(model_name="m", id=request_id)
    for key, value in parameters.items():
        request.parameters[key].string_param = value
    for i, ((datatype, field, dtype), values) in enumerate(draw_tensors):
        array = np.asarray(values).astype(dtype)
        tensor = request.inputs.add(name=f"in{i}", datatype=datatype, shape=[len(values)])
        if parameters:
            tensor.parameters["content_type"].string_param = "np"
        if raw:
            request.raw_input_contents.append(array.tobytes())
        else:
            getattr(tensor.contents, field).extend(array.tolist())
    for name in outputs:
        request.outputs.add(name=name)
    return request


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_GRPC_TENSORS, st.lists(st.integers(0, 100), min_size=1, max_size=20)), min_size=1, max_size=4),
    st.booleans(),
    st.dictionaries(st.sampled_from(["content_type", "x"]), st.sampled_from(["pd", "np", "v"]), max_size=2),
    st.lists(st.sampled_from(["a", "b"]), max_size=2),
    st.sampled_from(["", "req-1"]),
)
def test_grpc_to_types_builds_what_mlserver_builds(tensors, raw, parameters, outputs, request_id) -> None:
    """Our converter for this runtime's models gives MLServer's request, field for field."""
    from mlserver.grpc import converters

    from mlserver_sigaware._patches import grpc_raw_arrays

    request = _grpc_request(tensors, raw, parameters, outputs, request_id)
    ours, theirs = grpc_raw_arrays.to_types(request), converters.ModelInferRequestConverter.to_types(request)
    assert all(isinstance(i.data.root, np.ndarray) == raw for i in ours.inputs)
    for inp in ours.inputs:  # each array stands for exactly the list MLServer makes
        if isinstance(inp.data.root, np.ndarray):
            inp.data.root = inp.data.root.tolist()
    assert ours.model_dump() == theirs.model_dump()
    assert ours.model_fields_set == theirs.model_fields_set
    assert [i.model_fields_set for i in ours.inputs] == [i.model_fields_set for i in theirs.inputs]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_GRPC_TENSORS, st.lists(st.integers(-3, 100), min_size=0, max_size=20), st.booleans()),
             min_size=1, max_size=4),
    st.booleans(),
    st.booleans(),
)
def test_grpc_response_from_arrays_is_mlservers_message(outputs, use_raw, with_bytes) -> None:
    """Outputs that are ndarrays (what our runtime returns to its gRPC requests) serialize to exactly the
    message MLServer makes of their lists, raw or in ``contents``."""
    from mlserver.grpc import servicers
    from mlserver.grpc.converters import ModelInferResponseConverter
    from mlserver.types import InferenceResponse, ResponseOutput

    def response(as_arrays: bool) -> InferenceResponse:
        outs = []
        for i, ((datatype, _, dtype), values, as_array) in enumerate(outputs):
            array = np.asarray(values).astype(dtype)
            data = array if (as_arrays and as_array) else array.tolist()
            outs.append(ResponseOutput(name=f"o{i}", datatype=datatype, shape=[len(values)], data=[]))
            outs[-1].data.root = data
        if with_bytes:
            outs.append(ResponseOutput(name="s", datatype="BYTES", shape=[2], data=[b"ab", b""]))
        return InferenceResponse(model_name="m", model_version="2", id="x", outputs=outs)

    assert servicers.ModelInferResponseConverter is not ModelInferResponseConverter  # ours is installed
    ours = servicers.ModelInferResponseConverter.from_types(response(True), use_raw=use_raw)
    theirs = ModelInferResponseConverter.from_types(response(False), use_raw=use_raw)
    assert ours.SerializeToString(deterministic=True) == theirs.SerializeToString(deterministic=True)


# ------------------------------------------------------------------------ server lifecycle


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
