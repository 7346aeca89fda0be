"""Real flavor objects in process: every transformers pipeline task MLflow supports, the real MiniLM
(sentence-transformers) and a PyTorch module, decoded by our codec and compared with MLflow's own path.

For each model (tests/flavor_zoo.py), one V2 request goes through our decoder, predictor and encoder;
the reference is ``pyfunc.predict`` on the input MLflow's docs give for the task, encoded by the same
encoder. The ``/invocations`` answers are compared byte for byte with MLflow's scoring app
(``mlflow.pyfunc.scoring_server.init``, what ``mlflow models serve`` runs) on the same body. The real
servers are in tests/integration/test_flavors_served.py.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np
import pytest
from mlserver.types import InferenceRequest

from mlserver_sigaware.errors import InvalidInput
from mlserver_sigaware.protocols import scoring
from mlserver_sigaware.protocols.typed.api import predict_typed
from tests.flavor_zoo import CASES, TEXTS, TENSOR_ROWS, bytes_input
from tests.served_zoo import load_served

pytestmark = pytest.mark.flavors

JSON = "application/json"
class Loaded(dict):
    """kind -> (ServedModel, MLflow's pyfunc, MLflow's scoring app client), loaded on first use."""

    def __init__(self, zoo):
        super().__init__()
        self.zoo = zoo

    def __missing__(self, kind: str):
        import mlflow.pyfunc
        from fastapi.testclient import TestClient
        from mlflow.pyfunc import scoring_server

        path = self.zoo.path(kind)
        pyfunc = mlflow.pyfunc.load_model(str(path))
        loaded = self[kind] = (
            load_served(path),
            pyfunc,
            TestClient(scoring_server.init(pyfunc), raise_server_exceptions=False),
        )
        return loaded


@pytest.fixture(scope="module")
def loaded(flavor_zoo):
    saved = os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT")  # set by MLflow's init()
    logging.disable(logging.WARNING)  # MLflow warns on every params override
    yield Loaded(flavor_zoo)
    logging.disable(logging.NOTSET)
    if saved is None:
        os.environ.pop("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", None)
    else:
        os.environ["_MLFLOW_IS_IN_SERVING_ENVIRONMENT"] = saved


def _v2(inputs: list[dict], **parameters: Any) -> InferenceRequest:
    body: dict[str, Any] = {"inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    return InferenceRequest.model_validate(body)


def _outputs(outputs) -> list[tuple]:
    out = []
    for o in outputs:
        data = o.data.root if hasattr(o.data, "root") else o.data
        if o.datatype.startswith("FP"):
            data = np.round(np.asarray(data, dtype=np.float64), 5).tolist()
        out.append((o.name, o.datatype, list(o.shape), data))
    return out


def _ours(served, request: InferenceRequest):
    data, params = served.decoder.decode(request)
    prediction = served.predictor(data, params, enforce=served.needs_enforcement(request))
    return served.encoder.encode(prediction)


@pytest.mark.parametrize("kind", list(CASES))
def test_v2_answer_is_mlflows(loaded: Loaded, kind: str) -> None:
    """Our V2 decoding hands the flavor what MLflow would: the same answer as ``pyfunc.predict``.

    Before positional labels, text-classification answered 500 (its frame's ``input-0`` column
    became ``[{"input-0": ...}]``) and text2text prefixed every text with ``"input-0: "``."""
    served, pyfunc, _ = loaded[kind]
    case = CASES[kind]
    ours = _ours(served, _v2(case.v2))
    reference = served.encoder.encode(pyfunc.predict(case.mlflow))
    assert _outputs(ours) == _outputs(reference)
    # Outputs as the metadata promises: the names of the signature's outputs, in its order.
    promised = [t.name for t in served.metadata(kind).outputs or []]
    assert [o.name for o in ours] == promised


@pytest.mark.parametrize("kind", list(CASES))
def test_invocations_bytes_are_mlflows(loaded: Loaded, kind: str) -> None:
    served, _, app = loaded[kind]
    body = json.dumps(CASES[kind].invocations).encode()
    reference = app.post("/invocations", content=body, headers={"content-type": JSON})
    ours = scoring.invoke(served, body, JSON)
    assert reference.status_code == 200, reference.text
    assert (ours.status, ours.body) == (200, reference.content)


@pytest.mark.parametrize("kind", ["text-classification", "question-answering", "minilm", "pytorch"])
def test_typed_predict_answers(loaded: Loaded, kind: str) -> None:
    """``/predict`` records reach the flavor as MLflow's frame too (one record per row)."""
    served, pyfunc, _ = loaded[kind]
    case = CASES[kind]
    if kind == "pytorch":
        records = TENSOR_ROWS
    else:
        names = [i["name"] for i in case.v2]
        records = [dict(zip(names, row)) for row in zip(*(i["data"] for i in case.v2))]
    status, body = predict_typed(served, json.dumps({"inputs": records}).encode())
    assert status == 200, body
    outputs = json.loads(body)["outputs"]
    reference = served.encoder.encode(pyfunc.predict(case.mlflow))
    first = reference[0]
    got = [row[first.name] for row in outputs]
    want = [v.decode() if isinstance(v, bytes) else v for v in first.data.root]
    if first.datatype.startswith("FP"):
        np.testing.assert_allclose(np.ravel(got), np.ravel(want), rtol=1e-5)
    else:
        assert got == want


@pytest.mark.parametrize("kind", ["translation", "summarization", "text-generation"])
def test_generation_params_reach_the_pipeline(loaded: Loaded, kind: str) -> None:
    """``max_new_tokens`` from the params schema changes the answer, as under ``mlflow models serve``."""
    served, pyfunc, _ = loaded[kind]
    request = [bytes_input("input-0", TEXTS[:1])]
    short = _outputs(_ours(served, _v2(request, max_new_tokens=1)))
    longer = _outputs(_ours(served, _v2(request, max_new_tokens=6)))
    assert short != longer
    assert short == _outputs(served.encoder.encode(pyfunc.predict(TEXTS[:1], params={"max_new_tokens": 1})))


# ------------------------------------------------------------------------------ empty batches


@pytest.mark.parametrize("kind", list(CASES))
def test_zero_rows_are_a_400_on_v2_and_predict(loaded: Loaded, kind: str) -> None:
    """One rule, before the flavor runs (translation used to raise IndexError inside MLflow: 500)."""
    served = loaded[kind][0]
    inputs = [dict(i, shape=[0] + i["shape"][1:], data=[]) for i in CASES[kind].v2]
    with pytest.raises(InvalidInput, match=r"input '.+' has no rows"):
        served.decoder.decode(_v2(inputs))
    status, body = predict_typed(served, b'{"inputs": []}')
    assert status == 400, body


@pytest.mark.parametrize("kind", list(CASES))
def test_zero_rows_are_a_400_on_invocations(loaded: Loaded, kind: str) -> None:
    """MLflow's own 400 where its enforcement refuses the payload; ours (same error code) for an
    empty table that names its columns, which MLflow hands to the flavor (200 without the promised
    outputs for a classifier, 400 from inside a translator)."""
    served, pyfunc, app = loaded[kind]
    bare = b'{"inputs": []}'
    reference = app.post("/invocations", content=bare, headers={"content-type": JSON})
    ours = scoring.invoke(served, bare, JSON)
    assert reference.status_code == ours.status == 400
    assert json.loads(ours.body)["error_code"] == json.loads(reference.content)["error_code"]
    schema = pyfunc.metadata.get_input_schema()
    columns = [spec.name if spec.name is not None else i for i, spec in enumerate(schema.inputs)]
    table = json.dumps({"dataframe_split": {"columns": columns, "data": []}}).encode()
    ours = scoring.invoke(served, table, JSON)
    assert ours.status == 400, ours.body
    # (a tensor model's frame is refused by MLflow's own reading first: BAD_REQUEST)
    assert json.loads(ours.body)["error_code"] in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST")
