"""Triton's binary tensor extension on REST (``_patches/v2_infer.py``), against real ``mlserver start``.

``tritonclient.http`` with its defaults sends inputs as binary tensors and asks outputs back binary; the
answers must equal the same request's in JSON, on large requests too, with ``parallel_workers`` 0 and 1,
adaptive batching, gzip, and version selection by header. A body whose binary part does not fit its
JSON header is a 400 naming the input, with a JSON body, one log line, and the server keeps serving.
"""

from __future__ import annotations

import gzip
from typing import Any, Optional

import numpy as np
import orjson
import pytest
import requests
import tritonclient.http as triton_http
from tritonclient.http._utils import _get_inference_request

from cases import wine_frame
from harness import MLServerProcess

pytestmark = pytest.mark.integration

TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "/')


def wine_columns(rows: int) -> dict[str, np.ndarray]:
    frame = wine_frame()
    reps = -(-rows // len(frame))
    frame = frame.iloc[np.arange(reps * len(frame)) % len(frame)].iloc[:rows]
    return {str(c): frame[c].to_numpy(dtype=np.float64) for c in frame.columns}


def triton_infer(server: MLServerProcess, model: str, arrays: dict[str, np.ndarray], binary: bool,
                 datatype: str = "FP64", **kw: Any) -> dict[str, np.ndarray]:  # fmt: skip
    """Outputs of ``model`` for ``arrays`` through ``tritonclient.http``, binary both ways or JSON."""
    client = triton_http.InferenceServerClient(server.http_url.split("://", 1)[1], network_timeout=120)
    try:
        inputs = []
        for name, values in arrays.items():
            inp = triton_http.InferInput(name, list(values.shape), datatype)
            inp.set_data_from_numpy(values, binary_data=binary)
            inputs.append(inp)
        outputs = None if binary else []  # None: tritonclient asks every output binary
        if outputs == []:
            names = [o["name"] for o in client.get_model_metadata(model)["outputs"]]
            outputs = [triton_http.InferRequestedOutput(n, binary_data=False) for n in names]
        result = client.infer(model, inputs, outputs=outputs, **kw)
        response = result.get_response()
        if binary:
            assert all("binary_data_size" in (o.get("parameters") or {}) for o in response["outputs"]), response
        else:
            assert all("data" in o for o in response["outputs"]), response
        return {o["name"]: result.as_numpy(o["name"]) for o in response["outputs"]}
    finally:
        client.close()


def assert_same_outputs(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("rows", [1, 10_000])
@pytest.mark.parametrize("server_name", ["main_server", "workers_server"])
def test_wine_binary_answers_equal_json(request, server_name: str, rows: int) -> None:
    server = request.getfixturevalue(server_name)
    model = "wine" if server_name == "workers_server" else "wine"
    columns = wine_columns(rows)
    binary = triton_infer(server, model, columns, binary=True)
    as_json = triton_infer(server, model, columns, binary=False)
    assert_same_outputs(binary, as_json)
    assert next(iter(binary.values())).shape == (rows,)


@pytest.mark.parametrize("rows", [1, 10_000])
@pytest.mark.parametrize("server_name", ["main_server", "workers_server"])
def test_wine_grpc_raw_answers_equal_json(request, server_name: str, rows: int) -> None:
    """``tritonclient.grpc`` (raw contents both ways): our converter builds the request and writes large
    outputs from arrays (``_patches/grpc_raw_arrays.py``); the answers are the REST JSON answers."""
    from v2 import GrpcClient, Tensor

    server = request.getfixturevalue(server_name)
    columns = wine_columns(rows)
    client = GrpcClient(server.grpc_url)
    try:
        reply = client.infer("wine", [Tensor(n, "FP64", [rows], v.tolist()) for n, v in columns.items()])
    finally:
        client.close()
    assert reply.ok, reply.raw
    assert_same_outputs(reply.raw_outputs, triton_infer(server, "wine", columns, binary=False))


def test_tensor_model_60000_rows_binary_equals_json(main_server: MLServerProcess) -> None:
    x = (np.arange(60_000 * 4, dtype=np.float32).reshape(60_000, 4) / 7).astype(np.float32)
    binary = triton_infer(main_server, "tensor", {"x": x}, binary=True, datatype="FP32")
    as_json = triton_infer(main_server, "tensor", {"x": x}, binary=False, datatype="FP32")
    assert_same_outputs(binary, as_json)
    assert next(iter(binary.values())).shape[0] == 60_000


@pytest.mark.parametrize("model", ["wine-batched", "tensor-batched"])
def test_binary_with_adaptive_batching(main_server: MLServerProcess, model: str) -> None:
    if model == "wine-batched":
        arrays, datatype = wine_columns(3), "FP64"
    else:
        arrays, datatype = {"x": np.arange(8, dtype=np.float32).reshape(2, 4)}, "FP32"
    assert_same_outputs(triton_infer(main_server, model, arrays, binary=True, datatype=datatype),
                        triton_infer(main_server, model, arrays, binary=False, datatype=datatype))  # fmt: skip


def test_gzip_binary_request_and_response(main_server: MLServerProcess) -> None:
    columns = wine_columns(500)
    got = triton_infer(main_server, "wine", columns, binary=True, request_compression_algorithm="gzip",
                       response_compression_algorithm="gzip")  # fmt: skip
    assert_same_outputs(got, triton_infer(main_server, "wine", columns, binary=False))


def test_binary_strings_and_mixed_datatypes(main_server: MLServerProcess) -> None:
    """BYTES inputs (length-prefixed), BOOL and INT64, outputs of each kind back in binary."""
    from v2 import make_client

    from cases import mixed_case, mixed_row

    case = mixed_case([mixed_row(i) for i in range(3)])
    replies = [make_client(kind, main_server).infer(case.model, case.inputs) for kind in ("requests", "triton_http_binary")]
    assert replies[0].code == replies[1].code == 200
    assert {n: o.data for n, o in replies[0].outputs.items()} == {n: o.data for n, o in replies[1].outputs.items()}


# ------------------------------------------------------------------------------ bodies that do not fit


def binary_body(arrays: dict[str, np.ndarray], datatype: str = "FP64") -> tuple[bytes, int]:
    inputs = []
    for name, values in arrays.items():
        inp = triton_http.InferInput(name, list(values.shape), datatype)
        inp.set_data_from_numpy(values)
        inputs.append(inp)
    return _get_inference_request(inputs, "", None, 0, False, False, 0, None, None)


def post(server: MLServerProcess, body: bytes, header: Optional[Any], model: str = "wine",
         **headers: str) -> requests.Response:  # fmt: skip
    if header is not None:
        headers["Inference-Header-Content-Length"] = str(header)
    return requests.post(f"{server.http_url}/v2/models/{model}/infer", data=body, headers=headers, timeout=60)


def assert_400(response: requests.Response, *needles: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    for needle in needles:
        assert needle in message, (needle, message)
    for mark in TRACEBACK_MARKS:
        assert mark not in response.text


def _with_header(body: bytes, length: int, change) -> tuple[bytes, int]:
    header = orjson.loads(body[:length])
    change(header)
    new = orjson.dumps(header)
    return new + body[length:], len(new)


def test_bodies_that_do_not_fit_are_400s_naming_the_input(main_server: MLServerProcess) -> None:
    columns = wine_columns(2)
    body, length = binary_body(columns)
    name = next(iter(columns))
    offset = main_server.log_text().__len__()

    def size_of(first: int):
        return lambda h: h["inputs"][0]["parameters"].update(binary_data_size=first)

    refused = [
        (post(main_server, body[:-3], length), (f"input '{list(columns)[-1]}'", "binary_data_size is 16 bytes, only 13")),
        (post(main_server, body + b"xx", length), ("2 bytes after the binary data",)),
        (post(main_server, *_with_header(body, length, size_of(24))), (f"input '{name}'", "shape [2] of FP64 needs 16")),
        (post(main_server, *_with_header(body, length, size_of(-1))), (f"input '{name}'", "binary_data_size must be a byte count")),
        (post(main_server, *_with_header(body, length, lambda h: h["inputs"][0].update(data=[1.0, 2.0]))),
         (f"input '{name}'", "both 'data' and parameters.binary_data_size")),
        (post(main_server, *_with_header(body, length, lambda h: h["inputs"][0].update(datatype="FP99"))),
         ("inputs[0].datatype",)),
        (post(main_server, body, "twelve"), ("Inference-Header-Content-Length", "'twelve'")),
        (post(main_server, body, len(body) + 1), ("Inference-Header-Content-Length", "longer than")),
        (post(main_server, body, length - 1), ("JSON header", "not valid JSON")),
    ]  # fmt: skip
    text, text_length = binary_body({"prompt": np.array([b"hello", b"world"], dtype=object)}, "BYTES")
    refused.append((post(main_server, text[:-2], text_length, model="text"),
                    ("input 'prompt'", "binary_data_size is", "only")))  # fmt: skip
    truncated, truncated_length = _with_header(text, text_length, lambda h: h["inputs"][0]["parameters"].update(binary_data_size=len(text) - text_length - 2))  # noqa: E501
    refused.append((post(main_server, truncated[:-2], truncated_length, model="text"),
                    ("input 'prompt'", "BYTES element 1 needs 5 bytes")))  # fmt: skip
    flags, flags_length = binary_body({"flags": np.array([True, False])}, "BOOL")
    refused.append((post(main_server, flags[:-1] + b"\x02", flags_length, model="text"), ("input 'flags'", "0 or 1")))
    for response, needles in refused:
        assert_400(response, *needles)
    log = main_server.log_text()[offset:]
    assert log.count("rejected 400 POST /v2/models/") >= len(refused)
    for mark in TRACEBACK_MARKS:
        assert mark not in log
    assert_same_outputs(triton_infer(main_server, "wine", columns, binary=True),
                        triton_infer(main_server, "wine", columns, binary=False))  # fmt: skip


def test_binary_bytes_are_not_counted_as_json_nesting(main_server: MLServerProcess) -> None:
    """A float whose bytes are all ``[`` (0x5b) is data, not 8 levels of JSON; the header itself is checked."""
    value = np.frombuffer(b"[" * 8, dtype=np.float64)[0]
    columns = {k: np.full(4000, value) for k in wine_columns(1)}
    body, length = binary_body(columns)
    assert post(main_server, body, length).status_code == 200
    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    deep, deep_length = _with_header(body, length, lambda h: h.update(parameters={"x": nested}))
    assert_400(post(main_server, deep, deep_length), "JSON nested deeper than")


def test_binary_to_an_unknown_model_is_a_404(main_server: MLServerProcess) -> None:
    body, length = binary_body(wine_columns(1))
    response = post(main_server, body, length, model="no-such-model")
    assert response.status_code == 404 and "no-such-model" in response.json()["error"]


def test_gzip_body_with_binary_tensors(main_server: MLServerProcess) -> None:
    body, length = binary_body(wine_columns(3))
    response = post(main_server, gzip.compress(body), length, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header = orjson.loads(response.content[: int(response.headers["inference-header-content-length"])])
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 3 * 8
