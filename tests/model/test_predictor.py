"""``model/predictor.py``: a PythonModel is called the way MLflow's wrapper calls it, without its per-call cost.

MLflow's ``_PythonModelPyfuncWrapper.predict`` runs ``inspect.signature`` on the user's ``predict`` on
every request to decide whether to pass ``context`` and ``params``. ``Predictor`` decides once at load;
these tests hold it to MLflow's behaviour for each form of ``predict``.
"""

# No ``from __future__ import annotations``: MLflow reads these PythonModels' type hints at class creation.
import logging
from pathlib import Path
from typing import Any, Optional

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from mlserver_sigaware.errors import ModelFailure
from mlserver_sigaware.model.predictor import Predictor

FRAME = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.5]})


class WithContextAndParams(PythonModel):
    def predict(self, context, model_input: pd.DataFrame, params: Optional[dict[str, Any]] = None):
        scale = (params or {}).get("scale", 1.0)
        has_context = context is not None and hasattr(context, "artifacts")
        return model_input.sum(axis=1).to_numpy() * scale + (100 if has_context else 0)


class ContextOnly(PythonModel):
    def predict(self, context, model_input: pd.DataFrame):
        return model_input["a"].to_numpy() + (100 if context is not None else 0)


class NoContext(PythonModel):
    def predict(self, model_input: pd.DataFrame, params: Optional[dict[str, Any]] = None):
        return model_input["b"].to_numpy() * (params or {}).get("scale", 1.0)


class Raises(PythonModel):
    def predict(self, context, model_input: pd.DataFrame):
        raise ValueError("boom")


def _save(model: PythonModel, dest: Path, with_params: bool) -> Any:
    params = {"scale": 1.0} if with_params else None
    signature = infer_signature(FRAME, np.zeros(2), params=params)
    mlflow.pyfunc.save_model(path=str(dest), python_model=model, signature=signature, pip_requirements=[])
    return mlflow.pyfunc.load_model(str(dest))


@pytest.mark.parametrize(
    "model, with_params",
    [(WithContextAndParams(), True), (ContextOnly(), False), (NoContext(), True)],
    ids=["context+params", "context", "params"],
)
def test_direct_call_answers_as_mlflow(tmp_path: Path, model: PythonModel, with_params: bool) -> None:
    pyfunc = _save(model, tmp_path / "m", with_params)
    predictor = Predictor(pyfunc)
    # The per-call inspection is gone: the predictor calls our closure, not MLflow's wrapper method.
    assert predictor._fn is not pyfunc._predict_fn
    params = {"scale": 2.0} if with_params else None
    got = predictor(FRAME, params, enforce=False)
    want = pyfunc.predict(FRAME, params=params)
    np.testing.assert_array_equal(got, want)


def test_params_the_model_does_not_take_are_dropped_with_mlflows_warning(tmp_path: Path, caplog) -> None:
    pyfunc = _save(ContextOnly(), tmp_path / "m", with_params=False)
    with caplog.at_level(logging.WARNING, logger="mlflow.pyfunc.model"):
        got = Predictor(pyfunc)(FRAME, {"scale": 3.0}, enforce=False)
    np.testing.assert_array_equal(got, FRAME["a"].to_numpy() + 100)
    assert "will be ignored" in caplog.text


def test_model_errors_stay_model_failures(tmp_path: Path) -> None:
    pyfunc = _save(Raises(), tmp_path / "m", with_params=False)
    with pytest.raises(ModelFailure, match="ValueError: boom"):
        Predictor(pyfunc)(FRAME, None, enforce=False)


def test_other_flavours_keep_mlflows_predict_function(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    dest = tmp_path / "sk"
    mlflow.sklearn.save_model(
        LinearRegression().fit(FRAME, [1.0, 2.0]), str(dest), signature=infer_signature(FRAME, np.zeros(2))
    )
    pyfunc = mlflow.pyfunc.load_model(str(dest))
    predictor = Predictor(pyfunc)
    assert predictor._fn == pyfunc._predict_fn
    np.testing.assert_array_equal(predictor(FRAME, None, enforce=False), pyfunc.predict(FRAME))


class UpperCase(PythonModel):
    def predict(self, model_input: list[str], params: Optional[dict[str, Any]] = None) -> list[str]:
        assert isinstance(model_input, list), type(model_input)
        return [text.upper() for text in model_input]


def _save_upper(dest: Path) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    signature = ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema([ColSpec("string")]))
    mlflow.pyfunc.save_model(path=str(dest), python_model=UpperCase(), signature=signature, pip_requirements=[])
    return mlflow.pyfunc.load_model(str(dest))


def test_input_conversion_for_type_hints_is_kept(tmp_path: Path) -> None:
    """A ``list[str]`` hint: MLflow's conversion of the DataFrame still runs in our direct call.

    (``Predictor`` sends models whose signature comes from type hints through ``pyfunc.predict``; the
    direct call is built here on its own so that it meets a conversion that is not the identity.)
    """
    from mlserver_sigaware.model.predictor import _converts_nothing, _python_model_call

    pyfunc = _save_upper(tmp_path / "upper")
    wrapper = pyfunc._model_impl
    # MLflow's type-hint validation around ``predict`` would convert too; take it away so that only
    # ``_convert_input`` can (as for a model pickled before MLflow wrapped ``predict``).
    model = wrapper.python_model
    model.predict = type(model).predict.__wrapped__.__get__(model)
    assert not _converts_nothing(wrapper._convert_input)
    direct = _python_model_call(wrapper)
    frame = pd.DataFrame({"text": ["a", "bc"]})
    assert direct(frame) == wrapper.predict(frame) == ["A", "BC"]
    assert list(Predictor(pyfunc)(frame, None, enforce=False)) == ["A", "BC"]


def test_conversion_that_changes_nothing_is_left_out(tmp_path: Path, monkeypatch) -> None:
    """For a DataFrame model MLflow's ``_convert_input`` is the identity: checked once, not per request."""
    from mlflow.pyfunc.model import _PythonModelPyfuncWrapper

    calls = []
    original = _PythonModelPyfuncWrapper._convert_input

    def counting(self, model_input):
        calls.append(type(model_input))
        return original(self, model_input)

    monkeypatch.setattr(_PythonModelPyfuncWrapper, "_convert_input", counting)
    pyfunc = _save(NoContext(), tmp_path / "m", with_params=True)
    predictor = Predictor(pyfunc)
    at_load = len(calls)
    assert at_load == 1  # the probe
    for _ in range(3):
        np.testing.assert_array_equal(predictor(FRAME, None, enforce=False), FRAME["b"].to_numpy())
    assert len(calls) == at_load
    assert _converts_nothing_for(pyfunc)


def _converts_nothing_for(pyfunc: Any) -> bool:
    from mlserver_sigaware.model.predictor import _converts_nothing

    return _converts_nothing(pyfunc._model_impl._convert_input)
