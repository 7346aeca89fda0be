"""In-process measurements of our runtime (no HTTP): where a request's time and memory go.

* :func:`stage_times`: one V2 request through the stages our REST ``infer`` route runs, each timed on
  its own (median of ``reps``): parsing the JSON body into an ``InferenceRequest`` (float arrays as
  ndarrays, ``_patches/v2_json.py``), our ``decoder.decode``, the ``predictor`` call, our
  ``encoder.encode``, and the response's JSON bytes; beside them, for reference, what MLServer's own
  route would spend parsing (orjson + pydantic) and serializing (FastAPI's ``serialize_response`` +
  MLServer's ``encode_to_json_bytes``).
* :func:`payload_copies`: tracemalloc peak and live memory from the parsed request to the moment the
  model is called, in units of the numeric payload (rows x columns x 8 bytes).
* :func:`profile_single_row`: cProfile of ``SignatureAwareRuntime.predict`` itself (the real runtime,
  loaded from the model folder) on one-row requests.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import pstats
import re
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Optional

import orjson
from mlserver.types import InferenceRequest, InferenceResponse

from mlserver_sigaware.model.location import ModelRef, ResolvedModel
from mlserver_sigaware.model.served import ServedModel
from mlserver_sigaware.settings import SigawareSettings


def load_served(model_path: Path) -> ServedModel:
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(str(model_path))
    resolved = ResolvedModel(ref=ModelRef("local", str(model_path)), load_uri=str(model_path))
    return ServedModel.from_pyfunc(pyfunc, resolved, SigawareSettings())


def _median_ms(fn: Callable[[], Any], reps: int) -> float:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e3


def _response_field():
    from fastapi.utils import create_model_field

    return create_model_field(name="Response_infer", type_=InferenceResponse, mode="serialization")


def serialize_like_mlserver(response: InferenceResponse, field: Any = None) -> bytes:
    """What MLServer's REST ``infer`` endpoint does with the returned response (FastAPI + orjson)."""
    from fastapi.routing import serialize_response
    from mlserver.codecs.json import encode_to_json_bytes

    coroutine = serialize_response(
        field=field or _response_field(),
        response_content=response,
        exclude_unset=True,
        exclude_none=True,
        is_coroutine=True,
    )
    # With is_coroutine=True it never awaits anything: drive it by hand (works inside a running loop).
    try:
        coroutine.send(None)
    except StopIteration as done:
        return encode_to_json_bytes(done.value)
    coroutine.close()
    raise RuntimeError("serialize_response suspended unexpectedly")


def stage_times(served: ServedModel, body: bytes, reps: int = 15) -> dict[str, float]:
    """Median milliseconds of each stage of one V2 request as our REST ``infer`` route runs it (see the
    module docstring), with MLServer's own parse and serialization beside them for reference."""
    from mlserver_sigaware._patches.binary_tensors import encode_json, response_document
    from mlserver_sigaware._patches.v2_json import parse_v2_json

    field = _response_field()
    request = parse_v2_json(body)  # what our route hands MLServer's data plane: float arrays as ndarrays
    data, params = served.decoder.decode(request)
    prediction = served.predictor(data, params, enforce=False)
    outputs = served.encoder.encode(prediction, arrays=True)
    response = InferenceResponse(model_name="wine", outputs=outputs)
    listed = InferenceResponse(model_name="wine", outputs=served.encoder.encode(prediction))
    out = {
        "parse": _median_ms(lambda: parse_v2_json(body), reps),
        "decode": _median_ms(lambda: served.decoder.decode(request), reps),
        "predict": _median_ms(lambda: served.predictor(data, params, enforce=False), reps),
        "encode": _median_ms(lambda: served.encoder.encode(prediction, arrays=True), reps),
        "serialize": _median_ms(lambda: encode_json(response_document(response)), reps),
        "mlserver_parse": _median_ms(lambda: InferenceRequest.model_validate(orjson.loads(body)), reps),
        "mlserver_serialize": _median_ms(lambda: serialize_like_mlserver(listed, field), reps),
        "mlflow_enforce": _median_ms(lambda: served.predictor.enforce(data), reps),
    }
    out["total_in_process"] = sum(out[k] for k in ("parse", "decode", "predict", "encode", "serialize"))
    return out


def invocations_time(served: ServedModel, body: bytes, reps: int = 5) -> float:
    """Median milliseconds of our whole ``/invocations`` handling (``scoring.invoke``) of ``body``."""
    from mlserver_sigaware.protocols import scoring

    result = scoring.invoke(served, body, "application/json")
    if result.status != 200:
        raise RuntimeError(f"/invocations answered {result.status}: {result.body[:200]!r}")
    return _median_ms(lambda: scoring.invoke(served, body, "application/json"), reps)


class _ModelReached(BaseException):
    """Raised by the spy in place of the model (a BaseException: the predictor must not catch it)."""


def _measure_to_model(served: ServedModel, request: InferenceRequest, enforce: bool) -> dict[str, Any]:
    predictor = served.predictor
    original = predictor._fn
    seen: dict[str, Any] = {}

    def spy(data: Any, *args: Any, **kwargs: Any) -> Any:
        current, peak = tracemalloc.get_traced_memory()
        seen["current"], seen["peak"] = current, peak
        seen["snapshot"] = tracemalloc.take_snapshot()
        raise _ModelReached

    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        predictor._fn = spy
        try:
            data, params = served.decoder.decode(request)
            predictor(data, params, enforce=enforce)
        except _ModelReached:
            pass
        finally:
            predictor._fn = original
            data = params = None
    finally:
        tracemalloc.stop()
    snapshot = seen.pop("snapshot")
    root = str(Path(__file__).resolve().parents[1]) + "/"
    big = [
        (f"{s.traceback[0].filename.split('site-packages/')[-1].replace(root, '')}:{s.traceback[0].lineno}", s.size)
        for s in snapshot.statistics("lineno")
        if s.size >= 64 * 1024
    ]
    return {"peak": seen["peak"] - base, "live": seen["current"] - base, "live_blocks": big[:6]}


def payload_copies(served: ServedModel, body: bytes, payload_bytes: int) -> dict[str, Any]:
    """Memory from the parsed request to the model's call, in payload units (see the module docstring)."""
    # MLServer's part, for reference: body bytes -> InferenceRequest (Python floats, before our runtime).
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        request = InferenceRequest.model_validate(orjson.loads(body))
        mlserver_live, mlserver_peak = (v - base for v in tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    fast = _measure_to_model(served, request, enforce=False)
    mlflow = _measure_to_model(served, request, enforce=True)
    return {
        "payload_bytes": payload_bytes,
        "mlserver_request_peak": mlserver_peak,
        "mlserver_request_live": mlserver_live,
        "fast": fast,
        "mlflow_enforce": mlflow,
        "copies_peak": fast["peak"] / payload_bytes,
        "copies_live": fast["live"] / payload_bytes,
        "mlflow_copies_peak": mlflow["peak"] / payload_bytes,
    }


# ------------------------------------------------------------------------------------------- profile


async def _runtime_for(name: str, model_path: Path):
    from mlserver.settings import ModelParameters, ModelSettings

    from mlserver_sigaware import SignatureAwareRuntime

    settings = ModelSettings(
        name=name,
        implementation=SignatureAwareRuntime,
        parameters=ModelParameters(uri=str(model_path)),
    )
    runtime = SignatureAwareRuntime(settings)
    await runtime.load()
    return runtime


def profile_single_row(
    model_path: Path, body: bytes, iterations: int = 3000, top: int = 30
) -> dict[str, Any]:
    """cProfile ``SignatureAwareRuntime.predict`` on one-row requests; stage times per request."""

    async def main() -> dict[str, Any]:
        runtime = await _runtime_for("wine", model_path)
        request = InferenceRequest.model_validate(orjson.loads(body))
        for _ in range(200):  # warm up
            await runtime.predict(request)
        t0 = time.perf_counter()
        for _ in range(iterations):
            await runtime.predict(request)
        per_request_us = (time.perf_counter() - t0) / iterations * 1e6
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(iterations):
            await runtime.predict(request)
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(top)
        by_cum = io.StringIO()
        pstats.Stats(profiler, stream=by_cum).sort_stats("cumulative").print_stats(top)
        served = await runtime.select(None)
        stages = stage_times(served, body, reps=500)
        return {
            "predict_us": per_request_us,
            "stages_us": {k: v * 1e3 for k, v in stages.items()},
            "tottime": _trim(text.getvalue()),
            "cumulative": _trim(by_cum.getvalue()),
        }

    return asyncio.run(main())


def _trim(report: str) -> str:
    """pstats output without the machine-specific path prefixes."""
    root = str(Path(__file__).resolve().parents[1]) + "/"
    lines = (_SITE.sub("", line.replace(root, "")).rstrip() for line in report.splitlines())
    return "\n".join(lines).strip()


_SITE = re.compile(r"(?<![^\s(])(?:[^\s(]*?site-packages/|[^\s(]*?lib/python3\.\d+/(?!site-packages))")


def fmt_bytes(n: Optional[float]) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB"
