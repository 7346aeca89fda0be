"""The Ray Serve guide's story, offline, against real servers and a real registry.

A text model registered four times (en->de, en->fr, an incompatible `text_to_translate` version, en->de
again), served by name only; versions chosen per request by header (both forms), by V2 versioned
routes over REST and gRPC; the incompatible one answers 409 with its diff; LRU eviction. Then alias
hot-swap under continuous load from concurrent clients, with a real `mlflow server` as the registry.
"""

from __future__ import annotations

import functools
import threading
import time

import mlflow
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests import zoo
from tests.integration.harness import MLServerProcess, write_model_settings

pytestmark = pytest.mark.integration

REPOSITORY = {"model_repository_implementation": "mlserver_sigaware.MlflowRegistryRepository"}
NAME = "translator"


def v2_text(texts: list[str], name: str = "prompt") -> dict:
    return {"inputs": [{"name": name, "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


def translate(server, headers=None, path=f"/v2/models/{NAME}/infer", texts=("hello world",)):
    return requests.post(server.http_url + path, json=v2_text(list(texts)), headers=headers or {}, timeout=60)


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    root = tmp_path_factory.mktemp("story")
    uri = f"sqlite:///{root}/reg/mlflow.db"
    (root / "reg").mkdir()
    versions = [
        zoo.register(uri, NAME, functools.partial(zoo.build_text, lang="de")),
        zoo.register(uri, NAME, functools.partial(zoo.build_text, lang="fr")),
        zoo.register(uri, NAME, functools.partial(zoo.build_text, input_name="text_to_translate")),
        zoo.register(uri, NAME, functools.partial(zoo.build_text, lang="de")),
    ]
    assert versions == ["1", "2", "3", "4"]
    models = root / "models"
    # Name only: no uri, the folder has no MLmodel; relative sqlite path anchored at this folder.
    write_model_settings(models / NAME, NAME, extra={"tracking_uri": "sqlite:///../../reg/mlflow.db"})
    with MLServerProcess(models, parallel_workers=0, extra_settings=REPOSITORY, models=[NAME]) as server:
        yield server


def test_default_is_latest_and_every_response_names_its_version(story):
    r = translate(story)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == "4"
    assert r.headers["mlflow-model-version"] == "4"
    assert r.json()["outputs"][0]["data"] == ["hallo Welt"]
    meta = requests.get(f"{story.http_url}/v2/models/{NAME}", timeout=30).json()
    assert meta["versions"] == ["4"]
    assert meta["parameters"]["versions"]["default_version"] == "4"


@pytest.mark.parametrize("header", ["mlflow-model-version", "serve_multiplexed_model_id"])
def test_version_by_header(story, header):
    r = translate(story, {header: "2"})
    assert r.status_code == 200, r.text
    assert (r.json()["model_version"], r.json()["outputs"][0]["data"]) == ("2", ["bonjour monde"])
    assert r.headers["mlflow-model-version"] == "2"


def test_versioned_routes_rest_and_metadata(story):
    r = translate(story, path=f"/v2/models/{NAME}/versions/2/infer")
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == ["bonjour monde"]
    meta = requests.get(f"{story.http_url}/v2/models/{NAME}/versions/1", timeout=30).json()
    assert meta["versions"] == ["1"] and meta["inputs"][0]["name"] == "prompt"


def test_versioned_tritonclient_http_and_grpc(story):
    http = httpclient.InferenceServerClient(story.http_url.replace("http://", ""))
    tensor = httpclient.InferInput("prompt", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"hello world"], dtype=object), binary_data=False)
    out = [httpclient.InferRequestedOutput("translation_text", binary_data=False)]
    result = http.infer(NAME, [tensor], model_version="2", outputs=out)
    assert result.as_numpy("translation_text").tolist() == ["bonjour monde"]  # JSON: str

    grpc = grpcclient.InferenceServerClient(story.grpc_url)
    gtensor = grpcclient.InferInput("prompt", [1], "BYTES")
    gtensor.set_data_from_numpy(np.array([b"hello world"], dtype=object))
    result = grpc.infer(NAME, [gtensor], model_version="1")
    assert result.get_response().model_version == "1"
    assert result.as_numpy("translation_text").tolist() == [b"hallo Welt"]
    # and by header over gRPC
    result = grpc.infer(NAME, [gtensor], headers={"mlflow-model-version": "2"})
    assert result.as_numpy("translation_text").tolist() == [b"bonjour monde"]


def test_incompatible_version_is_409_with_its_diff(story):
    for _ in range(2):  # refused, and remembered
        r = translate(story, {"mlflow-model-version": "3"})
        assert r.status_code == 409
        assert "input 'prompt' (string) missing; unexpected required input 'text_to_translate' (string)" in r.json()["error"]
    r = translate(story, path=f"/v2/models/{NAME}/versions/3/infer")
    assert r.status_code == 409
    grpc = grpcclient.InferenceServerClient(story.grpc_url)
    gtensor = grpcclient.InferInput("prompt", [1], "BYTES")
    gtensor.set_data_from_numpy(np.array([b"hello"], dtype=object))
    with pytest.raises(InferenceServerException) as err:
        grpc.infer(NAME, [gtensor], headers={"mlflow-model-version": "3"})
    # MLServer 1.7.1 maps only 400/404/422/500 to gRPC codes: a 409 arrives as UNKNOWN, message intact.
    assert "text_to_translate" in str(err.value)
    assert translate(story).status_code == 200  # still serving


def test_unknown_version_or_alias_404_bad_selector_400(story):
    assert translate(story, {"mlflow-model-version": "99"}).status_code == 404
    assert translate(story, {"mlflow-model-version": "@nope"}).status_code == 404
    r = translate(story, {"mlflow-model-version": "models:/other/1"})
    assert r.status_code == 400 and "invalid version selector" in r.json()["error"]


def test_fourth_distinct_version_evicts_least_recently_used(story):
    # max_loaded_versions = 2: the default (4) plus one more.
    for version in ["1", "2", "1"]:
        assert translate(story, {"mlflow-model-version": version}).status_code == 200
    state = requests.get(f"{story.http_url}/v2/models/{NAME}", timeout=30).json()["parameters"]["versions"]
    assert state["loaded_versions"] == ["4", "1"]
    metrics = requests.get(f"http://127.0.0.1:{story.metrics_port}/metrics", timeout=30).text
    assert 'sigaware_version_evictions_total{model="translator",version="2"}' in metrics
    assert 'sigaware_version_refusals_total{model="translator",version="3"} 1.0' in metrics
    assert 'sigaware_version_requests_total{model="translator",version="1"}' in metrics


# ------------------------------------------------------------------------------ alias hot-swap


@pytest.fixture(scope="module")
def mlflow_server(mlflow_registry):
    """A real `mlflow server` (sqlite backend) on loopback, as in production (shared by the session)."""
    return mlflow_registry.url


class Load:
    """Concurrent clients sending requests until stopped; records every answer."""

    def __init__(self, server, clients: int = 4):
        self.server = server
        self.stop = threading.Event()
        self.answers: list[tuple[float, int, str]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self):
        session = requests.Session()
        while not self.stop.is_set():
            try:
                r = session.post(f"{self.server.http_url}/v2/models/{NAME}/infer", json=v2_text(["hello world"]),
                                 timeout=60)
                answer = r.json()["outputs"][0]["data"][0] if r.status_code == 200 else r.text
                status = r.status_code
            except Exception as exc:  # a dropped connection is a failure too
                status, answer = -1, repr(exc)
            with self.lock:
                self.answers.append((time.monotonic(), status, answer))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def since(self, t0: float) -> list[tuple[float, int, str]]:
        with self.lock:
            return [a for a in self.answers if a[0] >= t0]

    def wait_for(self, answer: str, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            recent = self.since(time.monotonic() - 0.5)
            if recent and all(a[2] == answer for a in recent):
                return time.monotonic() - start
            time.sleep(0.2)
        raise AssertionError(f"answers did not switch to {answer!r} in {timeout}s: {self.since(start)[-5:]}")


def wait_for_log(server, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log_text():
            return
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not logged within {timeout}s")


def test_alias_hot_swap_under_load_over_a_real_mlflow_server(tmp_path, mlflow_server):
    uri = mlflow_server
    de = zoo.register(uri, NAME, functools.partial(zoo.build_text, lang="de"), alias="champion")
    fr = zoo.register(uri, NAME, functools.partial(zoo.build_text, lang="fr"))
    bad = zoo.register(uri, NAME, functools.partial(zoo.build_text, input_name="text_to_translate"))
    broken = zoo.register(uri, NAME, zoo.build_broken)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)

    models = tmp_path / "models"
    write_model_settings(models / NAME, NAME, uri=f"models:/{NAME}@champion",
                         extra={"tracking_uri": uri, "alias_poll_seconds": 1})
    with MLServerProcess(models, parallel_workers=1, extra_settings=REPOSITORY, models=[NAME]) as server:
        assert translate(server).json()["outputs"][0]["data"] == ["hallo Welt"]
        with Load(server) as load:
            time.sleep(1.5)
            client.set_registered_model_alias(NAME, "champion", fr)
            took = load.wait_for("bonjour monde", timeout=30)  # poll (1 s) + load time
            t_bad = time.monotonic()
            client.set_registered_model_alias(NAME, "champion", bad)  # incompatible: nothing changes
            wait_for_log(server, f"moved to version {bad}, which is not compatible")
            client.set_registered_model_alias(NAME, "champion", broken)  # cannot load: nothing changes
            wait_for_log(server, "broken on purpose")
            time.sleep(2)
        failures = [a for a in load.answers if a[1] != 200]
        assert not failures, failures[:5]
        assert len(load.answers) > 50
        after = load.since(t_bad)
        assert after and all(a[2] == "bonjour monde" for a in after)
        assert took < 30
        log = server.log_text()
        assert f"switched from version {de} to {fr}" in log
        assert log.count("which is not compatible") == 1  # refused once, remembered, not re-loaded

        # The repository load API re-resolves at once; a refused target is a 409, the old one serves.
        client.set_registered_model_alias(NAME, "champion", bad)
        r = requests.post(f"{server.http_url}/v2/repository/models/{NAME}/load", timeout=60)
        assert r.status_code == 409, r.text
        assert "text_to_translate" in r.json()["error"]
        assert translate(server).json()["outputs"][0]["data"] == ["bonjour monde"]
        # A version registered after start: by header at once, by versioned route after a re-list.
        client.set_registered_model_alias(NAME, "champion", fr)
        late = zoo.register(uri, NAME, functools.partial(zoo.build_text, lang="de"))
        r = translate(server, {"mlflow-model-version": late})
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["hallo Welt"]
        assert translate(server, path=f"/v2/models/{NAME}/versions/{late}/infer").status_code == 404
        assert requests.post(f"{server.http_url}/v2/repository/models/{NAME}/load", timeout=60).status_code == 200
        r = translate(server, path=f"/v2/models/{NAME}/versions/{late}/infer")
        assert r.status_code == 200, r.text


def test_reload_moves_a_model_deployed_by_name_to_the_newest_version(tmp_path):
    """Served by name only (the latest version): the load API moves it on, behind the same guard."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    zoo.register(uri, NAME, functools.partial(zoo.build_text, lang="de"))
    models = tmp_path / "models"
    write_model_settings(models / NAME, NAME, extra={"tracking_uri": uri})
    with MLServerProcess(models, parallel_workers=0, extra_settings=REPOSITORY, models=[NAME]) as server:
        assert translate(server).json()["model_version"] == "1"
        fr = zoo.register(uri, NAME, functools.partial(zoo.build_text, lang="fr"))
        assert translate(server).json()["model_version"] == "1"  # not polled: moves on reload only
        r = requests.post(f"{server.http_url}/v2/repository/models/{NAME}/load", timeout=60)
        assert r.status_code == 200, r.text
        r = translate(server)
        assert (r.json()["model_version"], r.json()["outputs"][0]["data"]) == (fr, ["bonjour monde"])
        zoo.register(uri, NAME, functools.partial(zoo.build_text, input_name="text_to_translate"))
        r = requests.post(f"{server.http_url}/v2/repository/models/{NAME}/load", timeout=60)
        assert r.status_code == 409, r.text
        assert "the latest version" in r.json()["error"] and "text_to_translate" in r.json()["error"]
        assert translate(server).json()["model_version"] == fr
