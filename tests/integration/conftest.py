"""Session fixtures of the integration tests: models built once, two sqlite registries, few servers.

Servers (each a real ``mlserver start`` process, started on first use and kept for the session):

* ``main_server`` (``parallel_workers: 0``): every zoo model from a local folder, the same kinds
  behind adaptive batching, and registry-served models (``models:/name/<v>``, ``@alias``,
  latest, by name only, ``runs:/``), with registry URIs given relative in model-settings.json or
  through ``MLFLOW_TRACKING_URI``;
* ``workers_server`` (``parallel_workers: 1``, MLServer's default, with ``debug: true``): wine,
  mixed and failing, each inference crossing MLServer's worker process boundary.

Two registries, so that a test can tell which one a model was found in:

* "relative": ``<main root>/registry/reg/mlflow.db``, reached by model-settings.json files with
  ``tracking_uri: sqlite:///reg/mlflow.db`` (or ``../reg``), i.e. relative to their own folder.
  The server's working directory is the main root, where ``reg/mlflow.db`` does not exist, and
  ``MLFLOW_TRACKING_URI`` points to the other registry: a model there loads only if the relative
  path is resolved against its model-settings.json folder.
* "env": outside every server root, reached only through ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

_TESTS = Path(__file__).resolve().parents[1]
for _p in (str(_TESTS), str(Path(__file__).resolve().parent)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import zoo  # noqa: E402
from cases import ERROR_CASES, Case, ErrorCase, build_valid_cases, error_cases, wine_frame  # noqa: E402
from harness import MLServerProcess, write_model_settings  # noqa: E402
from tests.integration.mlflow_registry import RegistryServer  # noqa: E402

#: The zoo kinds served from local folders, each under its own kind name.
LOCAL_KINDS = (
    "wine",
    "mixed",
    "tensor",
    "dict_tensors",
    "params",
    "text",
    "failing",
    "no_signature",
    "composite",
)

#: Adaptive batching (model-settings.json) for the ``*-batched`` models.
BATCHING = {"max_batch_size": 4, "max_batch_time": 0.5}
BATCHED_MODELS = {"wine-batched": "wine_cp", "mixed-batched": "mixed", "tensor-batched": "tensor"}

#: Registered in the "relative" registry: translator v1 (German, alias champion), v2 (French).
TRANSLATOR = "translator"
CHAMPION = "champion"
#: Registered in the "env" registry through a run (MLflow 2 style), also served as runs:/.
RUN_MODEL = "reg-mixed"


@dataclass(frozen=True)
class Registries:
    relative_home: Path  # folder holding reg/mlflow.db (a model-settings.json folder)
    relative_uri: str  # absolute sqlite URI of the "relative" registry
    env_uri: str  # absolute sqlite URI of the "env" registry
    translator_de: str  # version numbers, as strings
    translator_fr: str
    run_model_version: str
    run_id: str


@dataclass(frozen=True)
class RegistryModel:
    """One registry-served MLServer model and what it must report."""

    name: str
    version: str | None
    lang: str | None  # translator language, None for the mixed model


#: MLServer model name -> (settings folder under registry home, uri, extra) and expectations.
def registry_models(reg: Registries) -> dict[str, tuple[str, str | None, dict, RegistryModel]]:
    rel_here = {"tracking_uri": "sqlite:///reg/mlflow.db"}
    rel_up = {"tracking_uri": "sqlite:///../reg/mlflow.db"}
    return {
        # No uri and no MLmodel in the folder: the registered model of the same name, latest.
        TRANSLATOR: (".", None, rel_here, RegistryModel(TRANSLATOR, reg.translator_fr, "fr")),
        "translator-v1": (
            "v1",
            f"models:/{TRANSLATOR}/{reg.translator_de}",
            rel_up,
            RegistryModel("translator-v1", reg.translator_de, "de"),
        ),
        "translator-champion": (
            "champion",
            f"models:/{TRANSLATOR}@{CHAMPION}",
            rel_up,
            RegistryModel("translator-champion", reg.translator_de, "de"),
        ),
        "translator-latest": (
            "latest",
            f"models:/{TRANSLATOR}",
            rel_up,
            RegistryModel("translator-latest", reg.translator_fr, "fr"),
        ),
        # Name only, registry from MLFLOW_TRACKING_URI.
        RUN_MODEL: ("by-name-env", None, {}, RegistryModel(RUN_MODEL, reg.run_model_version, None)),
        # runs:/ through MLFLOW_TRACKING_URI: no registry version to report.
        "mixed-run": ("run", f"runs:/{reg.run_id}/model", {}, RegistryModel("mixed-run", None, None)),
    }


# ------------------------------------------------------------------------------------- models


@pytest.fixture(scope="session")
def zoo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every zoo kind saved once; ``wine`` as MLflow saves it by default (skops), ``wine_cp``
    with cloudpickle (loads faster: used where the format does not matter)."""
    base = tmp_path_factory.mktemp("zoo")
    paths = {kind: zoo.BUILDERS[kind](base / kind) for kind in LOCAL_KINDS}
    paths["wine_cp"] = zoo.build_wine(base / "wine_cp", serialization_format="cloudpickle")
    return paths


@pytest.fixture(scope="session")
def wine_rows():
    """Three wines of different classes."""
    frame = wine_frame()
    return frame.iloc[[0, 70, 140]]


@pytest.fixture(scope="session")
def wine_predictions(zoo_models: dict[str, Path], wine_rows) -> list[float]:
    """What the saved wine model itself predicts for :func:`wine_rows` (in this process)."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(zoo_models["wine_cp"]))
    return [float(v) for v in model.predict(wine_rows)]


@pytest.fixture(scope="session")
def valid_cases(wine_rows, wine_predictions) -> dict[str, Case]:
    """A valid request of each zoo model and its expected outputs."""
    return build_valid_cases(wine_rows, wine_predictions)


@pytest.fixture(scope="session")
def recovery_cases(valid_cases) -> dict[str, Case]:
    """For each model, a valid request to send after an error."""
    return {
        "wine": valid_cases["wine"],
        "mixed": valid_cases["mixed"],
        "tensor": valid_cases["tensor"],
        "params": valid_cases["params-defaults"],
        "failing": valid_cases["failing-ok"],
    }


@pytest.fixture(scope="session")
def transport_error_cases(wine_rows) -> dict[str, ErrorCase]:
    cases = error_cases(wine_rows)
    assert tuple(cases) == ERROR_CASES
    return cases


@pytest.fixture(scope="session")
def main_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("main-server")


@pytest.fixture(scope="session")
def registries(main_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Registries:
    import mlflow

    home = main_root / "registry"
    (home / "reg").mkdir(parents=True)
    relative_uri = f"sqlite:///{home / 'reg' / 'mlflow.db'}"
    de = zoo.register(relative_uri, TRANSLATOR, zoo.build_text, alias=CHAMPION)
    fr = zoo.register(relative_uri, TRANSLATOR, functools.partial(zoo.build_text, lang="fr"))
    assert (de, fr) == ("1", "2")

    env_home = tmp_path_factory.mktemp("env-registry")
    env_uri = f"sqlite:///{env_home / 'mlflow.db'}"
    run_version = zoo.register(env_uri, RUN_MODEL, zoo.build_mixed, via="run")
    client = mlflow.MlflowClient(tracking_uri=env_uri, registry_uri=env_uri)
    run_id = client.get_model_version(RUN_MODEL, run_version).run_id
    return Registries(home, relative_uri, env_uri, de, fr, run_version, run_id)


@pytest.fixture(scope="session")
def registry_served(registries: Registries) -> dict[str, RegistryModel]:
    """The registry-served models of ``main_server`` and what each must report."""
    return {name: spec[3] for name, spec in registry_models(registries).items()}


# ------------------------------------------------------------------------------------ servers


@pytest.fixture(scope="session")
def main_server(
    main_root: Path, zoo_models: dict[str, Path], registries: Registries
) -> Iterator[MLServerProcess]:
    names = []
    for kind in LOCAL_KINDS:
        write_model_settings(main_root / "local" / kind, kind, uri=str(zoo_models[kind]))
        names.append(kind)
    for name, kind in BATCHED_MODELS.items():
        write_model_settings(main_root / "batched" / name, name, uri=str(zoo_models[kind]), **BATCHING)
        names.append(name)
    for name, (folder, uri, extra, _) in registry_models(registries).items():
        write_model_settings(registries.relative_home / folder, name, uri=uri, extra=extra)
        names.append(name)
    server = MLServerProcess(
        main_root,
        parallel_workers=0,
        env={"MLFLOW_TRACKING_URI": registries.env_uri},
        models=names,
        startup_timeout=180,
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def workers_server(
    tmp_path_factory: pytest.TempPathFactory, zoo_models: dict[str, Path]
) -> Iterator[MLServerProcess]:
    root = tmp_path_factory.mktemp("workers-server")
    served = {"wine": "wine_cp", "mixed": "mixed", "failing": "failing"}
    for name, kind in served.items():
        write_model_settings(root / name, name, uri=str(zoo_models[kind]))
    server = MLServerProcess(
        root, parallel_workers=1, debug=True, models=list(served), startup_timeout=180
    )
    with server:
        yield server


@pytest.fixture(scope="session")
def mlflow_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A real ``mlflow server`` (sqlite backend, proxied artifacts), started once: about 20 s on two
    busy cores. Tests register models under names of their own; one that stops it (an outage) restarts
    it on the same port, with the same data, before it ends."""
    with RegistryServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server
