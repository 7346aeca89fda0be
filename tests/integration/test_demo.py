"""What `make serve` serves: the root settings, the examples and a populated demo registry."""

from __future__ import annotations

import pytest
import requests

from mlserver_sigaware import demo
from tests.integration.demo_server import demo_server as start_demo_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    with start_demo_server(tmp_path_factory.mktemp("demo")) as server:
        yield server


def test_wine_by_name_only(demo_server):
    meta = requests.get(f"{demo_server.http_url}/v2/models/wine-regressor", timeout=30).json()
    assert meta["versions"] == ["1"]
    names = [i["name"] for i in meta["inputs"]]
    assert "od280/od315_of_diluted_wines" in names and len(names) == 13
    X = demo.train_wine_model()[1]
    row = X.iloc[0]
    body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [1], "data": [float(row[c])]} for c in X.columns]}
    r = requests.post(f"{demo_server.http_url}/v2/models/wine-regressor/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "predictions" and out["shape"] == [1] and isinstance(out["data"][0], float)


@pytest.mark.parametrize(
    "headers,path,expected,version",
    [
        ({}, "/v2/models/text-translator/infer", "hallo Welt", "1"),
        ({"mlflow-model-version": "@challenger"}, "/v2/models/text-translator/infer", "bonjour monde", "2"),
        ({}, "/v2/models/text-translator/versions/2/infer", "bonjour monde", "2"),
    ],
)
def test_text_translator_versions(demo_server, headers, path, expected, version):
    body = {"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["hello world"]}]}
    r = requests.post(demo_server.http_url + path, json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [expected]
    assert r.json()["model_version"] == version


def test_invalid_v2_body_is_400_naming_the_field(demo_server):
    body = {"inputs": [{"name": "prompt", "datatype": "STRING", "shape": [1], "data": ["x"]}]}
    r = requests.post(f"{demo_server.http_url}/v2/models/text-translator/infer", json=body, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"].startswith("inputs[0].datatype:")


def test_bare_invocations_serves_the_default_model(demo_server):
    r = requests.post(f"{demo_server.http_url}/invocations", json={"dataframe_records": [{"prompt": "hello world"}]},
                      timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [{"translation_text": "hallo Welt"}]}
    assert r.headers["mlflow-model-version"] == "1"
