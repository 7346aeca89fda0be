"""Which registry versions ``MlflowRegistryRepository`` lists as versioned MLServer models."""

from __future__ import annotations

import socket

from mlserver.settings import ModelSettings

from mlserver_sigaware.versions.repository import registry_versions, with_versions


def settings(uri: str, **extra) -> ModelSettings:
    with socket.socket() as sock:  # a registry nobody answers for: listing it would fail
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    return ModelSettings(
        name="m",
        implementation="mlserver_sigaware.SignatureAwareRuntime",
        parameters={"uri": uri, "extra": {"tracking_uri": dead, "registry_backoff_seconds": 0.01, **extra}},
    )


def test_a_pinned_deployment_lists_only_its_version_without_asking_the_registry():
    assert registry_versions(settings("models:/m/3")) == ["3"]
    assert [s.parameters.version for s in with_versions(settings("models:/m/3"))] == [None, "3"]


def test_an_unreachable_registry_leaves_only_the_default_instance(caplog):
    with caplog.at_level("WARNING", logger="mlserver.sigaware"):
        listed = with_versions(settings("models:/m@champion"))
    assert [s.parameters.version for s in listed] == [None]
    assert "versioned routes (/v2/models/m/versions/<v>) answer 404 until" in caplog.text
