"""The demo's deep-learning models (mlserver_sigaware/demo.py): the real MiniLM embedder, and the real
``mlflow.transformers`` translator that ``populate`` registers where a translation pipeline is
available locally (here: the tiny T5 pipeline of tests/flavor_zoo.py, saved to a folder and named by
``SIGAWARE_DEMO_TRANSLATION_MODEL``). The demo as served is tested in tests/integration/test_demo.py
and by the docs' snippets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlserver.types import InferenceRequest

from mlserver_sigaware import demo
from mlserver_sigaware.model.location import parse_model_location
from mlserver_sigaware.model.registry import RegistryClient
from mlserver_sigaware.model.served import ServedModel
from mlserver_sigaware.settings import SigawareSettings
from tests.flavor_zoo import make_pipeline

pytestmark = pytest.mark.flavors


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pipeline_dir = tmp_path_factory.mktemp("local-pipeline")
    make_pipeline("translation").save_pretrained(str(pipeline_dir))
    directory = tmp_path_factory.mktemp("demo-registry")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(demo.TRANSLATION_MODEL_ENV, str(pipeline_dir))
        assert demo.local_translation_model() == str(pipeline_dir.resolve())
        demo.populate(directory)
        assert demo.is_populated(directory)
    return directory


def _served(registry: Path, name: str) -> ServedModel:
    cfg = SigawareSettings(tracking_uri=demo.tracking_uri_for(registry))
    client = RegistryClient(cfg, None)
    ref = parse_model_location(f"models:/{name}@champion", None, name, cfg)
    return ServedModel.load(client, client.resolve(ref), cfg)


def _infer(served: ServedModel, texts: list[str]):
    request = InferenceRequest.model_validate(
        {"inputs": [{"name": "input-0", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    )
    data, params = served.decoder.decode(request)
    return served.encoder.encode(served.predictor(data, params, enforce=False))


def test_the_embedder_gives_meaningful_similarities(registry: Path) -> None:
    served = _served(registry, demo.EMBEDDER_MODEL_NAME)
    assert served.predictor.pyfunc.loader_module == "mlflow.sentence_transformers"
    texts = ["A man is playing a guitar.", "Someone is playing an instrument.", "The stock market fell today."]
    (out,) = _infer(served, texts)
    vectors = np.asarray(out.data.root, dtype=np.float64).reshape(out.shape)
    assert vectors.shape == (3, 384)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    assert similarity[0, 1] > 0.4 > similarity[0, 2]


def test_a_local_translation_pipeline_becomes_the_hf_translator(registry: Path) -> None:
    settings = json.loads((registry / demo.HF_TRANSLATOR_MODEL_NAME / "model-settings.json").read_text())
    assert settings["parameters"]["uri"] == "models:/hf-translator@champion"
    served = _served(registry, demo.HF_TRANSLATOR_MODEL_NAME)
    assert served.predictor.pyfunc.loader_module == "mlflow.transformers"
    (out,) = _infer(served, ["the house is wonderful"])
    expected = make_pipeline("translation")("the house is wonderful")[0]["translation_text"]
    assert [v.decode() if isinstance(v, bytes) else v for v in out.data.root] == [expected]


def test_without_a_local_pipeline_there_is_no_hf_translator(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(demo.TRANSLATION_MODEL_ENV, str(tmp_path / "nothing-here"))
    assert demo.local_translation_model() is None
