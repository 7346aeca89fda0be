"""Differential test of the MLflow scoring protocol: MLflow's own server against ours, over HTTP.

For each model kind below, ``mlflow models serve --env-manager local`` (MLflow's real scoring server:
uvicorn + ``mlflow.pyfunc.scoring_server``) and one ``mlserver start`` process serving the same model
folders each answer every request of the corpus (``tests/scoring_corpus.py``: valid and invalid
bodies, every input format, content-type rules). Both must answer the same status, content type,
``error_code`` / ``error_class`` / ``sqlstate`` (and ``stack_trace`` presence: our models are served with
``invocations_stack_trace: true``, MLflow's exact bodies; with the default, bodies are the same but for
the traceback, which is left out), and for successes the same bytes. The deliberate differences
(:data:`DELIBERATE`) are asserted as such.

Ours answers at ``POST /v2/models/<name>/invocations``; ``wine`` is marked
``default_invocations_model`` so the bare ``POST /invocations`` (and ``/ping``, ``/health``,
``/version``) are compared too.

Speed: all servers start once per module, in parallel (each MLflow server is two processes --
the CLI and the uvicorn it execs -- and takes ~10 s of CPU). ``--env-manager local`` needs no
network: nothing is installed, the model folders are local paths.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

try:  # pytest's default "prepend" import mode puts this folder on sys.path...
    from harness import MLServerProcess, write_model_settings
except ImportError:  # ...unless tests/ and tests/integration/ become packages.
    from tests.integration.harness import MLServerProcess, write_model_settings

try:
    from mlflow_server import MlflowServer
except ImportError:
    from tests.integration.mlflow_server import MlflowServer

try:
    from scoring_corpus import ScoringCase, cases_for
except ImportError:
    from tests.scoring_corpus import ScoringCase, cases_for

pytestmark = pytest.mark.integration

#: Kinds served by both; the other corpus models are compared in process (tests/protocols/test_scoring.py).
PARITY_KINDS = ("wine", "mixed", "tensor", "params", "text", "failing")
#: zoo_models key of each kind's folder (wine saved with cloudpickle: faster to load, same model).
_FOLDER = {"wine": "wine_cp"}
#: The model our server also answers on the bare /invocations.
DEFAULT_KIND = "wine"

_STARTUP_TIMEOUT = 240.0


# ---------------------------------------------------------------------------------- MLflow side


# ------------------------------------------------------------------------------------ fixtures


@dataclass
class ParityServers:
    ours: MLServerProcess
    mlflow: dict[str, MlflowServer]


@pytest.fixture(scope="module")
def parity_servers(zoo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParityServers]:
    root = tmp_path_factory.mktemp("scoring-parity")
    models_root = root / "mlserver"
    for kind in PARITY_KINDS:
        extra: dict[str, Any] = {"invocations_stack_trace": True}  # MLflow's exact bodies
        if kind == DEFAULT_KIND:
            extra["default_invocations_model"] = True
        write_model_settings(models_root / kind, kind, uri=str(zoo_models[_FOLDER.get(kind, kind)]), extra=extra)
    # The same failing model with the default settings: no traceback in its bodies.
    write_model_settings(models_root / "failing-default", "failing-default", uri=str(zoo_models["failing"]))
    ours = MLServerProcess(
        models_root, models=list(PARITY_KINDS) + ["failing-default"], startup_timeout=_STARTUP_TIMEOUT
    )
    theirs = {
        kind: MlflowServer(zoo_models[_FOLDER.get(kind, kind)], root / f"mlflow-{kind}.log") for kind in PARITY_KINDS
    }
    errors: list[BaseException] = []

    def start_ours() -> None:
        try:
            ours.start()
        except BaseException as exc:  # re-raised below, in the fixture's thread
            errors.append(exc)

    try:
        for server in theirs.values():
            server.start()
        thread = threading.Thread(target=start_ours, name="mlserver-start")
        thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        for server in theirs.values():
            server.wait_ready(deadline)
        thread.join()
        if errors:
            raise errors[0]
        probe = requests.post(
            f"{ours.http_url}/v2/models/{DEFAULT_KIND}/invocations",
            data=b'{"inputs": []}',
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        if probe.status_code == 404 and "error_code" not in probe.text:
            pytest.skip("POST /v2/models/<name>/invocations is not routed by this build yet")
        yield ParityServers(ours, theirs)
    finally:
        for server in theirs.values():
            server.stop()
        ours.stop()


# ----------------------------------------------------------------------------------- comparing


def _post(url: str, case: ScoringCase) -> requests.Response:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    return requests.post(url, data=case.body, headers=headers, timeout=60)


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


#: Where ours answers differently on purpose (mlserver_sigaware/protocols/scoring/invocations.py lists
#: them): case name -> (our status, why).
DELIBERATE = {
    "ct-missing": (415, "a client's mistake is never a 5xx: MLflow crashes on the missing header (bare 500)"),
}


def assert_same(reference: requests.Response, ours: requests.Response, what: str, stack_trace: bool = True) -> None:
    """Same answer; ``stack_trace=False``: ours comes from a model with the default settings, whose
    bodies leave out the traceback MLflow adds (and are otherwise MLflow's)."""
    detail = (what, reference.status_code, reference.content[:400], ours.status_code, ours.content[:400])
    deliberate = DELIBERATE.get(what.split(":", 1)[-1])
    if deliberate is not None:
        assert ours.status_code == deliberate[0], (deliberate[1], *detail)
        return
    assert ours.status_code == reference.status_code, detail
    assert ours.headers.get("content-type") == reference.headers.get("content-type"), detail
    if reference.status_code == 200 or not reference.headers.get("content-type", "").startswith("application/json"):
        assert ours.content == reference.content, detail
        return
    want, got = _json(reference.content), _json(ours.content)
    for key in ("error_code", "error_class", "sqlstate"):
        assert got.get(key) == want.get(key), (key, *detail)
    if stack_trace:
        assert ("stack_trace" in got) == ("stack_trace" in want), detail
        assert set(got) == set(want), detail
    else:
        assert "stack_trace" not in got, detail
        assert set(got) == set(want) - {"stack_trace"}, detail


PARITY_CASES = cases_for(*PARITY_KINDS)


def test_corpus_is_large_enough() -> None:
    assert len(PARITY_CASES) >= 80
    assert {c.model for c in PARITY_CASES} == set(PARITY_KINDS)


@pytest.mark.parametrize("case", PARITY_CASES, ids=[c.id for c in PARITY_CASES])
def test_model_route_answers_as_mlflow(parity_servers: ParityServers, case: ScoringCase) -> None:
    reference = _post(parity_servers.mlflow[case.model].url + "/invocations", case)
    ours = _post(f"{parity_servers.ours.http_url}/v2/models/{case.model}/invocations", case)
    assert_same(reference, ours, case.id)


DEFAULT_CASES = cases_for(DEFAULT_KIND)


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=[c.id for c in DEFAULT_CASES])
def test_bare_invocations_answers_as_mlflow(parity_servers: ParityServers, case: ScoringCase) -> None:
    reference = _post(parity_servers.mlflow[DEFAULT_KIND].url + "/invocations", case)
    ours = _post(f"{parity_servers.ours.http_url}/invocations", case)
    assert_same(reference, ours, case.id)


@pytest.mark.parametrize("path", ["/ping", "/health", "/version"])
def test_health_routes_answer_as_mlflow(parity_servers: ParityServers, path: str) -> None:
    reference = requests.get(parity_servers.mlflow[DEFAULT_KIND].url + path, timeout=10)
    ours = requests.get(parity_servers.ours.http_url + path, timeout=10)
    assert (ours.status_code, ours.content, ours.headers.get("content-type")) == (
        reference.status_code,
        reference.content,
        reference.headers.get("content-type"),
    )


def test_model_exception_trace_names_the_model_error(parity_servers: ParityServers) -> None:
    case = next(c for c in PARITY_CASES if c.id == "failing:model-raises")
    ours = _json(_post(f"{parity_servers.ours.http_url}/v2/models/failing/invocations", case).content)
    theirs = _json(_post(parity_servers.mlflow["failing"].url + "/invocations", case).content)
    assert ours["message"] == theirs["message"]
    assert ours["stack_trace"].rstrip().endswith("ValueError: model exploded on purpose")
    assert theirs["stack_trace"].rstrip().endswith("ValueError: model exploded on purpose")


def test_default_bodies_leave_out_the_traceback(parity_servers: ParityServers) -> None:
    """Issue 12: by default no error body carries a traceback; MLflow's status, error_code and message stay."""
    case = next(c for c in PARITY_CASES if c.id == "failing:model-raises")
    theirs = _post(parity_servers.mlflow["failing"].url + "/invocations", case)
    ours = _post(f"{parity_servers.ours.http_url}/v2/models/failing-default/invocations", case)
    assert "stack_trace" in _json(theirs.content)
    assert_same(theirs, ours, case.id, stack_trace=False)
    assert _json(ours.content)["message"] == _json(theirs.content)["message"]
    assert "Traceback" not in ours.text


# ------------------------------------------------------------------- through an inference worker

#: A few cases of each kind the session's ``workers_server`` (``parallel_workers: 1``) serves: the
#: scoring route's arguments and answer then cross MLServer's worker process boundary.
WORKER_CASES = [
    c
    for c in cases_for("wine", "mixed", "failing")
    if c.id.split(":", 1)[1]
    in {
        "split", "records", "csv", "inputs-dict-binary-raw", "numeric-strings", "missing-column",
        "bad-string", "malformed-json", "ct-missing", "charset-latin1", "ct-text-plain", "null-long",
        "zoned-datetime", "ok", "model-raises",
    }
]  # fmt: skip


@pytest.mark.parametrize("case", WORKER_CASES, ids=[c.id for c in WORKER_CASES])
def test_worker_process_answers_as_mlflow(parity_servers: ParityServers, workers_server, case: ScoringCase) -> None:
    reference = _post(parity_servers.mlflow[case.model].url + "/invocations", case)
    ours = _post(f"{workers_server.http_url}/v2/models/{case.model}/invocations", case)
    assert_same(reference, ours, case.id, stack_trace=False)  # the workers server has default settings
