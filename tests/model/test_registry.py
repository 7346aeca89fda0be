"""Model location parsing: local folders, runs:/, and every models:/ form; name-only deployment."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlserver_sigaware.errors import InvalidInput, ModelLoadError
from mlserver_sigaware.model.location import (
    ModelRef,
    parse_model_location,
    validate_alias,
    validate_version,
)
from mlserver_sigaware.settings import SigawareSettings

CFG = SigawareSettings()


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("models:/wine/3", ModelRef("registry", "models:/wine/3", name="wine", version="3")),
        ("models:/wine@champion", ModelRef("registry", "models:/wine@champion", name="wine", alias="champion")),
        ("models:/wine", ModelRef("registry", "models:/wine", name="wine")),
        ("models:/wine/latest", ModelRef("registry", "models:/wine/latest", name="wine")),
        ("models:/team/wine/2", ModelRef("registry", "models:/team/wine/2", name="team/wine", version="2")),
        # MLflow's (deprecated) stages: each its own moving reference, case-insensitive as in MLflow
        ("models:/wine/Production", ModelRef("registry", "models:/wine/Production", name="wine", stage="Production")),
        ("models:/wine/staging", ModelRef("registry", "models:/wine/staging", name="wine", stage="Staging")),
        ("runs:/abc123/model", ModelRef("uri", "runs:/abc123/model")),
        ("s3://bucket/model", ModelRef("uri", "s3://bucket/model")),
    ],
)
def test_uri_forms(uri, expected):
    assert parse_model_location(uri, "/settings", "served-name", CFG) == expected


def test_stage_refs_move_and_describe_themselves():
    prod = parse_model_location("models:/wine/production", None, "w", CFG)
    assert prod.moves and prod.describe == "models:/wine/Production"
    assert parse_model_location("models:/wine@champion", None, "w", CFG).moves
    assert not parse_model_location("models:/wine/3", None, "w", CFG).moves
    assert prod != parse_model_location("models:/wine/Staging", None, "w", CFG)


def test_unknown_suffix_is_a_clear_load_error():
    with pytest.raises(ModelLoadError, match="neither a version number, 'latest' nor a stage"):
        parse_model_location("models:/wine/Prod", None, "w", CFG)


def test_no_uri_means_the_model_name_in_the_registry():
    assert parse_model_location(None, "/x", "wine", CFG) == ModelRef("registry", "models:/wine", name="wine")
    cfg = SigawareSettings(registry_name="wine-regressor")
    assert parse_model_location(None, "/x", "wine_1", cfg).name == "wine-regressor"


def test_model_uri_wins_over_a_rewritten_uri(tmp_path: Path, monkeypatch):
    """Seldon Core v2's agent renames the model and may point ``uri`` at its download folder: the
    registry reference in ``parameters.extra`` (``model_uri``) decides what is served."""
    cfg = SigawareSettings.from_extra({"model_uri": "models:/wine@champion"})
    for uri in (str(tmp_path), None, "models:/other/1"):
        ref = parse_model_location(uri, str(tmp_path), "wine_3", cfg)
        assert ref == ModelRef("registry", "models:/wine@champion", name="wine", alias="champion")
    monkeypatch.setenv("MLSERVER_SIGAWARE_MODEL_URI", "models:/wine/2")
    ref = parse_model_location(str(tmp_path), str(tmp_path), "wine_3", SigawareSettings.from_extra({}))
    assert (ref.name, ref.version) == ("wine", "2")


def test_folder_without_mlmodel_means_no_uri(tmp_path: Path):
    # MLServer fills a missing uri with the model-settings.json folder.
    ref = parse_model_location(str(tmp_path), str(tmp_path), "wine", CFG)
    assert ref == ModelRef("registry", "models:/wine", name="wine")


def test_local_model_folder_relative_to_settings(tmp_path: Path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    ref = parse_model_location("./model", str(tmp_path), "wine", CFG)
    assert ref == ModelRef("local", str(model))
    assert parse_model_location(str(model / "MLmodel"), None, "wine", CFG) == ModelRef("local", str(model))


def test_missing_path_is_a_load_error(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="neither an MLflow model folder"):
        parse_model_location(str(tmp_path / "nope"), None, "wine", CFG)


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "abc", "1/../2", ""])
def test_versions_are_validated(bad):
    with pytest.raises(InvalidInput):
        validate_version(bad)


@pytest.mark.parametrize("bad", ["", "a b", "../x", "a/b", "x" * 300])
def test_aliases_are_validated(bad):
    with pytest.raises(InvalidInput):
        validate_alias(bad)
    assert validate_alias("champion") == "champion"


@pytest.mark.parametrize(
    "uri,run_id",
    [
        ("runs:/abc123/model", "abc123"),
        ("runs:///abc123/sub/model", "abc123"),
        ("s3://bucket/model", None),
    ],
)
def test_runs_uri_reports_its_run_id(uri, run_id):
    """Metadata's ``mlflow_run_id`` was missing for models served from ``runs:/<run_id>/...``."""
    from mlserver_sigaware.model.registry import RegistryClient

    ref = parse_model_location(uri, "/settings", "served-name", CFG)
    resolved = RegistryClient(CFG, None).resolve(ref)
    assert resolved.run_id == run_id
    assert resolved.load_uri == uri and resolved.version is None
