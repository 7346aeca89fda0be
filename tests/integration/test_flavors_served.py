"""Transformers pipelines, the real MiniLM and a PyTorch module served by real ``mlserver start``
processes, next to ``mlflow models serve`` on the same model folders (tests/flavor_zoo.py).

* ``single``: every model, ``parallel_workers`` 0, no batching;
* ``batched``: a few models in one inference worker (``parallel_workers`` 1) with adaptive batching;
* MLflow's own scoring server for the models whose ``/invocations`` bytes are compared.

Each model answers the same over V2 REST (``requests`` and ``tritonclient.http``), V2 gRPC
(``tritonclient.grpc``) and ``/predict``; ``/invocations`` answers the bytes ``mlflow models serve``
answers; one-row requests sent concurrently to the batching worker answer what each row answers
alone; zero rows are a 400 everywhere. What each answer *is* (the same as ``pyfunc.predict``) is
checked in process by tests/model/test_flavors.py.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pytest
import requests

try:  # pytest's default "prepend" import mode puts this folder on sys.path...
    from harness import MLServerProcess, write_model_settings
    from mlflow_server import MlflowServer
    from v2 import CLIENTS, GRPC_CODES, Reply, Tensor, make_client
except ImportError:  # ...unless tests/ and tests/integration/ become packages.
    from tests.integration.harness import MLServerProcess, write_model_settings
    from tests.integration.mlflow_server import MlflowServer
    from tests.integration.v2 import CLIENTS, GRPC_CODES, Reply, Tensor, make_client

from tests.flavor_zoo import BUILDERS, CASES

pytestmark = [pytest.mark.integration, pytest.mark.flavors]

KINDS = list(BUILDERS)
#: Served by one inference worker with adaptive batching too.
BATCHED = ("text-classification", "question-answering", "translation", "minilm", "pytorch")
BATCHING = {"max_batch_size": 8, "max_batch_time": 0.3}
#: Served by ``mlflow models serve`` too (one process each: ~10 s of CPU to start).
REFERENCE = ("text-classification", "question-answering", "zero-shot", "translation", "minilm", "pytorch")
_STARTUP = 300.0


@dataclass
class Servers:
    single: MLServerProcess
    batched: MLServerProcess
    mlflow: dict[str, MlflowServer]


@pytest.fixture(scope="module")
def servers(flavor_zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("flavors-served")
    paths = {kind: flavor_zoo.path(kind) for kind in KINDS}
    for kind in KINDS:
        write_model_settings(root / "single" / kind, kind, uri=str(paths[kind]), extra={"device": "cpu"})
    for kind in BATCHED:
        write_model_settings(root / "batched" / kind, kind, uri=str(paths[kind]), **BATCHING)
    single = MLServerProcess(root / "single", models=KINDS, startup_timeout=_STARTUP)
    batched = MLServerProcess(root / "batched", parallel_workers=1, models=list(BATCHED), startup_timeout=_STARTUP)
    theirs = {kind: MlflowServer(paths[kind], root / f"mlflow-{kind}.log") for kind in REFERENCE}
    errors: list[BaseException] = []

    def start(server: MLServerProcess) -> None:
        try:
            server.start()
        except BaseException as exc:  # re-raised below, in the fixture's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in (single, batched)]
    try:
        for server in theirs.values():
            server.start()
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + _STARTUP
        for server in theirs.values():
            server.wait_ready(deadline)
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        yield Servers(single, batched, theirs)
    finally:
        for thread in threads:
            thread.join()
        for server in theirs.values():
            server.stop()
        single.stop()
        batched.stop()


def _tensors(inputs: list[dict]) -> list[Tensor]:
    return [Tensor(i["name"], i["datatype"], list(i["shape"]), list(i["data"])) for i in inputs]


def _normal(reply: Reply) -> dict:
    """Outputs comparable across transports (floats to 5 decimals: JSON vs binary encodings)."""
    assert reply.ok, (reply.code, reply.error, reply.raw[:500])
    out = {}
    for name, o in reply.outputs.items():
        data = o.data
        if o.datatype.startswith("FP"):
            data = np.round(np.asarray(data, dtype=np.float64), 5).tolist()
        out[name] = (o.datatype, list(o.shape), data)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_transport_answers_the_same(servers: Servers, kind: str) -> None:
    inputs = _tensors(CASES[kind].v2)
    answers = {}
    for client_kind in CLIENTS:
        client = make_client(client_kind, servers.single)
        try:
            answers[client_kind] = _normal(client.infer(kind, inputs))
        finally:
            client.close()
    assert answers["triton_http"] == answers["requests"]
    assert answers["triton_grpc"] == answers["requests"]
    metadata = requests.get(f"{servers.single.http_url}/v2/models/{kind}", timeout=30).json()
    assert list(answers["requests"]) == [o["name"] for o in metadata["outputs"]]
    assert metadata["parameters"]["device"] == "cpu"


@pytest.mark.parametrize("kind", REFERENCE)
def test_invocations_bytes_are_mlflow_models_serves(servers: Servers, kind: str) -> None:
    body = json.dumps(CASES[kind].invocations)
    headers = {"Content-Type": "application/json"}
    theirs = requests.post(f"{servers.mlflow[kind].url}/invocations", data=body, headers=headers, timeout=60)
    ours = requests.post(f"{servers.single.http_url}/v2/models/{kind}/invocations", data=body, headers=headers, timeout=60)
    assert theirs.status_code == 200, theirs.text
    assert (ours.status_code, ours.content) == (200, theirs.content)


@pytest.mark.parametrize("kind", ["text-classification", "question-answering", "minilm"])
def test_predict_answers_what_v2_answers(servers: Servers, kind: str) -> None:
    case = CASES[kind]
    names = [i["name"] for i in case.v2]
    records = [dict(zip(names, row)) for row in zip(*(i["data"] for i in case.v2))]
    typed = requests.post(f"{servers.single.http_url}/v2/models/{kind}/predict", json={"inputs": records}, timeout=60)
    assert typed.status_code == 200, typed.text
    client = make_client("requests", servers.single)
    v2 = _normal(client.infer(kind, _tensors(case.v2)))
    first, (datatype, shape, data) = next(iter(v2.items()))
    got = [row[first] for row in typed.json()["outputs"]]
    if datatype.startswith("FP"):
        np.testing.assert_allclose(np.ravel(got), data, atol=1e-5)
    else:
        assert got == data


@pytest.mark.parametrize("kind", BATCHED)
def test_a_batching_worker_answers_each_row_as_alone(servers: Servers, kind: str) -> None:
    """Concurrent one-row requests are merged by MLServer's adaptive batcher into one call of the
    flavor in the inference worker; each client still gets its own row's answer."""
    rows = CASES[kind].rows() * 4
    alone = make_client("requests", servers.single)
    expected = [_normal(alone.infer(kind, _tensors(row))) for row in rows]

    def ask(row: list[dict]) -> dict:
        client = make_client("requests", servers.batched)
        try:
            return _normal(client.infer(kind, _tensors(row)))
        finally:
            client.close()

    with ThreadPoolExecutor(len(rows)) as pool:
        got = list(pool.map(ask, rows))
    for mine, alone_answer in zip(got, expected):
        assert mine.keys() == alone_answer.keys()
        for name, (datatype, shape, data) in alone_answer.items():
            assert mine[name][:2] == (datatype, shape)
            if datatype.startswith("FP"):
                # A padded batch of texts of different lengths moves embeddings by ~1e-7.
                np.testing.assert_allclose(mine[name][2], data, atol=1e-5)
            else:
                assert mine[name][2] == data


@pytest.mark.parametrize("kind", ["text-classification", "translation"])
@pytest.mark.parametrize("which", ["single", "batched"])
def test_zero_rows_are_a_400_on_every_route(servers: Servers, kind: str, which: str) -> None:
    server = getattr(servers, which)
    empty = [Tensor("input-0", "BYTES", [0], [])]
    for client_kind in CLIENTS:
        client = make_client(client_kind, server)
        try:
            reply = client.infer(kind, empty)
        finally:
            client.close()
        assert reply.code in (400, GRPC_CODES[400]), (client_kind, reply.code, reply.raw[:300])
        assert "has no rows" in (reply.error or reply.raw), (client_kind, reply.raw[:300])
    typed = requests.post(f"{server.http_url}/v2/models/{kind}/predict", json={"inputs": []}, timeout=30)
    assert typed.status_code == 400, typed.text
    split = json.dumps({"dataframe_split": {"columns": [0], "data": []}})
    scoring = requests.post(
        f"{server.http_url}/v2/models/{kind}/invocations",
        data=split,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert scoring.status_code == 400, scoring.text
    assert scoring.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    # ...and the model still serves.
    client = make_client("requests", server)
    assert client.infer(kind, _tensors(CASES[kind].v2)).ok
