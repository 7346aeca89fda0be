"""Three real V2 clients behind one small interface, so a test can run the same request through each.

* ``requests``: plain HTTP/JSON, the body exactly as written here (what ``curl`` users send);
* ``triton_http``: ``tritonclient.http`` with JSON tensors (``binary_data=False``);
* ``triton_http_binary``: ``tritonclient.http`` with its defaults, Triton's binary tensor extension both
  ways (MLServer alone refuses it; ``_patches/v2_infer.py``);
* ``triton_grpc``: ``tritonclient.grpc``.

A request is a list of :class:`Tensor` (flat ``data`` plus ``shape``, strings as ``str``); a reply
is a :class:`Reply` whose outputs are normalised (flat lists, ``BYTES`` decoded to ``str``) so one
expectation fits every transport.  Transport-specific checks (raw JSON, headers, bytes over gRPC)
look at :attr:`Reply.raw` / :attr:`Reply.raw_outputs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

import grpc
import numpy as np
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

__all__ = [
    "CLIENTS",
    "GRPC_CODES",
    "Client",
    "GrpcClient",
    "Output",
    "Reply",
    "RestClient",
    "Tensor",
    "TritonHttpClient",
    "make_client",
    "shape_matches",
]

#: gRPC status (as ``tritonclient`` reports it) for each HTTP status MLServer maps.
GRPC_CODES = {
    200: "StatusCode.OK",
    400: "StatusCode.INVALID_ARGUMENT",
    404: "StatusCode.NOT_FOUND",
    500: "StatusCode.INTERNAL",
}

_NUMPY = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


@dataclass
class Tensor:
    """One V2 input: ``data`` is flat (row-major) and ``BYTES`` elements are ``str`` or ``bytes``."""

    name: str
    datatype: str
    shape: list[int]
    data: list
    content_type: Optional[str] = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "datatype": self.datatype,
            "shape": list(self.shape),
            "data": [v.decode("utf-8") if isinstance(v, bytes) else v for v in self.data],
        }
        if self.content_type:
            out["parameters"] = {"content_type": self.content_type}
        return out

    def as_numpy(self) -> np.ndarray:
        if self.datatype == "BYTES":
            values = [v.encode("utf-8") if isinstance(v, str) else v for v in self.data]
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            return arr.reshape(self.shape)
        return np.asarray(self.data, dtype=_NUMPY[self.datatype]).reshape(self.shape)


@dataclass
class Output:
    name: str
    datatype: str
    shape: list[int]
    data: list
    content_type: Optional[str] = None


@dataclass
class Reply:
    """What came back: ``code`` is the transport's own (HTTP status, or gRPC ``StatusCode.X``)."""

    code: Any
    outputs: dict[str, Output] = field(default_factory=dict)
    model_name: Optional[str] = None
    model_version: Optional[str] = None
    error: Optional[str] = None
    #: Response body (REST) or status details (gRPC) exactly as received.
    raw: str = ""
    #: Output values as the client library returned them (before decoding bytes to str).
    raw_outputs: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.code in (200, GRPC_CODES[200])

    def values(self, name: str) -> list:
        return self.outputs[name].data


def shape_matches(actual: list[int], declared: list[int]) -> bool:
    """``actual`` fits ``declared`` where ``-1`` is a wildcard."""
    return len(actual) == len(declared) and all(d == -1 or a == d for a, d in zip(actual, declared))


def _decode_bytes(values: list) -> list:
    return [v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else v for v in values]


class Client:
    """Common interface; see the module docstring."""

    name = ""

    def code(self, http_status: int) -> Any:
        """This transport's code for an HTTP status."""
        return http_status

    def infer(
        self,
        model: str,
        inputs: list[Tensor],
        outputs: Optional[list[str]] = None,
        parameters: Optional[dict[str, Any]] = None,
        version: str = "",
    ) -> Reply:
        raise NotImplementedError

    def metadata(self, model: str) -> dict[str, Any]:
        """``{"name", "versions", "inputs", "outputs"}``; tensors as ``{"name", "datatype", "shape"}``."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class RestClient(Client):
    name = "requests"

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()

    def post_infer(self, model: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(f"{self.base_url}/v2/models/{model}/infer", json=body, timeout=60)

    def infer(self, model, inputs, outputs=None, parameters=None, version=""):
        body: dict[str, Any] = {"inputs": [t.as_json() for t in inputs]}
        if outputs is not None:
            body["outputs"] = [{"name": n} for n in outputs]
        if parameters is not None:
            body["parameters"] = parameters
        return self.reply(self.post_infer(model, body))

    @staticmethod
    def reply(response: requests.Response) -> Reply:
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code != 200:
            try:
                error = response.json().get("error")
            except ValueError:
                error = None
            return Reply(code=response.status_code, error=error, raw=response.text, headers=headers)
        body = response.json()
        outs = {}
        raw = {}
        for o in body["outputs"]:
            raw[o["name"]] = o["data"]
            outs[o["name"]] = Output(
                name=o["name"],
                datatype=o["datatype"],
                shape=list(o["shape"]),
                data=list(np.ravel(np.asarray(o["data"], dtype=object)).tolist()),
                content_type=(o.get("parameters") or {}).get("content_type"),
            )
        return Reply(
            code=200,
            outputs=outs,
            model_name=body.get("model_name"),
            model_version=body.get("model_version"),
            raw=response.text,
            raw_outputs=raw,
            headers=headers,
        )

    def metadata(self, model):
        response = self.session.get(f"{self.base_url}/v2/models/{model}", timeout=30)
        assert response.status_code == 200, response.text
        return response.json()


class TritonHttpClient(Client):
    name = "triton_http"
    #: Send inputs and ask outputs as binary tensors (tritonclient's default) or as JSON.
    binary = False

    def __init__(self, base_url: str):
        self.client = triton_http.InferenceServerClient(base_url.split("://", 1)[1])

    def infer(self, model, inputs, outputs=None, parameters=None, version=""):
        tensors = []
        for t in inputs:
            inp = triton_http.InferInput(t.name, list(t.shape), t.datatype)
            inp.set_data_from_numpy(t.as_numpy(), binary_data=self.binary)
            tensors.append(inp)
        requested = (
            [triton_http.InferRequestedOutput(n, binary_data=self.binary) for n in outputs]
            if outputs is not None
            else None
        )
        try:
            result = self.client.infer(
                model, tensors, model_version=version, outputs=requested, parameters=parameters
            )
        except InferenceServerException as exc:
            return Reply(code=int(exc.status()), error=exc.message(), raw=str(exc.message()))
        response = result.get_response()
        outs = {}
        raw = {}
        for o in response["outputs"]:
            values = result.as_numpy(o["name"])
            raw[o["name"]] = values
            outs[o["name"]] = Output(
                name=o["name"],
                datatype=o["datatype"],
                shape=list(o["shape"]),
                data=_decode_bytes(values.ravel().tolist()),
                content_type=(o.get("parameters") or {}).get("content_type"),
            )
        return Reply(
            code=200,
            outputs=outs,
            model_name=response.get("model_name"),
            model_version=response.get("model_version"),
            raw=json.dumps(response, default=str),
            raw_outputs=raw,
        )

    def metadata(self, model):
        return self.client.get_model_metadata(model)

    def close(self):
        self.client.close()


class TritonHttpBinaryClient(TritonHttpClient):
    name = "triton_http_binary"
    binary = True


class GrpcClient(Client):
    name = "triton_grpc"

    def __init__(self, grpc_url: str):
        self.url = grpc_url
        self.client = triton_grpc.InferenceServerClient(grpc_url)
        self._channel: Optional[grpc.Channel] = None

    def code(self, http_status):
        return GRPC_CODES[http_status]

    def infer(self, model, inputs, outputs=None, parameters=None, version=""):
        tensors = []
        for t in inputs:
            inp = triton_grpc.InferInput(t.name, list(t.shape), t.datatype)
            inp.set_data_from_numpy(t.as_numpy())
            tensors.append(inp)
        requested = (
            [triton_grpc.InferRequestedOutput(n) for n in outputs] if outputs is not None else None
        )
        try:
            result = self.client.infer(
                model,
                tensors,
                model_version=version,
                outputs=requested,
                parameters=parameters,
                client_timeout=60,
            )
        except InferenceServerException as exc:
            return Reply(code=str(exc.status()), error=exc.message(), raw=str(exc.message()))
        response = result.get_response()
        outs = {}
        raw = {}
        for o in response.outputs:
            values = result.as_numpy(o.name)
            raw[o.name] = values
            ct = o.parameters["content_type"].string_param if "content_type" in o.parameters else None
            outs[o.name] = Output(
                name=o.name,
                datatype=o.datatype,
                shape=[int(d) for d in o.shape],
                data=_decode_bytes(values.ravel().tolist()),
                content_type=ct,
            )
        return Reply(
            code=GRPC_CODES[200],
            outputs=outs,
            model_name=response.model_name,
            model_version=response.model_version or None,
            raw=str(response),
            raw_outputs=raw,
        )

    def raw_infer(self, request: "service_pb2.ModelInferRequest") -> Reply:
        """Send a hand-built protobuf request (for what tritonclient refuses to build)."""
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.url)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)
        try:
            stub.ModelInfer(request, timeout=60)
        except grpc.RpcError as exc:
            return Reply(code=str(exc.code()), error=exc.details(), raw=exc.details() or "")
        return Reply(code=GRPC_CODES[200])

    def metadata(self, model):
        meta = self.client.get_model_metadata(model, as_json=True)

        def tensors(items):
            return [
                {"name": t["name"], "datatype": t["datatype"], "shape": [int(d) for d in t["shape"]]}
                for t in items
            ]

        return {
            "name": meta["name"],
            "versions": list(meta.get("versions", [])),
            "platform": meta.get("platform"),
            "inputs": tensors(meta.get("inputs", [])),
            "outputs": tensors(meta.get("outputs", [])),
        }

    def close(self):
        self.client.close()
        if self._channel is not None:
            self._channel.close()


CLIENTS = ("requests", "triton_http", "triton_http_binary", "triton_grpc")


def make_client(kind: str, server: Any) -> Client:
    """A client of ``kind`` (one of :data:`CLIENTS`) for an ``MLServerProcess``."""
    if kind == "requests":
        return RestClient(server.http_url)
    if kind == "triton_http":
        return TritonHttpClient(server.http_url)
    if kind == "triton_http_binary":
        return TritonHttpBinaryClient(server.http_url)
    if kind == "triton_grpc":
        return GrpcClient(server.grpc_url)
    raise ValueError(kind)
