"""The floor of the benchmark: an MLServer runtime that does nothing.

``predict`` returns a fixed one-element output without looking at (let alone decoding) the request, and
``POST /invocations`` reads the body (as every real handler must) and answers a fixed body. Whatever a
request costs here is MLServer's own cost (HTTP, V2 body parsing into pydantic models, worker hop,
response serialization): no runtime can be faster than this on the same server.

Loaded by ``mlserver start`` as ``floor_runtime.FloorRuntime`` (``benchmarks/`` on ``PYTHONPATH``).
"""

from __future__ import annotations

from fastapi import Depends
from mlserver import MLModel
from mlserver.handlers import custom_handler
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput
from starlette.requests import Request
from starlette.responses import Response

_FIXED_BODY = b'{"predictions": [0.0]}'


async def _raw_body(request: Request) -> bytes:
    return await request.body()


class FloorRuntime(MLModel):
    async def load(self) -> bool:
        self.ready = True
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="predictions", datatype="FP64", shape=[1], data=[0.0])],
        )

    @custom_handler(rest_path="/invocations", rest_method="POST")
    async def floor_invocations(self, body: bytes = Depends(_raw_body)) -> Response:
        return Response(content=_FIXED_BODY, media_type="application/json")
