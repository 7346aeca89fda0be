"""The runtime's settings: parameters.extra, env prefix, relative sqlite anchoring."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlserver_sigaware.settings import SigawareSettings, resolve_relative_sqlite


def test_extra_and_env(monkeypatch):
    monkeypatch.setenv("MLSERVER_SIGAWARE_TRACKING_URI", "http://env:5000")
    assert SigawareSettings.from_extra({}).tracking_uri == "http://env:5000"
    # model-settings.json wins over the process-wide env var
    assert SigawareSettings.from_extra({"tracking_uri": "sqlite:///x.db"}).tracking_uri == "sqlite:///x.db"


def test_unknown_keys_are_refused():
    with pytest.raises(ValidationError, match="trackng_uri"):
        SigawareSettings.from_extra({"trackng_uri": "x"})


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("sqlite:///mlflow.db", "sqlite:////models/wine/mlflow.db"),
        ("sqlite:///../reg/mlflow.db", "sqlite:////models/reg/mlflow.db"),
        ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db"),
        ("http://localhost:5000", "http://localhost:5000"),
        (None, None),
    ],
)
def test_relative_sqlite_is_anchored_at_the_settings_folder(uri, expected):
    assert resolve_relative_sqlite(uri, "/models/wine") == expected


def test_the_per_version_instance_marker_is_not_a_setting():
    """MlflowRegistryRepository marks its per-version instances under parameters.extra; that key is
    internal, so it is not refused as a typo and not read as configuration."""
    from mlserver_sigaware.settings import VERSION_INSTANCE_KEY

    assert SigawareSettings.from_extra({VERSION_INSTANCE_KEY: "3"}) == SigawareSettings()
