"""OpenAPI documents (``mlserver_sigaware.protocols.typed.openapi``), the offline Swagger UI page (``swagger.py``) and the
route handlers (``protocols/typed/routes.py``), in this process: documents of zoo models validate, their examples
fit their schemas and are accepted by the model, and the page renders in a real headless Chromium
against a small in-process app that mounts the same handlers MLServer will."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import orjson
import pytest
from mlflow.types.schema import DataType
from mlserver.types import InferenceRequest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec

from mlserver_sigaware.protocols import scoring
from mlserver_sigaware.errors import RegistryNotFound
from mlserver_sigaware.protocols.typed.openapi import openapi_document
from mlserver_sigaware.protocols.typed.swagger import SWAGGER_ASSETS, swagger_asset, swagger_html, swagger_ui_version
from mlserver_sigaware.protocols.typed.api import predict_typed
from tests.served_zoo import ServedZoo, load_served
from tests.type_cases import CASES, Tensor, TypeCase, input_schema

KINDS = ("wine", "mixed", "tensor", "dict_tensors", "params", "text", "failing", "no_signature", "composite")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ServedZoo:
    return ServedZoo(tmp_path_factory.mktemp("openapi-zoo"))


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level(logging.CRITICAL, logger="mlserver.sigaware")


def operation(doc: dict, suffix: str) -> dict:
    (path,) = [p for p in doc["paths"] if p.endswith(suffix)]
    return doc["paths"][path]["post"]


def validator(doc: dict, schema: dict) -> OAS30Validator:
    return OAS30Validator({**schema, "components": doc["components"]}, format_checker=oas30_format_checker)


# ----------------------------------------------------------------------------------------- documents


@pytest.mark.parametrize("kind", KINDS)
def test_document_is_valid_openapi(served, kind):
    doc = openapi_document(served[kind], kind)
    validate_spec(doc)
    assert doc["openapi"] == "3.0.3"
    assert sorted(doc["paths"]) == sorted(f"/v2/models/{kind}/{op}" for op in ("predict", "invocations", "infer"))
    json.dumps(doc)  # plain JSON, no numpy or datetime left


def test_versioned_document(tmp_path):
    served_v = load_served(ServedZoo(tmp_path).path("mixed"), version="3")
    doc = openapi_document(served_v, "mixed", "3")
    validate_spec(doc)
    assert sorted(doc["paths"]) == sorted(f"/v2/models/mixed/versions/3/{op}" for op in ("predict", "invocations", "infer"))
    assert doc["info"]["version"] == "3"
    assert openapi_document(served_v, "mixed", "3") is doc  # built once per served version


@pytest.mark.parametrize("kind", KINDS)
def test_every_example_fits_its_schema(served, kind):
    doc = openapi_document(served[kind], kind)
    checked = 0
    for item in doc["paths"].values():
        media = item["post"]["requestBody"]["content"]["application/json"]
        examples = [e["value"] for e in media.get("examples", {}).values()]
        if "example" in media:
            examples.append(media["example"])
        for example in examples:
            errors = [e.message for e in validator(doc, media["schema"]).iter_errors(example)]
            assert not errors, (example, errors)
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize("kind", KINDS)
def test_every_example_is_accepted_by_the_model(served, kind):
    model = served[kind]
    doc = openapi_document(model, kind)
    for name, example in operation(doc, "/predict")["requestBody"]["content"]["application/json"]["examples"].items():
        status, body = predict_typed(model, orjson.dumps(example["value"]))
        assert status == 200, (name, body)
    content = operation(doc, "/invocations")["requestBody"]["content"]
    for name, example in content["application/json"]["examples"].items():
        answer = scoring.invoke(model, orjson.dumps(example["value"]), "application/json")
        assert answer.status == 200, (name, answer.body)
    if "text/csv" in content:
        answer = scoring.invoke(model, content["text/csv"]["example"].encode(), "text/csv")
        assert answer.status == 200, answer.body
    example = operation(doc, "/infer")["requestBody"]["content"]["application/json"]["example"]
    request = InferenceRequest.model_validate(example)
    data, params = model.decoder.decode(request)
    model.predictor(data, params, enforce=model.needs_enforcement(request))


def test_v2_inputs_have_real_names_datatypes_and_shapes(served):
    doc = openapi_document(served["mixed"], "mixed")
    schemas = doc["components"]["schemas"]
    items = schemas["V2InferenceRequest"]["properties"]["inputs"]["items"]["anyOf"]
    by_name = {schemas[i["$ref"].split("/")[-1]]["properties"]["name"]["enum"][0]: schemas[i["$ref"].split("/")[-1]] for i in items}
    assert list(by_name) == ["id", "score", "name", "flag", "when", "blob", "note"]
    assert by_name["id"]["properties"]["datatype"]["enum"] == ["INT64"]
    assert by_name["blob"]["properties"]["parameters"]["properties"]["content_type"]["enum"] == ["base64", "str"]
    assert by_name["when"]["properties"]["parameters"]["properties"]["content_type"]["enum"] == ["datetime"]
    outputs = schemas["V2InferenceResponse"]["properties"]["outputs"]["items"]["anyOf"]
    assert len(outputs) == 7
    tensor = openapi_document(served["tensor"], "tensor")["components"]["schemas"]
    (only,) = tensor["V2InferenceRequest"]["properties"]["inputs"]["items"]["anyOf"]
    shape = tensor[only["$ref"].split("/")[-1]]["properties"]["shape"]
    assert shape["minItems"] == shape["maxItems"] == 2
    assert "enum" not in tensor[only["$ref"].split("/")[-1]]["properties"]["name"]  # unnamed: any name


def test_invocations_formats_with_real_columns_and_params(served):
    doc = openapi_document(served["params"], "params")
    op = operation(doc, "/invocations")
    assert set(op["requestBody"]["content"]["application/json"]["examples"]) == {
        "dataframe_split", "dataframe_records", "instances", "inputs"
    }
    schemas = doc["components"]["schemas"]
    split = schemas["Invocations_dataframe_split"]["properties"]
    assert split["dataframe_split"]["properties"]["columns"]["items"]["enum"] == ["x"]
    assert split["params"] == {"$ref": "#/components/schemas/Params"}
    assert set(schemas["Params"]["properties"]) == {"multiplier", "suffix", "flags", "weights"}
    assert op["requestBody"]["content"]["text/csv"]["example"].startswith("x\n")
    tensor_ops = operation(openapi_document(served["tensor"], "tensor"), "/invocations")
    assert set(tensor_ops["requestBody"]["content"]["application/json"]["examples"]) == {"instances", "inputs"}


def test_info_describes_the_signature(served):
    description = openapi_document(served["wine"], "wine")["info"]["description"]
    assert "`od280/od315_of_diluted_wines` | double | yes | FP64 | [-1]" in description
    assert "**Outputs**" in description


def test_version_header_only_for_registry_models(served):
    assert operation(openapi_document(served["mixed"], "mixed"), "/predict")["parameters"] == []


# ------------------------------------------- what the document promises, the typed route accepts


def _schema_accepts(case: TypeCase) -> bool:
    from mlserver_sigaware.signature import plan_inputs, plan_outputs
    from mlserver_sigaware.protocols.typed.api import build_typed_models
    from pydantic.json_schema import models_json_schema

    from mlserver_sigaware.protocols.typed.oas30 import to_oas30

    models = build_typed_models(plan_inputs(input_schema(case.mlflow_type)), plan_outputs(None), None)
    _, top = models_json_schema([(models.record, "validation")], ref_template="#/components/schemas/{model}")
    doc = {"components": {"schemas": {k: to_oas30(v) for k, v in top["$defs"].items()}}}
    record = case.value if isinstance(case.mlflow_type, Tensor) else {"c": case.value}
    return validator(doc, {"$ref": f"#/components/schemas/{models.record.__name__}"}).is_valid(record)


#: Values the documented schema lets through and the codec refuses: a regular expression cannot know
#: the calendar (the datetime pattern takes any day 01-31 of any month).
SCHEMA_LAXER = [("2024-02-30", DataType.datetime)]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_what_the_schema_accepts_the_typed_api_accepts(case: TypeCase):
    """A client that validates against the document is never refused by the typed route. (The schema
    may be stricter: 0/1 for booleans or ``2024`` for a datetime are accepted but not advertised.)"""
    if _schema_accepts(case) and (case.value, case.mlflow_type) not in SCHEMA_LAXER:
        assert case.accepted


# --------------------------------------------------------------------------------------- swagger


def test_swagger_assets_come_from_the_installed_bundle():
    assert swagger_ui_version() == "4.15.5"
    for name in SWAGGER_ASSETS:
        content, media_type = swagger_asset(name)
        assert content and media_type
        assert b"sourceMappingURL" not in content[-200:]
    assert swagger_asset("swagger-ui-bundle.js")[1].startswith("application/javascript")
    assert swagger_asset("swagger-ui.css")[1].startswith("text/css")
    for bad in ("../__init__.py", "index.html", "swagger-ui-bundle.js.map"):
        with pytest.raises(KeyError):
            swagger_asset(bad)


def test_swagger_html_is_offline_and_escaped():
    page = swagger_html("wine")
    assert 'href="/v2/models/wine/swagger/swagger-ui.css"' in page
    assert 'src="/v2/models/wine/swagger/swagger-ui-bundle.js"' in page
    assert '"url": "/v2/models/wine/openapi.json"' in page
    assert '"validatorUrl": null' in page
    assert "http://" not in page and "https://" not in page
    nasty = swagger_html("</script><b>x")
    assert "</script><b>" not in nasty and "%3C%2Fscript%3E" in nasty
    assert '"url": "/v2/models/m/versions/2/openapi.json"' in swagger_html("m", "2")


# --------------------------------------------------------------- the handlers, mounted in an app


class FakeRuntime:
    """What the handlers use of SignatureAwareRuntime: ``name``, ``pinned_version``, ``select``."""

    def __init__(self, name: str, served_model: Any, version: Optional[str] = None):
        self.name, self.pinned_version, self._served = name, version, served_model

    async def select(self, selector: Optional[str]):
        if selector is not None:
            raise RegistryNotFound(f"model '{self.name}' has no version {selector}")
        return self._served


def app_for(runtimes: list[FakeRuntime]):
    """A FastAPI app with the routes ``routes.install`` will add (``typed_handlers``)."""
    from fastapi import FastAPI

    from mlserver_sigaware.protocols.typed.routes import typed_handlers

    app = FastAPI()
    for runtime in runtimes:
        for _, fn, path, method in typed_handlers(runtime):
            app.add_api_route(path, fn, methods=[method])
    return app


def test_handlers_in_an_app(served):
    from fastapi.testclient import TestClient

    client = TestClient(app_for([FakeRuntime("mixed", served["mixed"]), FakeRuntime("failing", served["failing"])]))
    doc = client.get("/v2/models/mixed/openapi.json")
    assert doc.status_code == 200 and doc.json()["paths"]
    assert client.get("/v2/models/failing/openapi.json").json()["info"]["title"] == "failing"
    assert client.post("/v2/models/failing/predict", content=b'{"x": 2}').json()["outputs"] == [{"x": 2.0}]
    bad = client.post("/v2/models/failing/predict", content=b'{"x": "2"}')
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"] == "inputs[0].x"
    assert client.post("/v2/models/failing/predict", content=b'{"x": -1}').status_code == 500
    missing = client.post("/v2/models/failing/predict", content=b'{"x": 1}', headers={"mlflow-model-version": "9"})
    assert missing.status_code == 404 and "no version 9" in missing.json()["error"]
    page = client.get("/v2/models/mixed/swagger")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in SWAGGER_ASSETS:
        asset = client.get(f"/v2/models/mixed/swagger/{name}")
        assert asset.status_code == 200 and asset.content == swagger_asset(name)[0]


def test_per_version_instance_routes(served):
    from mlserver_sigaware.protocols.typed.routes import typed_handlers

    paths = [path for _, _, path, _ in typed_handlers(FakeRuntime("m", served["failing"], version="2"))]
    assert paths == ["/v2/models/m/versions/2/predict", "/v2/models/m/versions/2/openapi.json"]


def test_handlers_take_only_picklable_values(served):
    """With parallel_workers >= 1 MLServer pickles handler arguments to a worker (see protocols/http.py)."""
    import inspect

    from mlserver_sigaware.protocols.typed.routes import typed_handlers

    for attr, fn, _, _ in typed_handlers(FakeRuntime("m", served["failing"])):
        assert attr.startswith("sigaware_")
        for param in inspect.signature(fn).parameters.values():
            assert param.name in ("body", "versions"), (attr, param)


# ----------------------------------------------------------------------------------- chromium


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    import uvicorn

    from tests.integration.harness import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("in-process app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def rendered_dom(url: str, budget_ms: int = 8000) -> str:
    """The page's DOM after its scripts ran, from headless Chromium (no network but the URL's host)."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        f"--virtual-time-budget={budget_ms}", "--dump-dom", url,
    ]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode("utf-8", errors="replace")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_swagger_page_renders_the_models_columns_in_chromium(served):
    app = app_for([FakeRuntime("wine", served["wine"])])
    with serve_in_thread(app) as base:
        dom = rendered_dom(f"{base}/v2/models/wine/swagger")
    assert 'class="swagger-ui' in dom, dom[:2000]
    assert "od280/od315_of_diluted_wines" in dom  # a real column name, from the document
    assert "/v2/models/wine/predict" in dom and "/v2/models/wine/invocations" in dom and "/v2/models/wine/infer" in dom
    assert "Failed to load API definition" not in dom
