"""The ``device`` setting (mlserver_sigaware/model/device.py) on real flavor objects, on this CPU machine.

Where a GPU is present the same tests check that ``cuda``/``auto`` land on it; here they check that
``cpu`` is applied through each flavor's own mechanism (it overrides a process-wide
``MLFLOW_DEFAULT_PREDICTION_DEVICE`` that would otherwise send the model to a missing GPU), that
``cuda`` fails the load with a clear message, and that ``auto`` picks the CPU.
"""

from __future__ import annotations

import os

import pydantic
import pytest
import torch

from mlserver_sigaware.errors import ModelLoadError
from mlserver_sigaware.model.device import model_device
from mlserver_sigaware.model.location import ModelRef, ResolvedModel
from mlserver_sigaware.model.registry import RegistryClient
from mlserver_sigaware.model.served import ServedModel
from mlserver_sigaware.settings import SigawareSettings

pytestmark = pytest.mark.flavors

#: One model per torch-based flavor.
FLAVORS = {"translation": "mlflow.transformers", "minilm": "mlflow.sentence_transformers", "pytorch": "mlflow.pytorch"}
HAS_GPU = torch.cuda.is_available()


def _load(zoo, kind: str, device: str):
    cfg = SigawareSettings(device=device)
    path = str(zoo.path(kind))
    resolved = ResolvedModel(ref=ModelRef("local", path), load_uri=path)
    return ServedModel.load(RegistryClient(cfg, None), resolved, cfg)


def _weights_device(pyfunc) -> torch.device:
    raw = pyfunc.get_raw_model()
    return next(getattr(raw, "model", raw).parameters()).device


@pytest.mark.parametrize("kind", list(FLAVORS))
def test_cpu_is_applied_by_each_flavors_mechanism(flavor_zoo, kind: str, monkeypatch) -> None:
    # A process-wide MLflow default that points at a GPU: without our setting, MLflow's transformers
    # and pytorch loaders would put the model there (and fail on this machine).
    monkeypatch.setenv("MLFLOW_DEFAULT_PREDICTION_DEVICE", "0" if kind == "translation" else "cuda")
    # transformers quietly falls back to the CPU when the GPU index it is given does not exist, so
    # the device MLflow hands the pipeline is what shows the setting was applied (-1: the CPU).
    from transformers.pipelines.base import Pipeline

    flavor_zoo.path(kind)  # built (and cached) before the spy: building it makes pipelines too
    built = []
    real_init = Pipeline.__init__

    def spy(self, *args, **kwargs):
        built.append(kwargs.get("device"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "__init__", spy)
    served = _load(flavor_zoo, kind, "cpu")
    assert built == ([-1] if kind == "translation" else [])
    pyfunc = served.predictor.pyfunc
    assert pyfunc.loader_module == FLAVORS[kind]
    assert _weights_device(pyfunc).type == "cpu"
    if kind == "translation":
        assert pyfunc.get_raw_model().device.type == "cpu"  # where the pipeline puts its inputs
    assert served.device == model_device(pyfunc) == "cpu"
    assert served.metadata(kind).parameters.model_extra["device"] == "cpu"
    # The variable is the operator's again after the load.
    assert os.environ["MLFLOW_DEFAULT_PREDICTION_DEVICE"] == ("0" if kind == "translation" else "cuda")


@pytest.mark.parametrize("kind", list(FLAVORS))
def test_cuda_without_a_gpu_is_a_clear_load_error(flavor_zoo, kind: str) -> None:
    if HAS_GPU:
        assert _load(flavor_zoo, kind, "cuda").device == "cuda:0"
        return
    with pytest.raises(ModelLoadError, match=r"device 'cuda' was requested, but torch .* sees no CUDA device"):
        _load(flavor_zoo, kind, "cuda")


def test_a_missing_gpu_index_is_a_clear_load_error(flavor_zoo) -> None:
    count = torch.cuda.device_count() if HAS_GPU else 0
    with pytest.raises(ModelLoadError, match=rf"device 'cuda:{count}' was requested"):
        _load(flavor_zoo, "pytorch", f"cuda:{count}")


@pytest.mark.parametrize("kind", list(FLAVORS))
def test_auto_picks_the_gpu_when_there_is_one_else_the_cpu(flavor_zoo, kind: str) -> None:
    assert _load(flavor_zoo, kind, "auto").device == ("cuda:0" if HAS_GPU else "cpu")


def test_other_flavors_ignore_the_setting_and_report_no_device(tmp_path) -> None:
    from tests import zoo

    path = str(zoo.build_wine(tmp_path / "wine", serialization_format="cloudpickle"))
    cfg = SigawareSettings(device="cuda")
    served = ServedModel.load(RegistryClient(cfg, None), ResolvedModel(ref=ModelRef("local", path), load_uri=path), cfg)
    assert served.device is None
    assert "device" not in served.metadata("wine").parameters.model_extra


@pytest.mark.parametrize("bad", ["gpu", "cuda:", "CUDA", "cuda:x", ""])
def test_the_setting_accepts_only_known_devices(bad: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="device"):
        SigawareSettings(device=bad)
