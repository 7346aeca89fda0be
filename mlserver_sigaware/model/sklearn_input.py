"""When a scikit-learn model can be handed the decoded block as an array instead of a DataFrame.

A scikit-learn estimator's ``predict`` starts by validating a DataFrame: it compares the column names
with ``feature_names_in_`` and inspects every column's dtype (through narwhals and pandas), then turns
the frame into the ndarray it computes on. On a one-row request to a 13-column linear model that
validation is ~1.2 ms of ~1.5 ms; the same ``predict`` on the ndarray costs ~0.3 ms. Our decoder has
already done that validation: it built the frame from the signature, columns in the signature's order,
one float dtype. So when the estimator is a plain scikit-learn estimator fitted on exactly those
columns in that order, handing it ``np.asarray(frame)`` (the very array its own validation would
derive) gives bit-identical answers for less than a quarter of the cost.

"Plain" is deliberately narrow: an estimator class of scikit-learn itself (a subclass of the user's
own may read column names), not a pipeline, column transformer or any meta-estimator (their steps may
select columns by name), and no estimator among its parameters; forests and gradient boosting are the
exceptions, as they validate the input themselves and give their (plain) trees only arrays. Anything
else, or a frame that is not exactly the signature's float columns, keeps the DataFrame.
``sklearn_array_input: false`` turns the hand-off off.
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any, Optional

import numpy as np

logger = logging.getLogger("mlserver.sigaware")

#: Modules whose estimators compose others (by name or by position): never handed an array.
_COMPOSITE_MODULES = ("sklearn.pipeline", "sklearn.compose", "sklearn.multiclass", "sklearn.multioutput")


def _holds_estimator(value: Any) -> bool:
    if hasattr(value, "fit"):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_estimator(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_estimator(v) for v in value.values())
    return False


#: Meta-estimators that validate (and check the names of) the input themselves and then only hand
#: arrays to their sub-estimators: a forest or gradient boosting passes its trees (and its ``init``
#: estimator) the array it validated.
_ARRAY_ONLY_META_MODULES = ("sklearn.ensemble._forest", "sklearn.ensemble._gb")


def _is_plain(estimator: Any) -> bool:
    from sklearn.base import BaseEstimator, MetaEstimatorMixin

    module = type(estimator).__module__
    if not isinstance(estimator, BaseEstimator) or not module.startswith("sklearn.") or module.startswith(
        _COMPOSITE_MODULES
    ):
        return False
    try:
        params = estimator.get_params(deep=False)
    except Exception:
        return False
    inner = [v for v in params.values() if _holds_estimator(v)]
    if isinstance(estimator, MetaEstimatorMixin) or inner:
        if not module.startswith(_ARRAY_ONLY_META_MODULES):
            return False
        fitted = np.asarray(getattr(estimator, "estimators_", []), dtype=object).ravel()  # GB: 2-D
        # Hundreds of trees of one class: one of each class tells (they differ only in fitted state).
        kinds = {type(e): e for e in fitted}.values()
        return all(_is_plain(v) for v in inner) and all(_is_plain(e) for e in kinds)
    return True


def plain_estimator(pyfunc: Any) -> Optional[Any]:
    """The scikit-learn estimator of an ``mlflow.sklearn`` pyfunc, if it is a plain one; else ``None``."""
    if getattr(pyfunc, "loader_module", None) != "mlflow.sklearn":
        return None
    estimator = getattr(getattr(pyfunc, "_model_impl", None), "sklearn_model", None)
    return estimator if estimator is not None and _is_plain(estimator) else None


def array_input_columns(pyfunc: Any, columns: Optional[tuple[Any, ...]]) -> Optional[tuple[Any, ...]]:
    """``columns`` when ``pyfunc``'s estimator may be given the frame of exactly those columns as an array.

    ``columns`` are the signature's float columns in its order (``None`` when the signature is not all
    float columns). The estimator must have been fitted on them, in that order (``feature_names_in_``),
    or, fitted on an array, on as many features. When it was fitted with names, the one warning
    scikit-learn gives for an array ("X does not have valid feature names") is silenced for this
    estimator class: here the array is known to hold those very features.
    """
    if not columns:
        return None
    estimator = plain_estimator(pyfunc)
    if estimator is None:
        return None
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None:
        if [str(n) for n in fitted] != list(columns):
            return None
        warnings.filterwarnings(
            "ignore",
            message=re.escape(
                f"X does not have valid feature names, but {type(estimator).__name__} was fitted with feature names"
            ),
            category=UserWarning,
        )
    elif getattr(estimator, "n_features_in_", None) != len(columns):
        return None
    logger.info(
        "model input handed to %s as an array of the signature's %d columns (sklearn_array_input)",
        type(estimator).__name__,
        len(columns),
    )
    return columns
