"""Which device a deep-learning model runs on: the ``device`` setting, applied the way each flavor allows.

MLflow's three torch-based pyfunc loaders each take a device differently, and each defaults to the
first GPU when torch sees one:

* ``mlflow.pytorch``: ``model_config={"device": "cuda:1"}`` (``pyfunc.load_model``'s argument); the
  wrapper moves every input tensor to that device and the output back.
* ``mlflow.transformers``: no argument; ``_load_pyfunc`` reads ``MLFLOW_DEFAULT_PREDICTION_DEVICE`` as
  the pipeline's device *index* (``-1`` CPU, ``1`` for ``cuda:1``). We set it for the duration of the
  load (loads are serialised by the registry client's lock) and put the caller's value back.
* ``mlflow.sentence_transformers``: no argument at all; the ``SentenceTransformer`` is moved with
  ``.to(device)`` right after loading (its ``encode`` puts inputs on the model's device).

Other flavors (scikit-learn, a PythonModel that builds its own pipeline) are loaded as they are:
the setting is logged as not applicable. ``torch`` is imported only for the three flavors above, so a
server without the ``[transformers]`` extra never needs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Any, Iterator, Optional

from ..errors import ModelLoadError

__all__ = ["DEVICE_LOADERS", "DEVICE_PATTERN", "load_on_device", "model_device", "resolve_device"]

logger = logging.getLogger("mlserver.sigaware")

#: What the ``device`` setting accepts.
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
_CUDA_INDEX = re.compile(r"^cuda(?::(\d+))?$")

#: The pyfunc loader modules of the flavors the setting applies to.
DEVICE_LOADERS = ("mlflow.pytorch", "mlflow.transformers", "mlflow.sentence_transformers")


def resolve_device(setting: str) -> str:
    """``cpu`` or ``cuda:N`` for ``setting``; :class:`ModelLoadError` when that GPU is not there.

    ``auto`` is what MLflow's loaders do by default: the first GPU when torch sees one, else the CPU.
    """
    if setting == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    if setting == "auto":
        return "cuda:0" if count else "cpu"
    match = _CUDA_INDEX.match(setting)
    if match is None:  # the setting's own pattern keeps other values out
        raise ModelLoadError(f"device '{setting}' is not one of auto, cpu, cuda, cuda:<n>")
    index = int(match.group(1) or 0)
    if index >= count:
        seen = f"{count} CUDA device{'s' if count != 1 else ''}" if available else "no CUDA device"
        raise ModelLoadError(
            f"device '{setting}' was requested, but torch {torch.__version__} sees {seen} "
            f"(torch.cuda.is_available() is {available}); set device to 'cpu' or 'auto'"
        )
    return f"cuda:{index}"


def _loader_module(local_path: str) -> Optional[str]:
    from mlflow.models import Model

    try:
        conf = Model.load(local_path).flavors.get("python_function", {})
    except Exception:  # not a readable MLmodel: pyfunc.load_model reports it properly
        return None
    return conf.get("loader_module")


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def load_on_device(local_path: str, setting: str) -> Any:
    """``mlflow.pyfunc.load_model(local_path)`` with the model placed on the ``device`` setting."""
    import mlflow.pyfunc

    loader = _loader_module(local_path)
    if loader not in DEVICE_LOADERS:
        if setting != "auto":
            logger.info("device=%s does not apply to %s models; loaded as is", setting, loader or "these")
        return mlflow.pyfunc.load_model(local_path)
    device = resolve_device(setting)
    if loader == "mlflow.pytorch":
        return mlflow.pyfunc.load_model(local_path, model_config={"device": device})
    if loader == "mlflow.transformers":
        index = "-1" if device == "cpu" else device.split(":")[1]
        with _env("MLFLOW_DEFAULT_PREDICTION_DEVICE", index):
            return mlflow.pyfunc.load_model(local_path)
    pyfunc = mlflow.pyfunc.load_model(local_path)
    pyfunc.get_raw_model().to(device)
    return pyfunc


def model_device(pyfunc: Any) -> Optional[str]:
    """The device the loaded model's weights are on (``cpu``, ``cuda:0``), or ``None`` for flavors
    without one. Reported in the model's V2 metadata (``parameters.device``)."""
    if getattr(pyfunc, "loader_module", None) not in DEVICE_LOADERS:
        return None
    try:
        raw = pyfunc.get_raw_model()
        module = getattr(raw, "model", raw)  # a transformers pipeline holds its model
        parameter = next(module.parameters(), None)
    except Exception:  # an unusual wrapper: no device to report
        return None
    if parameter is None:
        return None
    device = parameter.device
    return device.type if device.index is None else f"{device.type}:{device.index}"
