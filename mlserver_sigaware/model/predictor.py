"""Calling the pyfunc: schema enforcement (400) kept apart from the model's own failures (500).

``PyFuncModel.predict`` enforces the signature and runs the model in one call, so an exception from it
cannot tell a client error from a model bug. We split the two steps. When our decoder already built the
exact container and dtypes the signature describes, MLflow's enforcement is skipped: it would copy and
re-check every column again (about 2.4 ms of a 4 ms one-row predict on the wine model).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from ..codec.frames import frame_values
from ..errors import InvalidInput, ModelFailure, SigawareError
from .sklearn_input import array_input_columns

logger = logging.getLogger("mlserver.sigaware")

_MAX_MESSAGE = 2000


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "... (truncated)"


def _python_model_call(wrapper: Any) -> Optional[Callable[..., Any]]:
    """``_PythonModelPyfuncWrapper.predict`` with its per-call ``inspect.signature`` done once.

    MLflow's wrapper inspects the user's ``predict`` on every request to decide whether to pass
    ``context`` and ``params`` (~40 µs, more than a small model's own work). The answer cannot change
    after load, so we decide once and call the user's method the same way. ``None`` when the wrapper
    is not the one we know (another MLflow version): the caller then uses MLflow's own path.
    """
    try:
        from mlflow.models.signature import _is_context_in_predict_function_signature
        from mlflow.pyfunc.model import (
            _log_warning_if_params_not_in_predict_signature,
            _PythonModelPyfuncWrapper,
        )
        from mlflow.pyfunc.model import _logger as mlflow_logger
    except ImportError:
        return None
    if type(wrapper) is not _PythonModelPyfuncWrapper or not hasattr(wrapper, "_convert_input"):
        return None
    python_model = wrapper.python_model
    parameters = inspect.signature(python_model.predict).parameters
    takes_params = "params" in parameters
    takes_context = _is_context_in_predict_function_signature(parameters=parameters)
    user_predict = python_model.predict
    convert = None if _converts_nothing(wrapper._convert_input) else wrapper._convert_input

    def predict(model_input: Any, params: Optional[dict[str, Any]] = None) -> Any:
        if convert is not None:
            model_input = convert(model_input)
        args = (wrapper.context, model_input) if takes_context else (model_input,)
        if takes_params:
            return user_predict(*args, params=params)
        _log_warning_if_params_not_in_predict_signature(mlflow_logger, params)
        return user_predict(*args)

    return predict


def _converts_nothing(convert: Callable[[Any], Any]) -> bool:
    """Whether MLflow's ``_convert_input`` hands every input back untouched, for this model.

    ``_convert_input`` turns a DataFrame into what the user's type hint asks for (``list[str]``,
    ``list[dict[str, str]]``, a dataclass); which branch it takes depends only on that hint, fixed at
    load, and any input but a DataFrame always comes back as is. So one empty DataFrame tells, once,
    whether the call can be left out: the same object back means no branch applies (an applicable
    branch returns another object or raises). The call itself costs ~15 µs a request, with its
    ``typing`` comparisons, which is most of what a small model costs.
    """
    probe = pd.DataFrame()
    try:
        return convert(probe) is probe
    except Exception:  # a branch applies (it refuses an empty frame): keep calling it
        return False


class Predictor:
    """One loaded pyfunc, callable as ``predictor(data, params, enforce=...)``."""

    def __init__(self, pyfunc_model: Any, float_columns: Optional[tuple[str, ...]] = None):
        """``float_columns``: the signature's columns when they are all of one float type (else
        ``None``); a plain scikit-learn estimator fitted on them is then handed its input as an array
        (see :mod:`.sklearn_input`)."""
        self.pyfunc = pyfunc_model
        meta = pyfunc_model.metadata
        self.input_schema = meta.get_input_schema()
        self.loader_module = getattr(pyfunc_model, "loader_module", None)
        self._fn, self._takes_params = self._resolve_predict_fn(pyfunc_model)
        self._example_format = self._example_for_conversion(pyfunc_model)
        #: The columns of the frames handed to the model as an array, or ``None``.
        self.array_columns = array_input_columns(pyfunc_model, float_columns)

    @staticmethod
    def _example_for_conversion(model: Any) -> Any:
        """The input example a ``TypeFromExample`` model wants its DataFrame converted back to.

        ``PyFuncModel._predict`` does that conversion after enforcing the schema; calling
        ``_predict_fn`` directly skips it, so we do it in :meth:`__call__` (else such a model gets a
        DataFrame instead of, e.g., the list of strings its example was).
        """
        try:
            if model.metadata._is_type_hint_from_example() and not model.metadata._is_signature_from_type_hint():
                return getattr(model, "input_example", None)
        except Exception:  # MLflow without type hints from examples
            pass
        return None

    @staticmethod
    def _resolve_predict_fn(model: Any) -> tuple[Callable[..., Any], bool]:
        fn = getattr(model, "_predict_fn", None)
        type_hinted = False
        try:
            type_hinted = bool(model.metadata._is_signature_from_type_hint())
        except Exception:  # older/newer MLflow without the helper
            type_hinted = False
        if fn is None or type_hinted:
            # Type-hinted PythonModels validate inside their own wrapper: go through pyfunc.predict.
            return model.predict, True
        direct = _python_model_call(getattr(fn, "__self__", None))
        if direct is not None:
            return direct, True
        params_arg = inspect.signature(fn).parameters.get("params")
        return fn, bool(params_arg and params_arg.kind != inspect.Parameter.VAR_KEYWORD)

    def enforce(self, data: Any) -> Any:
        """MLflow's own schema enforcement, its failures reported as a 400."""
        if self.input_schema is None:
            return data
        from mlflow.models.utils import _enforce_schema

        try:
            return _enforce_schema(data, self.input_schema, self.loader_module)
        except SigawareError:
            raise
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise InvalidInput(_short(f"input does not match the model signature: {message}")) from None

    def __call__(self, data: Any, params: Optional[dict[str, Any]], enforce: bool) -> Any:
        if enforce:
            data = self.enforce(data)
        if self._example_format is not None:
            if isinstance(data, pd.DataFrame):
                from mlflow.types.type_hints import _convert_dataframe_to_example_format

                data = _convert_dataframe_to_example_format(data, self._example_format)
        if (
            self.array_columns is not None
            and type(data) is pd.DataFrame
            and tuple(data.columns) == self.array_columns
        ):
            block = frame_values(data)  # what the estimator's own validation would derive from the frame
            if block.dtype.kind == "f":
                data = block
        try:
            if self._takes_params:
                return self._fn(data, params=params)
            return self._fn(data)
        except SigawareError:
            raise
        except Exception as exc:
            logger.exception("model raised during predict")
            raise ModelFailure(_short(f"model raised {type(exc).__name__}: {exc}")) from None
