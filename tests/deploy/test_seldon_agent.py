"""Seldon Core v2 end to end, minus Kubernetes: the artifact and Models of ``deploy/seldon-v2/``, rewritten
the way Seldon's agent rewrites them (``tests/deploy/seldon_agent.py``), loaded by a real
``mlserver start`` through the repository API as the agent loads them, asked through the paths the
agent's proxy sends. The registry reference (alias, pinned version) and the tracking URI survive the
rewrite: ``wine`` serves the version ``champion`` points at (not the "1" the agent writes into
``parameters.version``), ``wine-v1`` serves version 1, and ``wine`` follows the alias when it moves.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests import zoo
from tests.deploy import seldon_agent
from tests.integration.harness import MLServerProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GENERATION = 3  # a Model's generation: the agent names it <model>_3
REGISTERED = "wine-regressor"


def _deploy(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((REPO / "deploy" / path).read_text()) if d]


def _rows():
    from mlserver_sigaware.demo import train_wine_model

    model, features = train_wine_model()
    rows = features.head(2)
    return rows, model.predict(rows)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("seldon-registry")
    uri = f"sqlite:///{root}/mlflow.db"
    wine = zoo.build_wine(root / "wine", serialization_format="cloudpickle")
    versions = [zoo.register(uri, REGISTERED, wine) for _ in range(3)]
    assert versions == ["1", "2", "3"]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(REGISTERED, "champion", "2")
    return uri, client


@pytest.mark.parametrize("replace_uri", [False, True], ids=["agent", "uri-replaced-too"])
def test_registry_reference_survives_the_agent_rewrite(tmp_path, registry, replace_uri):
    uri, client = registry
    client.set_registered_model_alias(REGISTERED, "champion", "2")
    # The artifact every registry Model points at: the ConfigMap's model-settings.json, with the
    # test registry in place of the cluster's tracking URI.
    (configmap,) = _deploy("seldon-v2/model-settings.yaml")
    settings = json.loads(configmap["data"]["model-settings.json"])
    assert settings["parameters"]["extra"]["tracking_uri"].startswith("http://mlflow.")
    settings["parameters"]["extra"]["tracking_uri"] = uri
    # Seldon only keeps the fields it knows: what it drops must not matter (here, a batching setting).
    settings["max_batch_size"] = 4
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "model-settings.json").write_text(json.dumps(settings))

    models = {m["metadata"]["name"]: m for m in _deploy("seldon-v2/models.yaml")}
    assert set(models) == {"wine", "wine-v1"}
    repository = tmp_path / "agent-models"
    for name, model in models.items():
        assert model["spec"]["storageUri"] == "/var/sigaware/registry-model"
        # A short poll for the test, given the way a Model gives it: a spec.parameters string.
        parameters = model["spec"]["parameters"] + [{"name": "alias_poll_seconds", "value": "1"}]
        folder = seldon_agent.rewrite(artifact, repository, name, GENERATION, parameters, replace_uri=replace_uri)
        written = json.loads((folder / "model-settings.json").read_text())
        assert written["name"] == f"{name}_{GENERATION}" and written["parameters"]["version"] == "1"
        assert "max_batch_size" not in written

    rows, expected = _rows()
    inputs = [{"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].tolist()}
              for c in rows.columns]
    # As Seldon's ServerConfig runs MLServer: models loaded by the agent, not at start-up; the
    # image's repository implementation.
    extra_settings = {"load_models_at_startup": False,
                      "model_repository_implementation": "mlserver_sigaware.MlflowRegistryRepository"}
    with MLServerProcess(repository, parallel_workers=1, extra_settings=extra_settings) as server:
        for name in models:
            internal = seldon_agent.agent_model_name(name, GENERATION)
            r = requests.post(f"{server.http_url}/v2/repository/models/{internal}/load", timeout=120)
            assert r.status_code == 200, r.text

        def ask(name: str, path: str = "infer", versioned: bool = False) -> requests.Response:
            external = f"/v2/models/{name}/" + ("versions/1/" if versioned else "") + path
            url = server.http_url + seldon_agent.agent_path(external, name, GENERATION)
            if path == "infer":
                return requests.post(url, json={"inputs": inputs}, timeout=60)
            return requests.post(url, json={"dataframe_split": {"columns": list(rows.columns),
                                                                 "data": rows.values.tolist()}}, timeout=60)

        for name, version in (("wine", "2"), ("wine-v1", "1")):
            for path in ("infer", "invocations"):
                for versioned in (False, True):
                    r = ask(name, path, versioned)
                    assert r.status_code == 200, (name, path, r.text)
                    assert r.headers["mlflow-model-version"] == version, (name, path)
            reply = ask(name).json()
            assert reply["model_version"] == version
            assert reply["outputs"][0]["data"] == pytest.approx(expected.tolist())

        # The alias moves: `wine` follows within the poll, the pinned `wine-v1` stays.
        client.set_registered_model_alias(REGISTERED, "champion", "3")
        deadline = time.monotonic() + 30
        while ask("wine").json()["model_version"] != "3":
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.3)
        assert ask("wine-v1").json()["model_version"] == "1"
