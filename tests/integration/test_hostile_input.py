"""Issue 12, hostile input, against real ``mlserver start`` processes: never a 5xx for a client's mistake,
bounded requests, no traceback in any body, quiet logs.

Servers:

* ``main_server`` (session, ``parallel_workers: 0``, no repository in settings.json): our package is
  imported only when the first model loads, after MLServer built its HTTP app (the late install path of
  ``_patches/rest_app.py``);
* ``workers_server`` (session, ``parallel_workers: 1``, ``debug: true``): errors cross the worker boundary
  and Starlette's debug page is on;
* ``limits_server`` (this module): small limits through ``MLSERVER_SIGAWARE_*``, JSON log lines, a
  model whose outputs break its signature, and ``MlflowRegistryRepository`` in settings.json (the early
  install path).
"""

from __future__ import annotations

import gzip
import json
import socket
import zlib
from pathlib import Path
from typing import Any, Iterator, Optional

import grpc
import numpy as np
import pytest
import requests
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

import zoo
from cases import wine_frame
from harness import MLServerProcess, write_model_settings

pytestmark = pytest.mark.integration

KiB = 1024
#: The limits of ``limits_server`` (small, so that tests stay fast).
LIMITS = {
    "MLSERVER_SIGAWARE_MAX_BODY_BYTES": str(256 * KiB),
    "MLSERVER_SIGAWARE_MAX_DECOMPRESSED_BYTES": str(512 * KiB),
    "MLSERVER_SIGAWARE_MAX_JSON_DEPTH": "8",
    "MLSERVER_SIGAWARE_MAX_REQUEST_ID_LENGTH": "16",
    "MLSERVER_SIGAWARE_LOG_FORMAT": "json",
}
JSON_CT = {"Content-Type": "application/json"}
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "/', "stack_trace")


@pytest.fixture(scope="module")
def limits_server(zoo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerProcess]:
    root = tmp_path_factory.mktemp("limits-server")
    lossy = zoo.build_lossy(tmp_path_factory.mktemp("lossy") / "lossy")
    served = {"wine": zoo_models["wine_cp"], "text": zoo_models["text"], "tensor": zoo_models["tensor"],
              "failing": zoo_models["failing"], "lossy": lossy}  # fmt: skip
    for name, folder in served.items():
        write_model_settings(root / name, name, uri=str(folder))
    server = MLServerProcess(
        root,
        parallel_workers=1,
        debug=True,
        env=LIMITS,
        extra_settings={"model_repository_implementation": "mlserver_sigaware.MlflowRegistryRepository"},
        models=list(served),
        startup_timeout=180,
    )
    with server:
        yield server


# ------------------------------------------------------------------------------------------- helpers


def wine_row(**overrides: Any) -> dict[str, Any]:
    row = {str(k): float(v) for k, v in wine_frame().iloc[0].items()}
    row.update(overrides)
    return row


def v2_wine(row: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in row.items()]}


def v2_text(*prompts: Any, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "prompt", "shape": [len(prompts)], "datatype": "BYTES", "data": list(prompts)}], **extra}


def assert_json_error(response: requests.Response, status: int, *needles: str) -> dict[str, Any]:
    """``status`` with a JSON error body naming each of ``needles``, and no traceback."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    doc = response.json()
    message = doc.get("error") or doc.get("message") or ""
    for needle in needles:
        assert needle in message, (needle, doc)
    for mark in TRACEBACK_MARKS:
        assert mark not in response.text, response.text[:500]
    return doc


def raw_http(port: int, head: str, body: bytes = b"", timeout: float = 10) -> tuple[int, bytes]:
    """Send ``head`` (request line and headers) and ``body`` on a plain socket; status and raw answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_part, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head_part.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            0,
        )
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
    return int(head_part.split(b" ")[1]), rest


def grpc_stub(server: MLServerProcess) -> Any:
    return pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc_url))


def grpc_error(stub: Any, request: Any, metadata: Optional[tuple] = None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, metadata=metadata, timeout=30)
    return info.value


def grpc_tensor_request(model: str = "tensor", raw: Optional[list[bytes]] = None, **fields: Any) -> Any:
    request = pb.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "x", "FP32"
    tensor.shape.extend([1, 4])
    if raw is None:
        tensor.contents.fp32_contents.extend([1, 2, 3, 4])
    else:
        request.raw_input_contents.extend(raw)
    return request


def log_since(server: MLServerProcess, offset: int) -> str:
    return server.log_text()[offset:]


# ============================================================ 1. client mistakes: 4xx naming the field


def test_null_in_a_required_column_is_a_400_naming_it(main_server: MLServerProcess) -> None:
    url = main_server.http_url
    row = wine_row(alcohol=None)
    assert_json_error(requests.post(f"{url}/v2/models/wine/infer", json=v2_wine(row)), 400,
                      "input 'alcohol': null at row 0", "required double column")
    doc = assert_json_error(requests.post(f"{url}/v2/models/wine/predict", json=row), 400, "alcohol")
    assert doc["errors"][0]["path"] == "inputs[0].alcohol"
    assert_json_error(requests.post(f"{url}/v2/models/text/infer", json=v2_text(None)), 400,
                      "input 'prompt': null at row 0", "required string column")
    assert_json_error(requests.post(f"{url}/v2/models/text/predict", json={"prompt": None}), 400, "prompt")


def test_null_in_an_optional_column_is_served(main_server: MLServerProcess) -> None:
    row = {"id": 1, "score": 0.5, "name": "ann", "flag": True, "when": "2024-01-31T12:00:00", "blob": "AAE=",
           "note": None}  # fmt: skip
    response = requests.post(f"{main_server.http_url}/v2/models/mixed/predict", json=row)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["has_note"] is False
    response = requests.post(f"{main_server.http_url}/v2/models/mixed/predict", json=dict(row, name=None))
    assert_json_error(response, 400, "name")


def test_nan_over_grpc_in_a_required_column_is_invalid_argument(main_server: MLServerProcess) -> None:
    request = pb.ModelInferRequest(model_name="wine")
    for name, value in wine_row(magnesium=float("nan")).items():
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = name, "FP64"
        tensor.shape.append(1)
        tensor.contents.fp64_contents.append(value)
    err = grpc_error(grpc_stub(main_server), request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'magnesium': null at row 0" in err.details()


def test_nulls_on_invocations_are_what_mlflow_answers(main_server: MLServerProcess) -> None:
    """/invocations keeps MLflow's behaviour (the null reaches the model): a 4xx where the model refuses
    it, as MLflow's own 400 ``BAD_REQUEST``; never a 5xx."""
    url = main_server.http_url
    response = requests.post(f"{url}/v2/models/wine/invocations", json={"dataframe_records": [wine_row(alcohol=None)]})
    doc = assert_json_error(response, 400, "unexpected error while evaluating the model")
    assert doc["error_code"] == "BAD_REQUEST"
    response = requests.post(f"{url}/v2/models/text/invocations", json={"dataframe_records": [{"prompt": None}]})
    assert response.status_code == 200  # mlflow models serve passes None to the model too


def test_malformed_json_on_infer_is_a_v2_400(main_server: MLServerProcess) -> None:
    """Issue 12: FastAPI's 422 ``{"detail": [...]}`` with a plain ``mlserver start`` (our package is
    imported after MLServer built its app: rest_app.py installs the handler late)."""
    url = main_server.http_url
    for body in (b'{"inputs": [', b"{", b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]'):
        doc = assert_json_error(requests.post(f"{url}/v2/models/wine/infer", data=body, headers=JSON_CT), 400,
                                "request body is not valid JSON")
        assert set(doc) == {"error"}
    doc = assert_json_error(
        requests.post(f"{url}/v2/models/wine/infer", json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP65", "data": [1]}]}),
        400, "inputs[0].datatype",
    )
    assert "detail" not in doc


@pytest.mark.parametrize("route", ["infer", "predict", "invocations"])
def test_bad_content_encoding_is_a_4xx_without_traceback(workers_server: MLServerProcess, route: str) -> None:
    """A body that is not what its Content-Encoding says: 400 (was a 500 with Starlette's traceback
    under ``debug: true``, which ``workers_server`` has); an unknown encoding: 415."""
    url = f"{workers_server.http_url}/v2/models/wine/{route}"
    good = json.dumps(v2_wine(wine_row()) if route == "infer" else
                      ({"dataframe_records": [wine_row()]} if route == "invocations" else wine_row())).encode()
    assert_json_error(requests.post(url, data=good, headers={**JSON_CT, "Content-Encoding": "gzip"}), 400,
                      "not valid gzip data")
    assert_json_error(requests.post(url, data=gzip.compress(good)[:-8], headers={**JSON_CT, "Content-Encoding": "gzip"}),
                      400, "truncated")
    assert_json_error(requests.post(url, data=good, headers={**JSON_CT, "Content-Encoding": "br"}), 415, "'br'")
    for encoding, data in (("gzip", gzip.compress(good)), ("deflate", zlib.compress(good)), ("identity", good)):
        response = requests.post(url, data=data, headers={**JSON_CT, "Content-Encoding": encoding})
        assert response.status_code == 200, (encoding, response.text)


@pytest.mark.parametrize("route", ["infer", "predict", "invocations"])
def test_json_nested_10000_deep_is_a_400(main_server: MLServerProcess, route: str) -> None:
    """Was a plain-text 500 (RecursionError) on /invocations."""
    body = b'{"inputs": ' + b"[" * 10_000 + b"1.0" + b"]" * 10_000 + b"}"
    response = requests.post(f"{main_server.http_url}/v2/models/wine/{route}", data=body, headers=JSON_CT)
    doc = assert_json_error(response, 400, "JSON nested deeper than 32 levels")
    if route == "invocations":
        assert doc["error_code"] == "BAD_REQUEST"


def test_inconsistent_grpc_raw_contents_are_invalid_argument(main_server: MLServerProcess) -> None:
    """Was INTERNAL with struct's message, from inside MLServer's raw.py."""
    stub = grpc_stub(main_server)
    for raw, needle in (
        ([np.ones(3, np.float32).tobytes()], "raw_input_contents[0] has 12 bytes, shape [1, 4] of FP32 needs 16"),
        ([np.ones(4, np.float32).tobytes()] * 2, "raw_input_contents: 2 buffers for 1 input"),
    ):
        err = grpc_error(stub, grpc_tensor_request(raw=raw))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
        assert needle in err.details()
    request = pb.ModelInferRequest(model_name="text")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "prompt", "BYTES"
    tensor.shape.append(2)
    request.raw_input_contents.append(b"\x05\x00\x00\x00hello\x09\x00\x00\x00wor")
    err = grpc_error(stub, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid BYTES buffer" in err.details()
    reply = stub.ModelInfer(grpc_tensor_request(raw=[np.ones(4, np.float32).tobytes()]), timeout=30)
    assert [o.name for o in reply.outputs] == ["predictions"]


CONFLICT = {"mlflow-model-version": "1", "serve_multiplexed_model_id": "2"}


@pytest.mark.parametrize(
    "method,route,body",
    [
        ("POST", "infer", v2_text("hello")),
        ("POST", "predict", {"prompt": "hello"}),
        ("GET", "openapi.json", None),
        ("POST", "invocations", {"dataframe_records": [{"prompt": "hello"}]}),
    ],
)
def test_conflicting_version_headers_are_a_400_naming_both(
    main_server: MLServerProcess, method: str, route: str, body: Any
) -> None:
    url = f"{main_server.http_url}/v2/models/translator/{route}"
    response = requests.request(method, url, json=body, headers=CONFLICT)
    doc = assert_json_error(response, 400, "mlflow-model-version: '1'", "serve_multiplexed_model_id: '2'")
    if route == "invocations":
        assert doc["error_code"] == "BAD_REQUEST"
    same = {"mlflow-model-version": "1", "serve-multiplexed-model-id": "1"}
    assert requests.request(method, url, json=body, headers=same).status_code == 200


def test_conflicting_version_headers_over_grpc(main_server: MLServerProcess) -> None:
    request = pb.ModelInferRequest(model_name="translator")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "prompt", "BYTES"
    tensor.shape.append(1)
    tensor.contents.bytes_contents.append(b"hello")
    err = grpc_error(grpc_stub(main_server), request, metadata=tuple(CONFLICT.items()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "mlflow-model-version: '1'" in err.details() and "serve_multiplexed_model_id: '2'" in err.details()


# ================================================================================= 2. limits


ROUTES = ["/v2/models/wine/infer", "/v2/models/wine/predict", "/v2/models/wine/invocations", "/invocations",
          "/v2/repository/index"]  # fmt: skip


@pytest.mark.parametrize("path", ROUTES)
def test_a_body_over_the_limit_is_413_before_it_is_sent(limits_server: MLServerProcess, path: str) -> None:
    """The client announces 100 MB and sends 10 bytes: the 413 comes back without waiting for the rest."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n"
    status, body = raw_http(limits_server.http_port, head, b"0123456789")
    assert status == 413
    doc = json.loads(body)
    assert "larger than the 262144" in (doc.get("error") or doc.get("message"))


def test_default_body_limit_applies_with_a_plain_mlserver_start(main_server: MLServerProcess) -> None:
    head = f"POST /v2/models/wine/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {32 * 1024 * 1024 + 1}\r\n"
    status, body = raw_http(main_server.http_port, head, b"{")
    assert status == 413 and b"larger than the 33554432 accepted" in body


def test_a_chunked_body_over_the_limit_is_413(limits_server: MLServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * (16 * KiB)

    response = requests.post(f"{limits_server.http_url}/v2/models/wine/infer", data=chunks(), headers=JSON_CT)
    assert_json_error(response, 413, "larger than the 262144 bytes accepted")


def test_a_body_inflating_past_the_limit_is_413(limits_server: MLServerProcess) -> None:
    bomb = gzip.compress(b" " * (64 * 1024 * KiB))  # 64 MB of spaces in ~64 kB
    assert len(bomb) < 256 * KiB
    response = requests.post(f"{limits_server.http_url}/v2/models/wine/predict", data=bomb,
                             headers={**JSON_CT, "Content-Encoding": "gzip"})
    assert_json_error(response, 413, "inflates past 524288 bytes")


@pytest.mark.parametrize("route", ["infer", "predict", "invocations"])
def test_json_depth_limit_is_exact(limits_server: MLServerProcess, route: str) -> None:
    url = f"{limits_server.http_url}/v2/models/wine/{route}"
    at_limit = json.dumps({"a": {"b": {"c": {"d": {"e": {"f": {"g": [1]}}}}}}}).encode()  # 8 deep
    response = requests.post(url, data=at_limit, headers=JSON_CT)
    assert response.status_code == 400 and "nested deeper" not in response.text  # refused for its content
    too_deep = json.dumps({"a": {"b": {"c": {"d": {"e": {"f": {"g": [[1]]}}}}}}}).encode()  # 9 deep
    assert_json_error(requests.post(url, data=too_deep, headers=JSON_CT), 400, "JSON nested deeper than 8 levels")
    brackets_in_strings = json.dumps({"dataframe_records": [{"alcohol": "[[[[[[[[[[[[{{{{{{{{{"}]}).encode()
    assert "nested deeper" not in requests.post(url, data=brackets_in_strings, headers=JSON_CT).text


def test_request_id_longer_than_the_limit_is_a_400_never_echoed(limits_server: MLServerProcess) -> None:
    """Was echoed into Ce-Id / Ce-Requestid: a 1 MB id broke ordinary HTTP clients (LineTooLong)."""
    url = f"{limits_server.http_url}/v2/models/text/infer"
    ok = requests.post(url, json=v2_text("hello", id="x" * 16))
    assert ok.status_code == 200 and ok.headers["ce-id"] == "x" * 16
    for bad, needle in (("x" * 17, "17 characters long, at most 16"), ("a\nb", "printable ASCII"),
                        ("\u00e9t\u00e9", "printable ASCII")):
        response = requests.post(url, json=v2_text("hello", id=bad))
        assert_json_error(response, 400, "id: ", needle)
        assert "ce-id" not in response.headers
    err = grpc_error(grpc_stub(limits_server), grpc_tensor_request(id="y" * 17))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 16" in err.details()


def test_the_server_keeps_serving_after_every_limit(limits_server: MLServerProcess) -> None:
    url = limits_server.http_url
    for _ in range(3):
        raw_http(limits_server.http_port, "POST /v2/models/wine/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n")
        requests.post(f"{url}/v2/models/wine/predict", data=gzip.compress(b" " * (8 * 1024 * KiB)),
                      headers={**JSON_CT, "Content-Encoding": "gzip"})
    response = requests.post(f"{url}/v2/models/wine/predict", json=wine_row())
    assert response.status_code == 200 and len(response.json()["outputs"]) == 1
    assert limits_server.process is not None and limits_server.process.poll() is None


# ============================================================ 3. outputs never change silently


def test_an_output_that_does_not_fit_its_signature_is_a_500_naming_it(limits_server: MLServerProcess) -> None:
    """The signature says ``long``, the model returns 5.48: was sent as 5 (INT64) on V2 and /predict."""
    url = limits_server.http_url
    body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 5.48]}]}
    needles = ("output 'y'", "float64", "long", "5.48")
    assert_json_error(requests.post(f"{url}/v2/models/lossy/infer", json=body), 500, *needles)
    assert_json_error(requests.post(f"{url}/v2/models/lossy/predict", json=[{"x": 1.0}, {"x": 5.48}]), 500, *needles)
    request = pb.ModelInferRequest(model_name="lossy")
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "x", "FP64"
    tensor.shape.append(2)
    tensor.contents.fp64_contents.extend([1.0, 5.48])
    err = grpc_error(grpc_stub(limits_server), request)
    assert err.code() == grpc.StatusCode.INTERNAL and all(n in err.details() for n in needles)
    # /invocations returns what the model returned, as mlflow models serve does (no output signature).
    response = requests.post(f"{url}/v2/models/lossy/invocations", json={"inputs": [1.0, 5.48]})
    assert response.status_code == 200 and response.json() == {"predictions": [{"y": 1.0}, {"y": 5.48}]}
    # values that fit are served in the signature's type
    fits = requests.post(f"{url}/v2/models/lossy/infer", json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [5.0]}]})
    assert fits.status_code == 200 and fits.json()["outputs"][0]["datatype"] == "INT64"
    assert fits.json()["outputs"][0]["data"] == [5]


# ================================================================= 4. no traceback in any body


def test_no_traceback_in_any_error_body_with_debug_on(workers_server: MLServerProcess) -> None:
    url = workers_server.http_url
    bad = [
        ("POST", "/v2/models/wine/infer", b'{"inputs": ['),
        ("POST", "/v2/models/wine/infer", json.dumps(v2_wine(wine_row(alcohol="x"))).encode()),
        ("POST", "/v2/models/failing/infer", json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [-1]}]}).encode()),
        ("POST", "/v2/models/failing/invocations", b'{"inputs": [-1.0]}'),
        ("POST", "/v2/models/wine/invocations", b"not,a\ncsv\x00"),
        ("POST", "/v2/models/wine/predict", b"[1, 2"),
        ("POST", "/v2/models/nope/infer", b"{}"),
        ("GET", "/v2/models/nope", b""),
        ("POST", "/v2/repository/models/nope/load", b""),
        ("POST", "/v2/models/wine/infer", json.dumps({"id": "\u4e2d", **v2_wine(wine_row())}).encode()),
    ]
    for method, path, body in bad:
        ct = "text/csv" if b"csv" in body else "application/json"
        response = requests.request(method, url + path, data=body, headers={"Content-Type": ct})
        assert response.status_code >= 400, (path, response.text[:200])
        assert response.headers["content-type"].startswith("application/json"), (path, response.text[:200])
        for mark in TRACEBACK_MARKS:
            assert mark not in response.text, (path, response.text[:500])


# ======================================================================================== 5. logs


def test_a_rejected_request_is_one_log_line_and_a_model_failure_one_traceback(workers_server: MLServerProcess) -> None:
    url = workers_server.http_url
    offset = len(workers_server.log_text())
    rejected = [
        requests.post(f"{url}/v2/models/wine/infer", json=v2_wine(wine_row(alcohol=None))),
        requests.post(f"{url}/v2/models/wine/predict", json={"alcohol": "x"}),
        requests.post(f"{url}/v2/models/wine/invocations", data=b"{", headers=JSON_CT),
        requests.post(f"{url}/v2/models/wine/infer", data=b"{", headers=JSON_CT),
    ]
    assert [r.status_code for r in rejected] == [400] * 4
    err = grpc_error(grpc_stub(workers_server), grpc_tensor_request(model="wine"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    log = log_since(workers_server, offset)
    lines = [line for line in log.splitlines() if "rejected 400" in line]
    assert len(lines) == 5, log
    assert "Traceback" not in log and "ERROR" not in log, log
    assert any("rejected 400 POST /v2/models/wine/infer model=wine version=-: input 'alcohol': null" in line for line in lines)
    assert any("rejected 400 gRPC ModelInfer model=wine" in line for line in lines)

    offset = len(workers_server.log_text())
    failed = requests.post(f"{url}/v2/models/failing/infer",
                           json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [-1.0]}]})
    assert failed.status_code == 500
    log = log_since(workers_server, offset)
    assert log.count("Traceback (most recent call last)") == 1, log
    assert "ValueError: model exploded on purpose" in log
    assert "failed 500 POST /v2/models/failing/infer model=failing" in log


def test_json_log_lines_carry_the_request_id(limits_server: MLServerProcess) -> None:
    offset = len(limits_server.log_text())
    response = requests.post(f"{limits_server.http_url}/v2/models/wine/infer", json=v2_wine(wine_row(alcohol=None)),
                             headers={"x-request-id": "req-12-abc"})
    assert response.status_code == 400
    records = []
    for line in log_since(limits_server, offset).splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))  # every line MLServer/uvicorn/we write is one JSON object
    ours = [r for r in records if r.get("request_id") == "req-12-abc"]
    mine = [r for r in ours if r["logger"] == "mlserver.sigaware.requests"]
    assert len(mine) == 1, records
    assert mine[0]["level"] == "INFO" and mine[0]["status"] == 400 and mine[0]["model"] == "wine"
    assert mine[0]["route"] == "POST /v2/models/wine/infer" and "alcohol" in mine[0]["message"]
    # MLServer's own lines are JSON too (its access log under debug: true)
    assert any(r["logger"].startswith("uvicorn") or r["logger"].startswith("mlserver.") for r in records if r is not mine[0])
