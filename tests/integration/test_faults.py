"""Faults an operator meets, against a real ``mlflow server`` that is stopped and restarted mid-test.

* registry outage: a version not loaded yet answers 503 within seconds (REST and gRPC UNAVAILABLE),
  loaded versions keep serving (0 failures), one warning per outage and one line when it ends, the alias
  poller picks up a move within one poll period of the registry's return;
* start-up with the registry down: live at once, not ready, a log line saying what it waits for, exit 1
  after ``startup_registry_wait_seconds``, or ready soon after the registry returns; SIGTERM meanwhile
  stops it at once;
* the artifact cache: folders on disk bounded by the loaded versions, none left by failed or refused
  loads, none after shutdown;
* stages (``models:/m/Production``, ``/Staging``) as distinct references, a transition followed;
* metadata after a hot-swap with ``parallel_workers`` 1 (outage test) and 0 (stages test);
* SIGTERM under load: every request in flight is answered, exit 0.

Each test prints its figures (``FIGURES ...``). Short timeouts and poll periods come from settings.
Run alone: ``.venv/bin/python -m pytest tests/integration/test_faults.py -m faults``.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests import zoo
from tests.integration.harness import MLServerProcess, free_port, write_model_settings
from tests.integration.loadgen import Load
from tests.integration.mlflow_registry import RegistryServer

pytestmark = [pytest.mark.integration, pytest.mark.faults]

REPOSITORY = {"model_repository_implementation": "mlserver_sigaware.MlflowRegistryRepository"}
NAME = "translator"
#: Shorter deadlines for tests (defaults: 2 retries, 0.5 s back-off, 300 s start-up wait). The timeout stays
#: at its default (5 s): a freshly restarted mlflow server takes seconds over its first API calls.
FAST = {"registry_retries": 1, "registry_backoff_seconds": 0.2}


def v2_text(texts: list[str], name: str = "prompt") -> dict:
    return {"inputs": [{"name": name, "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}


def translate(server, headers=None, name=NAME, timeout=60):
    return requests.post(f"{server.http_url}/v2/models/{name}/infer", json=v2_text(["hello world"]),
                         headers=headers or {}, timeout=timeout)


def figures(capsys, test: str, **values) -> None:
    with capsys.disabled():
        print(f"\nFIGURES {test}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def wait_until(predicate, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout}s")


def status_of(url: str) -> int | None:
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None


def version_folders(cache: Path) -> list[str]:
    """Model version folders in an artifact cache (every process's)."""
    if not cache.is_dir():
        return []
    return sorted(f"{proc.name}/{v.name}" for proc in cache.iterdir() if proc.is_dir()
                  for v in proc.iterdir() if not v.name.startswith("."))


@pytest.fixture
def registry(mlflow_registry):
    """The session's real `mlflow server`; a test that stops it restarts it before it ends."""
    yield mlflow_registry
    if mlflow_registry.process is None:
        mlflow_registry.start()


def fresh_model(registry: RegistryServer, name: str, *langs: str, alias_first: str | None = "champion") -> list[str]:
    """Register ``name`` once per language (the first one under ``alias_first``); versions returned."""
    versions = []
    for i, lang in enumerate(langs):
        alias = alias_first if i == 0 else None
        versions.append(zoo.register(registry.url, name, functools.partial(zoo.build_text, lang=lang), alias=alias))
    return versions


# ------------------------------------------------------------------------------------------ outage


def test_registry_outage_and_recovery(tmp_path, registry, capsys):
    """One registry crash and restart, seen by a running server (parallel_workers 1) and by a server
    started during the outage (parallel_workers 0)."""
    name = "outage"
    v1, v2, v3, v4 = fresh_model(registry, name, "de", "fr", "de", "fr")
    client = mlflow.MlflowClient(tracking_uri=registry.url, registry_uri=registry.url)
    run_id = {v: client.get_model_version(name, v).run_id for v in (v1, v4)}
    extra = {"tracking_uri": registry.url, "alias_poll_seconds": 1, "max_loaded_versions": 3,
             "artifact_cache_dir": str(tmp_path / "cache"), **FAST}
    write_model_settings(tmp_path / "models" / name, name, uri=f"models:/{name}@champion", extra=extra)
    write_model_settings(tmp_path / "late" / name, name, uri=f"models:/{name}@champion",
                         extra={**extra, "startup_registry_wait_seconds": 120})
    late = MLServerProcess(tmp_path / "late", parallel_workers=0, extra_settings=REPOSITORY)
    with MLServerProcess(tmp_path / "models", parallel_workers=1, extra_settings=REPOSITORY, models=[name]) as server:
        def metadata():
            return requests.get(f"{server.http_url}/v2/models/{name}", timeout=10).json()

        assert metadata()["versions"] == [v1] and metadata()["parameters"]["mlflow_run_id"] == run_id[v1]
        assert translate(server, {"mlflow-model-version": v2}, name).json()["outputs"][0]["data"] == ["bonjour monde"]
        default_url = f"{server.http_url}/v2/models/{name}/infer"
        try:
            with Load(default_url, v2_text(["hello world"]), clients=2, pause=0.05) as on_default, \
                    Load(default_url, v2_text(["hello world"]), {"mlflow-model-version": v2}, clients=2,
                         pause=0.05) as on_v2:
                time.sleep(1)
                registry.stop(crash=True)
                t_down = time.monotonic()
                r = translate(server, {"mlflow-model-version": v3}, name)
                to_503 = time.monotonic() - t_down
                assert r.status_code == 503, r.text
                assert "the model registry is unreachable" in r.json()["error"]
                assert "127.0.0.1" in r.json()["error"]

                grpc = grpcclient.InferenceServerClient(server.grpc_url)
                tensor = grpcclient.InferInput("prompt", [1], "BYTES")
                tensor.set_data_from_numpy(np.array([b"hello"], dtype=object))
                with pytest.raises(InferenceServerException) as err:
                    grpc.infer(name, [tensor], headers={"mlflow-model-version": v3})
                assert err.value.status() == "StatusCode.UNAVAILABLE", err.value

                # a server started now waits for the registry: live, not ready, saying what it waits for
                late.launch()
                wait_until(lambda: "waiting for the model registry" in late.log_text(), 60)
                assert status_of(f"{late.http_url}/v2/health/live") == 200
                assert status_of(f"{late.http_url}/v2/models/{name}/ready") not in (200, None)

                metrics = requests.get(server.metrics_url, timeout=10).text  # polls failed meanwhile
                assert re.search(r'sigaware_registry_outages_total\{registry="http://127\.0\.0\.1:\d+"\} 1\.0', metrics)
                assert re.search(r'sigaware_registry_up\{registry="http://127\.0\.0\.1:\d+"\} 0\.0', metrics)

                t_start = time.monotonic()
                registry.start()
                # a freshly started mlflow server answers /health seconds before its first API call
                client.search_registered_models(max_results=1)
                t_up, wall_up = time.monotonic(), time.time()
                client.set_registered_model_alias(name, "champion", v4)  # moved as soon as it is back
                switched = on_default.first("bonjour monde", since=t_up, timeout=30)
                pickup = switched - t_up
                wait_until(lambda: status_of(f"{late.http_url}/v2/models/{name}/ready") == 200, 60)
                late_ready = time.monotonic() - t_up
            assert translate(late, name=name).status_code == 200
        finally:
            late.stop()
        failures = on_default.failures() + on_v2.failures()
        served = len(on_default.answers) + len(on_v2.answers)
        log = server.log_text()
        back = re.search(r"^(\S+ \S+) \[mlserver\.sigaware\].* is reachable again", log, flags=re.M)
        assert back, log[-3000:]
        poller_back = datetime.strptime(back.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp() - wall_up
        figures(capsys, "registry outage", time_to_first_503_s=f"{to_503:.2f}",
                requests_on_loaded_versions=served, failed_on_loaded_versions=len(failures),
                poller_through_after_registry_answered_s=f"{poller_back:.2f}",
                alias_move_picked_up_after_recovery_s=f"{pickup:.2f}", alias_poll_s=1,
                server_started_in_outage_ready_after_recovery_s=f"{late_ready:.1f}",
                registry_start_took_s=f"{t_up - t_start:.1f}")
        assert not failures, failures[:5]
        assert to_503 < 5
        assert poller_back < 1 + 1  # the next poll (period 1 s) gets through (< 0: before our own call)
        assert pickup < 15  # that poll, plus the new version's download and load on two busy cores
        assert log.count("WARNING - model registry") == 1, log[-3000:]  # one per outage (one worker)
        assert log.count("INFO - model registry") == 1 and "is reachable again" in log
        assert f"switched from version {v1} to {v4}" in log
        # metadata tells the truth after the swap (parallel_workers 1: asked of the worker, not cached)
        meta = metadata()
        assert meta["versions"] == [v4] and meta["parameters"]["mlflow_run_id"] == run_id[v4]
        assert meta["parameters"]["versions"]["default_version"] == v4
        r = translate(server, {"mlflow-model-version": v3}, name)
        assert r.status_code == 200 and r.json()["model_version"] == v3


# ------------------------------------------------------------------------------------------ start-up


def test_startup_with_the_registry_down_exits_1_while_probes_behave(tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    models = tmp_path / "models"
    write_model_settings(models / NAME, NAME, uri=f"models:/{NAME}@champion",
                         extra={"tracking_uri": dead, "startup_registry_wait_seconds": 4, **FAST})
    server = MLServerProcess(models, parallel_workers=1, extra_settings=REPOSITORY)
    t0 = time.monotonic()
    server.launch()
    try:
        live = wait_until(lambda: status_of(f"{server.http_url}/v2/health/live") == 200, 60)
        t_live = time.monotonic() - t0
        assert live
        wait_until(lambda: "waiting for the model registry" in server.log_text(), 30)
        t_logged = time.monotonic() - t0
        assert status_of(f"{server.http_url}/v2/health/ready") not in (200, None)
        assert status_of(f"{server.http_url}/v2/models/{NAME}/ready") not in (200, None)
        code = server.process.wait(90)
        t_exit = time.monotonic() - t0
    finally:
        server.stop()
    log = server.log_text()
    figures(capsys, "start-up, registry down", live_after_s=f"{t_live:.1f}", waiting_logged_after_s=f"{t_logged:.1f}",
            exit_code=code, exited_after_s=f"{t_exit:.1f}", startup_registry_wait_seconds=4)
    assert code == 1, log[-3000:]
    assert "gave up waiting for the model registry" in log
    assert f"models:/{NAME}@champion" in log


@pytest.mark.parametrize("workers", [0, 1])
def test_sigterm_during_the_startup_wait_stops_promptly(tmp_path, workers, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    models = tmp_path / "models"
    write_model_settings(models / NAME, NAME, uri=f"models:/{NAME}@champion",
                         extra={"tracking_uri": dead, "startup_registry_wait_seconds": 300, **FAST})
    server = MLServerProcess(models, parallel_workers=workers, extra_settings=REPOSITORY)
    server.launch()
    try:
        wait_until(lambda: "waiting for the model registry" in server.log_text(), 60)
        t_term = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        code = server.process.wait(30)
        took = time.monotonic() - t_term
    finally:
        server.stop()
    figures(capsys, f"SIGTERM during the start-up wait (parallel_workers={workers})", exit_code=code,
            exited_after_s=f"{took:.1f}")
    assert code == 0 and took < 10, server.log_tail()


# ------------------------------------------------------------------------------------------ disk


def test_artifact_cache_is_bounded_and_cleaned(tmp_path, registry, capsys):
    name = "disk"
    versions = fresh_model(registry, name, "de", "fr", "de", "fr", alias_first=None)
    refused = zoo.register(registry.url, name, functools.partial(zoo.build_text, input_name="text_to_translate"))
    broken = zoo.register(registry.url, name, zoo.build_broken)
    cache = tmp_path / "cache"
    models = tmp_path / "models"
    pinned_default = versions[0]
    write_model_settings(models / name, name, uri=f"models:/{name}@champion",
                         extra={"tracking_uri": registry.url, "max_loaded_versions": 2,
                                "artifact_cache_dir": str(cache), "alias_poll_seconds": 0})
    mlflow.MlflowClient(tracking_uri=registry.url).set_registered_model_alias(name, "champion", pinned_default)
    switches = 12
    with MLServerProcess(models, parallel_workers=1, extra_settings=REPOSITORY, models=[name]) as server:
        assert len(version_folders(cache)) == 1
        for i in range(switches):
            version = versions[1 + i % 3]
            r = translate(server, {"mlflow-model-version": version}, name)
            assert r.status_code == 200 and r.json()["model_version"] == version, r.text
        # the folder of an evicted version goes once no request holds it (removal runs off the loop)
        after_switches = wait_until(lambda: (f := version_folders(cache)) and len(f) <= 2 and f, 10)
        assert translate(server, {"mlflow-model-version": refused}, name).status_code == 409
        r = translate(server, {"mlflow-model-version": broken}, name)
        assert r.status_code == 500 and "broken on purpose" in r.text
        time.sleep(0.5)
        after_failures = version_folders(cache)
        assert not [f for f in after_failures if f"-v{refused}-" in f or f"-v{broken}-" in f], after_failures
        assert len(after_failures) <= 2
        staging = [p for proc in cache.iterdir() for p in proc.iterdir() if p.name.startswith(".")]
    after_shutdown = version_folders(cache)
    figures(capsys, "artifact cache", version_switches=switches, folders_after_switches=len(after_switches),
            folders_after_refused_and_broken_loads=len(after_failures), folders_after_shutdown=len(after_shutdown),
            max_loaded_versions=2)
    assert after_shutdown == []
    assert not cache.exists() or not any(cache.iterdir())
    assert not [p for p in staging if not p.name.startswith(".trash-")], staging


# ------------------------------------------------------------------------------------------ stages


def test_stages_are_distinct_references_and_transitions_are_followed(tmp_path, registry, capsys):
    name = "staged"
    de, fr = fresh_model(registry, name, "de", "fr", alias_first=None)
    client = mlflow.MlflowClient(tracking_uri=registry.url, registry_uri=registry.url)
    with pytest.warns(FutureWarning):
        client.transition_model_version_stage(name, de, "Production")
    with pytest.warns(FutureWarning):
        client.transition_model_version_stage(name, fr, "Staging")
    models = tmp_path / "models"
    extra = {"tracking_uri": registry.url, "alias_poll_seconds": 1}
    write_model_settings(models / "prod", "prod", uri=f"models:/{name}/Production", extra=extra)
    write_model_settings(models / "staging", "staging", uri=f"models:/{name}/staging", extra=extra)
    with MLServerProcess(models, parallel_workers=0, extra_settings=REPOSITORY, models=["prod", "staging"]) as server:
        assert translate(server, name="prod").json()["outputs"][0]["data"] == ["hallo Welt"]
        assert translate(server, name="staging").json()["outputs"][0]["data"] == ["bonjour monde"]
        meta = requests.get(f"{server.http_url}/v2/models/prod", timeout=10).json()
        assert meta["parameters"]["mlflow_source"] == f"models:/{name}/Production"
        assert meta["parameters"]["versions"]["default_stage"] == "Production"
        new = zoo.register(registry.url, name, functools.partial(zoo.build_text, lang="fr"))
        with pytest.warns(FutureWarning):
            client.transition_model_version_stage(name, new, "Production", archive_existing_versions=True)
        t0 = time.monotonic()
        wait_until(lambda: translate(server, name="prod").json()["model_version"] == new, 30)
        followed = time.monotonic() - t0
        assert translate(server, name="prod").json()["outputs"][0]["data"] == ["bonjour monde"]
        r = translate(server, name="staging")
        assert (r.json()["model_version"], r.json()["outputs"][0]["data"]) == (fr, ["bonjour monde"])
        assert f"stage 'Production' of {name}: switched from version {de} to {new}" in server.log_text()
        # metadata tells the truth after the swap (parallel_workers 0)
        meta = requests.get(f"{server.http_url}/v2/models/prod", timeout=10).json()
        assert meta["versions"] == [new]
        assert meta["parameters"]["mlflow_run_id"] == client.get_model_version(name, new).run_id
    figures(capsys, "stages", transition_followed_after_s=f"{followed:.1f}", alias_poll_s=1)


# ------------------------------------------------------------------------------------------ SIGTERM


def test_sigterm_under_load_answers_every_request_in_flight(tmp_path, capsys):
    models = tmp_path / "models"
    zoo.build_slow(models / "slow" / "model", seconds=0.4)
    write_model_settings(models / "slow", "slow", uri="./model")
    server = MLServerProcess(models, parallel_workers=1, extra_settings=REPOSITORY, models=["slow"])
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    with server:
        with Load(f"{server.http_url}/v2/models/slow/infer", body, clients=6) as load:
            wait_until(lambda: len(load.answers) >= 6, 30)
            load.stop.set()  # clients send nothing new (a load balancer has stopped routing here)...
            t_term = time.monotonic()
            in_flight = sum(1 for t in load.threads if t.is_alive())
            os.kill(server.pid, signal.SIGTERM)  # ...and the pod gets SIGTERM, as Kubernetes sends it
            code = server.process.wait(60)
            took = time.monotonic() - t_term
        across = [a for a in load.answers if a.sent < t_term <= a.received]
    log = server.log_text()
    figures(capsys, "SIGTERM under load", requests_in_flight_at_sigterm=len(across),
            of_which_answered_200=sum(a.status == 200 for a in across), exit_code=code,
            exited_after_s=f"{took:.1f}", client_threads_busy=in_flight)
    assert code == 0, log[-3000:]
    assert len(across) >= 2
    assert all(a.status == 200 for a in across), [a for a in across if a.status != 200][:3]
    assert not load.failures()
