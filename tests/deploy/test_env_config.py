"""Configuration from the environment alone, as Seldon Core v1 and KServe give it: a real
``mlserver start`` on a folder without any model-settings.json, the environment taken from the
manifests of ``deploy/`` plus what each platform adds itself; only the cluster's addresses are replaced
by the test's (registry, ports, the storage initializer's /mnt/models).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
import yaml

from tests import zoo
from tests.deploy import k8s
from tests.integration.harness import MLServerProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
REGISTERED = "wine-regressor"
REPOSITORY = {"model_repository_implementation": "mlserver_sigaware.MlflowRegistryRepository"}


def _doc(path: str) -> dict:
    return next(d for d in yaml.safe_load_all((REPO / "deploy" / path).read_text()) if d)


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    from mlserver_sigaware.demo import train_wine_model

    root = tmp_path_factory.mktemp("env-registry")
    folder = zoo.build_wine(root / "wine", serialization_format="cloudpickle")
    uri = f"sqlite:///{root}/mlflow.db"
    assert [zoo.register(uri, REGISTERED, folder) for _ in range(2)] == ["1", "2"]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(REGISTERED, "champion", "1")
    model, features = train_wine_model()
    rows = features.head(2)
    inputs = [{"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].tolist()} for c in rows.columns]
    return {"uri": uri, "client": client, "folder": folder, "inputs": inputs,
            "expected": model.predict(rows).tolist()}


def _no_model_settings(root: Path) -> None:
    assert not list(root.rglob("model-settings.json"))


def _infer(server: MLServerProcess, name: str, inputs: list, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{server.http_url}/v2/models/{name}/infer", json={"inputs": inputs}, headers=headers or {},
                         timeout=60)


def _pod_tmp_cache(env: dict[str, str], tmp_path: Path) -> Path:
    """The manifests put the runtime's artifact cache on the pod's /tmp volume; here, on the test's."""
    assert env["MLSERVER_SIGAWARE_ARTIFACT_CACHE_DIR"] == "/tmp/sigaware-artifacts"
    cache = tmp_path / "sigaware-artifacts"
    env["MLSERVER_SIGAWARE_ARTIFACT_CACHE_DIR"] = str(cache)
    return cache


def _cached_models(cache: Path) -> list[Path]:
    """The MLmodel files of the registry versions held in the artifact cache."""
    return sorted(cache.rglob("MLmodel")) if cache.exists() else []


def test_seldon_v1_environment(tmp_path, wine):
    sdep = _doc("seldon-v1/seldondeployment.yaml")
    predictor = sdep["spec"]["predictors"][0]
    (container,) = predictor["componentSpecs"][0]["spec"]["containers"]
    env = k8s.env_of(container)
    assert env["MLSERVER_MODEL_URI"] == f"models:/{REGISTERED}@champion"
    env["MLFLOW_TRACKING_URI"] = wine["uri"]
    env["MLSERVER_SIGAWARE_ALIAS_POLL_SECONDS"] = "1"  # the manifest's 30 s, shortened for the test
    # What Seldon v1 adds for a custom container: the model name is the container's; a port named
    # `metrics` makes it point MLServer's metrics endpoint at /prometheus (ports: the harness's).
    env["MLSERVER_MODEL_NAME"] = container["name"]
    env["MLSERVER_METRICS_ENDPOINT"] = "/prometheus"
    cache = _pod_tmp_cache(env, tmp_path)
    root = tmp_path / "models"
    with MLServerProcess(root, parallel_workers=1, env=env, extra_settings=REPOSITORY, models=["wine"]) as server:
        _no_model_settings(root)
        assert _cached_models(cache), "the registry version is downloaded into the manifest's cache dir"
        r = _infer(server, "wine", wine["inputs"])
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == "1"
        assert r.json()["outputs"][0]["data"] == pytest.approx(wine["expected"])
        # Another version by header, and by V2 versioned route (the repository lists them).
        assert _infer(server, "wine", wine["inputs"], {"mlflow-model-version": "2"}).json()["model_version"] == "2"
        r = requests.post(f"{server.http_url}/v2/models/wine/versions/2/infer", json={"inputs": wine["inputs"]},
                          timeout=60)
        assert r.status_code == 200 and r.json()["model_version"] == "2", r.text
        # MLSERVER_SIGAWARE_ALIAS_POLL_SECONDS from the environment: the alias is followed within it.
        wine["client"].set_registered_model_alias(REGISTERED, "champion", "2")
        deadline = time.monotonic() + 30
        while _infer(server, "wine", wine["inputs"]).json()["model_version"] != "2":
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.3)
        metrics = requests.get(f"http://127.0.0.1:{server.metrics_port}/prometheus", timeout=10)
        assert metrics.status_code == 200 and "sigaware_alias_swaps_total" in metrics.text
    assert not _cached_models(cache), "the artifact cache is cleaned when the server stops"
    wine["client"].set_registered_model_alias(REGISTERED, "champion", "1")


def _kserve_env(isvc: dict) -> dict[str, str]:
    """The runtime container's env with KServe's placeholders filled, then the InferenceService's."""
    runtime = _doc("kserve/servingruntime.yaml")
    env = k8s.env_of(runtime["spec"]["containers"][0])
    env = {k: v.replace("{{.Name}}", isvc["metadata"]["name"]) for k, v in env.items()}
    env.update(k8s.env_of(isvc["spec"]["predictor"]["model"]))
    for port in ("MLSERVER_HTTP_PORT", "MLSERVER_GRPC_PORT", "MLSERVER_METRICS_PORT"):
        env.pop(port)  # the harness's free ports (its settings.json) instead of 8080/9000/8082
    return env


def test_kserve_registry_model_without_storage_uri(tmp_path, wine):
    isvc = _doc("kserve/inferenceservice-registry.yaml")
    assert "storageUri" not in isvc["spec"]["predictor"]["model"]
    env = _kserve_env(isvc)
    assert env["MLSERVER_MODEL_NAME"] == "wine"
    env["MLFLOW_TRACKING_URI"] = wine["uri"]
    cache = _pod_tmp_cache(env, tmp_path)
    root = tmp_path / "mnt-models"  # nothing downloaded: an empty folder
    with MLServerProcess(root, parallel_workers=1, env=env, extra_settings=REPOSITORY, models=["wine"]) as server:
        _no_model_settings(root)
        assert _cached_models(cache), "the registry version is downloaded into the manifest's cache dir"
        r = _infer(server, "wine", wine["inputs"])
        assert r.status_code == 200 and r.json()["model_version"] == "1", r.text
        meta = requests.get(f"{server.http_url}/v2/models/wine", timeout=30).json()
        assert meta["versions"] == ["1"]
        assert meta["parameters"]["versions"]["default_version"] == "1"
        assert meta["parameters"]["versions"]["default_alias"] == "champion"
    assert not _cached_models(cache), "the artifact cache is cleaned when the server stops"


def test_kserve_storage_uri_model(tmp_path, wine):
    isvc = _doc("kserve/inferenceservice-storage.yaml")
    env = _kserve_env(isvc)
    assert env["MLSERVER_MODEL_URI"] == "/mnt/models"
    # The storage initializer's download, where the test can write it.
    env["MLSERVER_MODEL_URI"] = str(wine["folder"])
    root = tmp_path / "models"
    with MLServerProcess(root, parallel_workers=1, env=env, extra_settings=REPOSITORY, models=["wine-local"]) as server:
        _no_model_settings(root)
        r = _infer(server, "wine-local", wine["inputs"])
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == pytest.approx(wine["expected"])
        rows = {i["name"]: i["data"] for i in wine["inputs"]}
        scoring = requests.post(f"{server.http_url}/invocations", json={"dataframe_records": [
            {k: v[i] for k, v in rows.items()} for i in range(2)]}, timeout=60)
        assert scoring.status_code == 200 and scoring.json()["predictions"] == pytest.approx(wine["expected"])
