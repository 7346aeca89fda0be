"""MLflow's own scoring-server client against our server; several models on one server."""

from __future__ import annotations

import functools

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from mlflow.pyfunc.scoring_server.client import ScoringServerClient

from mlserver_sigaware.demo import train_wine_model
from tests import zoo
from tests.integration.harness import MLServerProcess, write_model_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring-models")
    return {
        "wine": zoo.build_wine(root / "wine", serialization_format="cloudpickle"),
        "text": functools.partial(zoo.build_text, lang="de")(root / "text"),
    }


def test_mlflow_scoring_client_against_a_one_model_server(tmp_path, models):
    write_model_settings(tmp_path / "m" / "wine", "wine", uri=str(models["wine"]))
    with MLServerProcess(tmp_path / "m", parallel_workers=1, models=["wine"]) as server:
        client = ScoringServerClient("127.0.0.1", server.http_port)
        client.wait_server_ready(timeout=30)
        assert client.get_version() == mlflow.__version__
        _, X = train_wine_model()
        got = client.invoke(X.iloc[:5])
        local = mlflow.pyfunc.load_model(str(models["wine"])).predict(X.iloc[:5])
        np.testing.assert_allclose(np.asarray(got.get_predictions()).ravel(), np.asarray(local).ravel())


def test_two_models_each_on_its_own_route_and_the_bare_route_names_them(tmp_path, models):
    root = tmp_path / "m"
    write_model_settings(root / "wine", "wine", uri=str(models["wine"]))
    write_model_settings(root / "text", "text", uri=str(models["text"]))
    with MLServerProcess(root, parallel_workers=0, models=["wine", "text"]) as server:
        r = requests.post(f"{server.http_url}/v2/models/text/invocations",
                          json={"dataframe_records": [{"prompt": "hello world"}]}, timeout=30)
        assert r.status_code == 200 and r.json() == {"predictions": [{"translation_text": "hallo Welt"}]}
        _, X = train_wine_model()
        r = requests.post(f"{server.http_url}/v2/models/wine/invocations",
                          json={"dataframe_split": X.iloc[:2].to_dict(orient="split")}, timeout=30)
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        # Several models, none marked default: the bare route refuses and lists them.
        r = requests.post(f"{server.http_url}/invocations",
                          json={"dataframe_records": [{"prompt": "hello"}]}, timeout=30)
        assert r.status_code == 404
        assert "text" in r.json()["message"] and "wine" in r.json()["message"]
        # MLflow's client pointed at one model's prefix (what Seldon Core's mesh forwards).
        client = ScoringServerClient("127.0.0.1", f"{server.http_port}/v2/models/text")
        client.wait_server_ready(timeout=10)
        preds = client.invoke(pd.DataFrame({"prompt": ["good night"]})).get_predictions()
        assert list(pd.DataFrame(preds)["translation_text"]) == ["gut Nacht"]
