"""The typed API, the OpenAPI documents and the offline Swagger UI on real ``mlserver start`` processes.

Routes (registered by ``protocols.routes.install`` through ``protocols.typed.routes.typed_handlers``):
``POST /v2/models/<name>/predict``, ``GET /v2/models/<name>/openapi.json``, ``GET /v2/models/<name>/swagger``
and its assets ``GET /v2/models/<name>/swagger/<file>``.

* every kind of zoo model answers its own document's examples, and errors name their fields;
* the same through a worker process (``parallel_workers: 1``, ``debug: true``: still no traceback);
* a registry-served model: the version header selects the version, and the document says so;
* schemathesis fuzzes each document's operations against the server (bounded) and no answer is a 5xx
  (the ``failing`` model, which raises on purpose, is left out);
* headless Chromium renders the Swagger page with the model's real column names, with assets from the
  server only.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest
import requests
from openapi_spec_validator import validate as validate_spec

from mlserver_sigaware.protocols.typed.swagger import SWAGGER_ASSETS, swagger_asset

pytestmark = pytest.mark.integration

#: Zoo kinds with a document whose operations are fuzzed (``failing`` raises on purpose: excluded).
FUZZED = ("wine", "mixed", "tensor", "dict_tensors", "params", "text", "composite", "no_signature")
#: Operations fuzzed per model: the typed route for every kind, the other two for a few.
FUZZ_OPERATIONS = [(kind, "predict") for kind in FUZZED] + [
    (kind, op) for kind in ("wine", "mixed", "tensor") for op in ("invocations", "infer")
]
MAX_EXAMPLES = 50
#: Served by name from the "relative" registry (conftest.py): version 1 German, version 2 French (latest).
TRANSLATOR = "translator"
TIMEOUT = 30


def document(server, name: str) -> dict:
    answer = requests.get(f"{server.http_url}/v2/models/{name}/openapi.json", timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()


def examples(doc: dict, operation: str) -> dict:
    (path,) = [p for p in doc["paths"] if p.endswith(f"/{operation}")]
    return doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]


def predict(server, name: str, body, headers=None) -> requests.Response:
    return requests.post(f"{server.http_url}/v2/models/{name}/predict", json=body, headers=headers, timeout=TIMEOUT)


# ----------------------------------------------------------------------------------- main server


@pytest.mark.parametrize("kind", FUZZED + ("failing",))
def test_document_is_valid_and_its_examples_are_answered(main_server, kind):
    doc = document(main_server, kind)
    validate_spec(doc)
    for name, example in examples(doc, "predict")["examples"].items():
        answer = predict(main_server, kind, example["value"])
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["outputs"], name
    for name, example in examples(doc, "invocations")["examples"].items():
        answer = requests.post(f"{main_server.http_url}/v2/models/{kind}/invocations", json=example["value"], timeout=TIMEOUT)
        assert answer.status_code == 200, (name, answer.text)
    answer = requests.post(f"{main_server.http_url}/v2/models/{kind}/infer", json=examples(doc, "infer")["example"], timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text


def test_predict_answers_records_named_by_the_output_signature(main_server):
    row = {"id": 1, "score": 0.5, "name": "ann", "flag": True, "when": "2024-01-31T12:00:00", "blob": "eHl6"}
    answer = predict(main_server, "mixed", [row, dict(row, note="n", flag=0)])
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][1] == {
        "id": 1, "score2": 1.0, "greeting": "hello ann", "flag_not": True,
        "when_next": "2024-02-01T12:00:00", "blob_len": 3, "has_note": True,
    }
    tensor = predict(main_server, "tensor", [1, 2, 3, 4])
    assert tensor.json()["outputs"] == [{"predictions": [10.0, 4.0]}]


def test_errors_name_each_field(main_server):
    answer = predict(main_server, "mixed", {"inputs": [{"id": "1", "score": 0.5}], "params": {"x": 1}})
    assert answer.status_code == 400
    paths = {e["path"] for e in answer.json()["errors"]}
    assert {"inputs[0].id", "inputs[0].name", "inputs[0].flag", "params.x"} <= paths
    raised = predict(main_server, "failing", {"x": -1})
    assert raised.status_code == 500
    assert raised.json() == {"error": "model raised ValueError: model exploded on purpose"}
    assert predict(main_server, "failing", {"x": 1}).status_code == 200  # and it keeps serving


def test_registry_model_version_by_header(main_server, registry_served):
    expected = registry_served[TRANSLATOR]
    doc = document(main_server, TRANSLATOR)
    parameters = doc["paths"][f"/v2/models/{TRANSLATOR}/predict"]["post"]["parameters"]
    assert [p["name"] for p in parameters] == ["mlflow-model-version"]
    latest = predict(main_server, TRANSLATOR, {"prompt": "hello world"})
    assert latest.headers["mlflow-model-version"] == expected.version
    first = predict(main_server, TRANSLATOR, {"prompt": "hello world"}, headers={"mlflow-model-version": "1"})
    assert first.status_code == 200 and first.headers["mlflow-model-version"] == "1"
    assert first.json() == {"model_version": "1", "outputs": [{"translation_text": "hallo Welt"}]}
    missing = predict(main_server, TRANSLATOR, {"prompt": "x"}, headers={"mlflow-model-version": "99"})
    assert missing.status_code == 404 and "error" in missing.json()


def test_swagger_page_and_assets_are_served(main_server):
    page = requests.get(f"{main_server.http_url}/v2/models/wine/swagger", timeout=TIMEOUT)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/v2/models/wine/openapi.json" in page.text
    for name in SWAGGER_ASSETS:
        asset = requests.get(f"{main_server.http_url}/v2/models/wine/swagger/{name}", timeout=TIMEOUT)
        assert asset.status_code == 200 and asset.content == swagger_asset(name)[0], name


# -------------------------------------------------------------------------------- worker process


def test_through_a_worker_process(workers_server):
    """``parallel_workers: 1``: handlers run in the worker (their arguments are pickled), debug on."""
    assert validate_spec(document(workers_server, "mixed")) is None
    wine = document(workers_server, "wine")
    answer = predict(workers_server, "wine", examples(wine, "predict")["examples"]["record"]["value"])
    assert answer.status_code == 200, answer.text
    bad = predict(workers_server, "wine", {"alcohol": "x"})
    assert bad.status_code == 400 and any(e["path"] == "inputs[0].alcohol" for e in bad.json()["errors"])
    raised = predict(workers_server, "failing", {"x": -1})
    assert raised.status_code == 500 and "Traceback" not in raised.text
    js = requests.get(f"{workers_server.http_url}/v2/models/wine/swagger/swagger-ui-bundle.js", timeout=TIMEOUT)
    assert js.status_code == 200 and js.content == swagger_asset("swagger-ui-bundle.js")[0]


# ------------------------------------------------------------------------------------------ fuzz


@pytest.mark.parametrize(("kind", "operation"), FUZZ_OPERATIONS, ids=[f"{k}-{o}" for k, o in FUZZ_OPERATIONS])
def test_fuzzed_requests_never_get_a_server_error(main_server, kind, operation):
    """Schemathesis generates requests from the model's own document (bounded: ``MAX_EXAMPLES``)."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings

    logging.getLogger("schemathesis").setLevel(logging.WARNING)
    base = main_server.http_url
    schema = schemathesis.openapi.from_url(f"{base}/v2/models/{kind}/openapi.json")
    strategy = schema[f"/v2/models/{kind}/{operation}"]["POST"].as_strategy()
    server_errors: list[tuple] = []
    statuses: dict[int, int] = {}

    @settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        response = case.call(base_url=base, timeout=TIMEOUT)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            server_errors.append((case.body, response.status_code, response.text[:500]))

    run()
    assert not server_errors, f"{len(server_errors)} server errors (statuses {statuses}), e.g. {server_errors[:3]}"
    assert sum(statuses.values()) > 0


# -------------------------------------------------------------------------------------- chromium


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_swagger_page_renders_in_chromium(main_server):
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        "--virtual-time-budget=8000", "--dump-dom", f"{main_server.http_url}/v2/models/wine/swagger",
    ]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    dom = done.stdout.decode("utf-8", errors="replace")
    assert 'class="swagger-ui' in dom, dom[:2000]
    assert "od280/od315_of_diluted_wines" in dom  # a column of the wine model, from its document
    assert "/v2/models/wine/predict" in dom and "/v2/models/wine/infer" in dom
    assert "Failed to load API definition" not in dom
