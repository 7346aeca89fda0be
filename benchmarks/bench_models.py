"""Models and request bodies of the benchmark.

The wine regressor is the demo's (``mlserver_sigaware.demo.train_wine_model``, saved by ``tests/zoo.py``),
the text and tensor models are the test zoo's; the *trivial* model defined here takes the same 13 double
columns and returns their row sums, so that its cost is almost only the serving stack's.

Like ``tests/zoo.py`` (see its docstring), this module is pickled *by value* into the saved model and
deliberately has no ``from __future__ import annotations``: the servers load the model without importing
``benchmarks``.
"""

import sys
from pathlib import Path
from typing import Any, Optional

import cloudpickle
import numpy as np
import orjson
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

_ROOT = Path(__file__).resolve().parents[1]
for _p in (str(_ROOT), str(_ROOT / "tests"), str(_ROOT / "tests" / "integration")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import zoo  # noqa: E402  (tests/zoo.py)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

KINDS = ("wine", "trivial", "text", "tensor")


class RowSumModel(PythonModel):
    """13 double columns in, one float64 per row out (the sum of its columns)."""

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        return model_input.to_numpy(dtype=np.float64).sum(axis=1)


def wine_rows(n: int) -> pd.DataFrame:
    """``n`` rows of sklearn's wine features (the 178 rows repeated as needed)."""
    _, features = _wine()
    reps = -(-n // len(features))
    return pd.concat([features] * reps, ignore_index=True).iloc[:n]


_WINE: Any = None


def _wine():
    global _WINE
    if _WINE is None:
        from mlserver_sigaware.demo import train_wine_model

        _WINE = train_wine_model()
    return _WINE


def build_trivial(dest: Path) -> Path:
    import mlflow
    from mlflow.models import infer_signature

    from mlserver_sigaware.demo import quiet_mlflow

    _, features = _wine()
    model = RowSumModel()
    signature = infer_signature(features, model.predict(None, features))
    with quiet_mlflow():
        mlflow.pyfunc.save_model(path=str(dest), python_model=model, signature=signature, pip_requirements=[])
    return Path(dest)


def build(kind: str, dest: Path) -> Path:
    if kind == "wine":
        # cloudpickle rather than MLflow 3's default skops: same model, each server starts ~2 s sooner.
        return zoo.build_wine(dest, serialization_format="cloudpickle")
    if kind == "trivial":
        return build_trivial(dest)
    if kind == "text":
        return zoo.build_text(dest)
    if kind == "tensor":
        return zoo.build_tensor(dest)
    raise ValueError(kind)


# ------------------------------------------------------------------------------------ request bodies

TEXT = "Hello my friend, good morning and good night"


def model_input(kind: str, rows: int) -> Any:
    """What a Python caller would pass to ``pyfunc.predict`` (to compute the expected answer)."""
    if kind in ("wine", "trivial"):
        return wine_rows(rows)
    if kind == "text":
        return pd.DataFrame({"prompt": [TEXT] * rows})
    if kind == "tensor":
        return (np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) / 7.0).astype(np.float32)
    raise ValueError(kind)


def v2_body(kind: str, rows: int) -> bytes:
    """A V2 ``/infer`` body as a client following the model's metadata would send it."""
    data = model_input(kind, rows)
    if kind in ("wine", "trivial"):
        inputs = [
            {"name": str(c), "datatype": "FP64", "shape": [rows], "data": data[c].astype(float).tolist()}
            for c in data.columns
        ]
    elif kind == "text":
        # content_type "str" as our metadata advertises; MLServer's MLflow runtime needs it too.
        inputs = [
            {
                "name": "prompt",
                "datatype": "BYTES",
                "shape": [rows],
                "data": data["prompt"].tolist(),
                "parameters": {"content_type": "str"},
            }
        ]
    else:
        inputs = [{"name": "input-0", "datatype": "FP32", "shape": [rows, 4], "data": data.ravel().tolist()}]
    return orjson.dumps({"inputs": inputs})


def _tensors(kind: str, rows: int) -> list[tuple[str, str, np.ndarray]]:
    """``(name, datatype, values)`` of each input, as a tritonclient user would set them."""
    data = model_input(kind, rows)
    if kind in ("wine", "trivial"):
        return [(str(c), "FP64", data[c].to_numpy(dtype=np.float64)) for c in data.columns]
    if kind == "tensor":
        return [("input-0", "FP32", data)]
    raise ValueError(f"no binary/gRPC body for {kind}")


def v2_binary_body(kind: str, rows: int) -> tuple[bytes, int]:
    """What ``tritonclient.http`` sends with its defaults: binary tensors after the JSON header (whose
    length is the second item, the ``Inference-Header-Content-Length``), every output asked binary."""
    from tritonclient.http import InferInput
    from tritonclient.http._utils import _get_inference_request

    inputs = []
    for name, datatype, values in _tensors(kind, rows):
        inp = InferInput(name, list(values.shape), datatype)
        inp.set_data_from_numpy(values)
        inputs.append(inp)
    body, json_size = _get_inference_request(
        inputs=inputs, request_id="", outputs=None, sequence_id=0, sequence_start=False, sequence_end=False,
        priority=0, timeout=None, custom_parameters=None,
    )
    return body, int(json_size)


def grpc_request(kind: str, rows: int, model: str) -> bytes:
    """What ``tritonclient.grpc`` sends to ``model`` with ``set_data_from_numpy`` (each input's bytes in
    ``raw_input_contents``), serialized. Built with MLServer's copy of the V2 protos: tritonclient's
    define the same names and both cannot be imported into one process (ours imports MLServer's)."""
    from mlserver.grpc import dataplane_pb2 as pb

    request = pb.ModelInferRequest(model_name=model)
    for name, datatype, values in _tensors(kind, rows):
        tensor = request.inputs.add(name=name, datatype=datatype)
        tensor.shape.extend(values.shape)
        request.raw_input_contents.append(np.ascontiguousarray(values).tobytes())
    return request.SerializeToString()


def binary_answer_values(body: bytes, header_length: Optional[int]) -> list:
    """The first output of a V2 REST answer, binary or JSON, read as ``tritonclient.http`` reads it."""
    from tritonclient.http import InferResult

    result = InferResult.from_response_body(body, header_length=header_length)
    first = result.get_response()["outputs"][0]["name"]
    return result.as_numpy(first).ravel().tolist()


def grpc_answer_values(response: Any) -> list:
    """The first output of a ``ModelInferResponse`` (raw or typed contents)."""
    output = response.outputs[0]
    dtypes = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}
    if response.raw_output_contents:
        return np.frombuffer(response.raw_output_contents[0], dtype=dtypes[output.datatype]).tolist()
    contents = output.contents
    for field in ("fp64_contents", "fp32_contents", "int64_contents", "int_contents", "bool_contents"):
        values = list(getattr(contents, field))
        if values:
            return values
    return []


def invocations_body(kind: str, rows: int) -> bytes:
    """An MLflow scoring protocol body, as ``mlflow models serve`` clients send it."""
    data = model_input(kind, rows)
    if isinstance(data, pd.DataFrame):
        return orjson.dumps(
            {"dataframe_split": {"columns": [str(c) for c in data.columns], "data": data.to_numpy().tolist()}}
        )
    return orjson.dumps({"inputs": data.tolist()})


def leaves(obj: Any) -> list:
    """Flat list of the scalar leaves of a JSON document (dict values in order)."""
    out: list = []
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def answer_values(protocol: str, document: Any) -> list:
    """The predicted values of a response: V2 first output's data, or /invocations' predictions."""
    if protocol == "v2":
        return leaves(document["outputs"][0]["data"])
    if isinstance(document, dict) and "predictions" in document:
        return leaves(document["predictions"])
    return leaves(document)
