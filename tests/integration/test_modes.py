"""Server modes: ``parallel_workers`` 0 and 1 (MLServer's default: inference in a worker process),
``debug: true``, and adaptive batching with concurrent clients."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cases import (
    BOOM,
    Case,
    ErrorCase,
    Tensor,
    check_error,
    check_reply,
    mixed_case,
    mixed_row,
    tensor_case,
    wine_case,
)
from v2 import CLIENTS, make_client

pytestmark = pytest.mark.integration

ROUND_TRIP_CASES = ("wine", "mixed", "mixed-without-optional", "failing-ok")


def mode_errors(wine_rows) -> dict[str, ErrorCase]:
    wine_without_proline = [t for t in wine_case(wine_rows, [0.0] * len(wine_rows)).inputs if t.name != "proline"]
    return {
        "missing-input": ErrorCase("wine", wine_without_proline, 400, ("missing required input 'proline'",)),
        "wrong-datatype": ErrorCase("failing", [Tensor("x", "BYTES", [1], ["1"])], 400, ("input 'x'", "BYTES")),
        "bad-datetime": ErrorCase(
            "mixed",
            [
                t if t.name != "when" else Tensor("when", "BYTES", [1], ["31/01/2024"])
                for t in mixed_case([mixed_row(3)]).inputs
            ],
            400,
            ("input 'when'",),
        ),
        "unknown-param": ErrorCase(
            "failing", [Tensor("x", "FP64", [1], [1.0])], 400, ("temperature",), parameters={"temperature": 1}
        ),
        "unknown-model": ErrorCase("nope", [Tensor("x", "FP64", [1], [1.0])], 404, ("nope",)),
        "model-raises": ErrorCase("failing", [Tensor("x", "FP64", [1], [-2.0])], 500, (BOOM,)),
    }


MODE_ERRORS = ("missing-input", "wrong-datatype", "bad-datetime", "unknown-param", "unknown-model", "model-raises")


def _group_size(pgid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) == pgid:
                count += 1
        except (ProcessLookupError, PermissionError):
            continue
    return count


# ------------------------------------------------------------------------------ parallel workers


@pytest.fixture(scope="module", params=["workers-1", "workers-0"])
def mode_server(request):
    """The server with ``parallel_workers: 1`` (+ debug) or the main one with ``parallel_workers: 0``."""
    fixture = "workers_server" if request.param == "workers-1" else "main_server"
    return request.getfixturevalue(fixture)


@pytest.fixture(params=CLIENTS)
def mode_client(request, mode_server):
    client = make_client(request.param, mode_server)
    yield client
    client.close()


def test_settings_of_the_mode_servers(workers_server, main_server):
    assert workers_server.parallel_workers == 1 and workers_server.debug is True
    assert main_server.parallel_workers == 0
    # parallel_workers 1: the inference worker is a process of its own in the server's group.
    assert _group_size(workers_server.pid) >= 2


@pytest.mark.parametrize("case_name", ROUND_TRIP_CASES)
def test_round_trip(mode_client, valid_cases, case_name):
    case = valid_cases[case_name]
    check_reply(mode_client.infer(case.model, case.inputs), case)


@pytest.mark.parametrize("error", MODE_ERRORS)
def test_error_statuses_survive_the_worker(mode_client, wine_rows, recovery_cases, error):
    """400/404/500 keep their status and exact message, whatever process raised them."""
    case = mode_errors(wine_rows)[error]
    reply = mode_client.infer(case.model, case.inputs, parameters=case.parameters)
    check_error(reply, case, mode_client.code(case.status))
    # The message is the runtime's own, not prefixed with an exception class path.
    assert "mlserver_sigaware" not in reply.error and "WorkerError" not in reply.error
    ok = recovery_cases["wine" if case.model == "nope" else case.model]
    check_reply(mode_client.infer(ok.model, ok.inputs), ok)


def test_debug_500_body_has_no_traceback(workers_server, recovery_cases):
    import requests

    response = requests.post(
        f"{workers_server.http_url}/v2/models/failing/infer",
        json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [-1.0]}]},
        timeout=30,
    )
    assert response.status_code == 500
    assert response.json() == {"error": f"model raised ValueError: {BOOM}"}
    assert "Traceback" not in response.text and 'File "' not in response.text
    # The log does keep the traceback for the operator.
    assert BOOM in workers_server.log_text()
    ok = recovery_cases["failing"]
    client = make_client("requests", workers_server)
    check_reply(client.infer("failing", ok.inputs), ok)


def test_many_requests_through_the_worker(workers_server, valid_cases):
    """Alternating failures and successes do not wear the worker out."""
    client = make_client("requests", workers_server)
    ok = valid_cases["failing-ok"]
    for i in range(10):
        if i % 2:
            assert client.infer("failing", [Tensor("x", "FP64", [1], [-1.0])]).code == 500
        else:
            check_reply(client.infer("failing", ok.inputs), ok)


# ----------------------------------------------------------------------------- adaptive batching


@pytest.fixture(scope="module")
def wine_all_predictions(zoo_models):
    """The wine model's own predictions for every row of the data set (in this process)."""
    import mlflow.pyfunc

    from cases import wine_frame

    frame = wine_frame()
    model = mlflow.pyfunc.load_model(str(zoo_models["wine_cp"]))
    return frame, [float(v) for v in model.predict(frame)]


def _batched_case(model: str, caller: int, wine) -> Case:
    rows = 1 + caller % 3  # callers send 1, 2 or 3 rows
    if model == "wine-batched":
        frame, predictions = wine
        start = caller * 5
        return wine_case(frame.iloc[start : start + rows], predictions[start : start + rows], model=model)
    if model == "mixed-batched":
        return mixed_case([mixed_row(caller * 10 + k) for k in range(rows)], model=model)
    return tensor_case(
        [[float(caller), float(k), -float(caller), 0.5 * k] for k in range(rows)], model=model
    )


@pytest.mark.parametrize("model", ["wine-batched", "mixed-batched", "tensor-batched"])
def test_batching_gives_each_caller_its_own_rows(main_server, wine_all_predictions, model):
    callers = 12
    clients = [make_client(CLIENTS[i % len(CLIENTS)], main_server) for i in range(callers)]
    cases = [_batched_case(model, i, wine_all_predictions) for i in range(callers)]
    barrier = threading.Barrier(callers)

    def call(i: int):
        barrier.wait(timeout=30)
        return clients[i].infer(model, cases[i].inputs)

    try:
        with ThreadPoolExecutor(max_workers=callers) as pool:
            replies = list(pool.map(call, range(callers)))
    finally:
        for c in clients:
            c.close()
    for reply, case in zip(replies, cases):
        check_reply(reply, case)


def test_batching_is_on(main_server):
    """A lone request waits for company (max_batch_time 0.5 s): proof the batcher is in the path."""
    client = make_client("requests", main_server)
    case = tensor_case([[1.0, 2.0, 3.0, 4.0]], model="tensor-batched")
    started = time.monotonic()
    check_reply(client.infer("tensor-batched", case.inputs), case)
    assert time.monotonic() - started >= 0.4
    client.close()
