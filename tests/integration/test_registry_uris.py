"""Models served from sqlite registries by every kind of location (see conftest's docstring):
``models:/name/<v>``, ``models:/name@alias``, ``models:/name`` (latest), the MLServer model name
alone, and ``runs:/<run_id>/model``; registry URIs relative to model-settings.json or from
``MLFLOW_TRACKING_URI``. The version each model reports is the one the registry resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from cases import Case, check_reply, metadata_matches, mixed_case, mixed_row, text_case
from harness import MLServerProcess, MLServerStartError, write_model_settings
from v2 import CLIENTS, RestClient, make_client

pytestmark = pytest.mark.integration

REGISTRY_MODELS = (
    "translator",
    "translator-v1",
    "translator-champion",
    "translator-latest",
    "reg-mixed",
    "mixed-run",
)


def expected_case(name: str, lang: str | None) -> Case:
    if lang is not None:
        return text_case(name, lang)
    return mixed_case([mixed_row(7), mixed_row(8)], model=name)


@pytest.fixture(scope="module", params=CLIENTS)
def client(request, main_server):
    c = make_client(request.param, main_server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def rest(main_server):
    c = RestClient(main_server.http_url)
    yield c
    c.close()


@pytest.mark.parametrize("name", REGISTRY_MODELS)
def test_serves_the_resolved_version(client, registry_served, name):
    served = registry_served[name]
    case = expected_case(name, served.lang)
    reply = client.infer(name, case.inputs)
    check_reply(reply, case)
    assert reply.model_version == served.version
    meta = client.metadata(name)
    assert meta["versions"] == ([served.version] if served.version else [])
    metadata_matches(meta, reply)


def test_versions_are_distinguishable(registry_served, registries):
    """The set-up itself: alias and latest point at different versions with different outputs."""
    assert registry_served["translator-champion"].version == registries.translator_de == "1"
    assert registry_served["translator-latest"].version == registries.translator_fr == "2"
    assert registry_served["translator"].version == "2"  # name only = latest


@pytest.mark.parametrize("name", REGISTRY_MODELS)
def test_rest_version_header_and_metadata(rest, registry_served, registries, name):
    served = registry_served[name]
    case = expected_case(name, served.lang)
    reply = rest.infer(name, case.inputs)
    assert reply.ok, reply.raw
    assert reply.headers.get("mlflow-model-version") == served.version
    meta = rest.metadata(name)
    params = meta["parameters"]
    for tensor in meta["inputs"] + meta["outputs"]:
        assert tensor["parameters"]["content_type"], tensor
    if name == "mixed-run":
        assert params["mlflow_source"] == f"runs:/{registries.run_id}/model"
    if name in ("mixed-run", "reg-mixed"):
        assert params["mlflow_run_id"] == registries.run_id
    expected_source = {
        "translator-v1": "models:/translator/1",
        "translator-champion": "models:/translator@champion",
    }.get(name)
    if expected_source:
        assert params["mlflow_source"] == expected_source


def test_relative_sqlite_path_is_anchored_at_the_settings_folder(main_server, main_root, registries):
    """``sqlite:///reg/mlflow.db`` was read from <settings folder>/reg, not the server's cwd: the
    models loaded (above) and nothing was created in the working directory."""
    assert main_server.root == main_root.resolve()
    assert not (main_root / "reg").exists()
    assert not (main_root / "mlflow.db").exists()
    assert not (main_root / "mlruns").exists()
    assert (registries.relative_home / "reg" / "mlflow.db").is_file()


# ---------------------------------------------------------------------------- not found


def test_unknown_registered_model_fails_to_load_with_a_clear_log_line(tmp_path: Path, registries):
    root = tmp_path / "server"
    write_model_settings(root / "ghost", "ghost-model", extra={"tracking_uri": registries.env_uri})
    server = MLServerProcess(root, models=["ghost-model"], startup_timeout=120)
    with pytest.raises(MLServerStartError):
        server.start()
    log = server.log_text()
    assert "registered model 'ghost-model' not found" in log, log[-3000:]


@pytest.mark.parametrize(
    "uri,fragment",
    [
        ("models:/ghost-model", "registered model 'ghost-model' not found"),
        ("models:/translator/9", "model 'translator' has no version 9"),
        ("models:/translator@nope", "model 'translator' has no alias 'nope'"),
    ],
)
def test_registry_not_found_in_process(registries, uri, fragment):
    from mlserver_sigaware.errors import RegistryNotFound
    from mlserver_sigaware.model.location import parse_registry_uri
    from mlserver_sigaware.model.registry import RegistryClient
    from mlserver_sigaware.settings import SigawareSettings

    client = RegistryClient(SigawareSettings(tracking_uri=registries.relative_uri), None)
    with pytest.raises(RegistryNotFound) as info:
        client.resolve(parse_registry_uri(uri))
    assert fragment in str(info.value)
    assert info.value.status_code == 404


# ---------------------------------------------------------------------------- pinned


def test_a_pinned_deployment_serves_only_its_version(main_server, registries):
    """``models:/translator/1`` is what its operator deploys: other versions are not reachable there
    (an alias that names the pinned version is)."""
    import requests

    base = f"{main_server.http_url}/v2/models/translator-v1"
    body = {"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["hello world"]}]}
    pinned, other = registries.translator_de, registries.translator_fr

    def infer(selector):
        return requests.post(f"{base}/infer", json=body, headers={"mlflow-model-version": selector}, timeout=30)

    for selector in (pinned, "@champion"):  # champion names the pinned version
        reply = infer(selector)
        assert reply.status_code == 200 and reply.json()["model_version"] == pinned, reply.text
    reply = infer(other)
    assert reply.status_code == 403, reply.text
    assert f"pinned to version {pinned}" in reply.json()["error"]
    assert requests.get(base, timeout=30).json()["parameters"]["versions"]["pinned"] is True
