"""``model/sklearn_input.py``: a plain scikit-learn estimator gets the decoded block as an array, same answers.

The hand-off is only allowed where it is provably what the estimator's own validation would do with
the frame; these tests hold it to bit-identical answers against ``pyfunc.predict`` on a range of
estimators, and check that everything that might read column names keeps its DataFrame.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import ElasticNet, LinearRegression, LogisticRegression
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeClassifier

from mlserver_sigaware.codec import RequestDecoder
from mlserver_sigaware.model.predictor import Predictor
from mlserver_sigaware.model.location import ModelRef, ResolvedModel
from mlserver_sigaware.model.served import ServedModel
from mlserver_sigaware.settings import SigawareSettings
from mlserver_sigaware.signature import plan_inputs

_WINE = load_wine(as_frame=True)
X: pd.DataFrame = _WINE.data.astype("float64")
Y_REG = _WINE.target.astype("float64") * 1.5 + X["alcohol"]
Y_CLS = _WINE.target


def _save(estimator: Any, dest: Path, fit_on: Any = None, y: Any = None, **kwargs: Any) -> Any:
    estimator.fit(X if fit_on is None else fit_on, Y_REG if y is None else y)
    mlflow.sklearn.save_model(
        estimator,
        str(dest),
        signature=infer_signature(X),
        serialization_format="cloudpickle",
        pip_requirements=[],
        **kwargs,
    )
    return mlflow.pyfunc.load_model(str(dest))


def _served(pyfunc: Any, **settings: Any) -> ServedModel:
    resolved = ResolvedModel(ref=ModelRef("local", "test"), load_uri="test")
    return ServedModel.from_pyfunc(pyfunc, resolved, SigawareSettings(**settings))


def _frame(seed: int, rows: int) -> pd.DataFrame:
    """Rows of the signature's columns as our decoder builds them (one float64 block)."""
    rng = np.random.default_rng(seed)
    values = X.to_numpy()[rng.integers(0, len(X), rows)] * rng.uniform(0.5, 1.5, (rows, X.shape[1]))
    decoder = RequestDecoder(plan_inputs(infer_signature(X).inputs))
    return decoder.uniform_frame(np.ascontiguousarray(values.T))


ESTIMATORS = {
    "elasticnet": lambda: ElasticNet(alpha=0.1),
    "linear": LinearRegression,
    "forest": lambda: RandomForestRegressor(n_estimators=5, random_state=0),
    "hist-gb": lambda: HistGradientBoostingRegressor(max_iter=10),
    "knn": lambda: KNeighborsRegressor(n_neighbors=3),
    "svr": SVR,
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_plain_estimators_take_the_array_and_answer_bit_identically(tmp_path: Path, name: str) -> None:
    pyfunc = _save(ESTIMATORS[name](), tmp_path / name)
    served = _served(pyfunc)
    assert served.predictor.array_columns == tuple(X.columns)
    for seed, rows in ((0, 1), (1, 7), (2, 100)):
        frame = _frame(seed, rows)
        want = pyfunc.predict(frame.copy())
        with warnings.catch_warnings(record=True) as caught:
            got = served.predictor(frame, None, enforce=False)
        np.testing.assert_array_equal(got, want)
        # scikit-learn's "X does not have valid feature names" is not shown for this array.
        assert not [w for w in caught if "feature names" in str(w.message)], [str(w.message) for w in caught]


def test_classifiers_and_their_pyfunc_predict_fn_take_the_array(tmp_path: Path) -> None:
    for estimator, kwargs in (
        (LogisticRegression(max_iter=2000), {}),
        (LogisticRegression(max_iter=2000), {"pyfunc_predict_fn": "predict_proba"}),
        (GradientBoostingClassifier(n_estimators=5), {}),
        (DecisionTreeClassifier(random_state=0), {"pyfunc_predict_fn": "predict_proba"}),
    ):
        dest = tmp_path / f"{type(estimator).__name__}-{len(kwargs)}"
        pyfunc = _save(estimator, dest, y=Y_CLS, **kwargs)
        served = _served(pyfunc)
        assert served.predictor.array_columns is not None
        frame = _frame(3, 20)
        np.testing.assert_array_equal(served.predictor(frame, None, enforce=False), pyfunc.predict(frame.copy()))


def test_the_estimator_really_receives_an_array(tmp_path: Path, monkeypatch) -> None:
    pyfunc = _save(ElasticNet(alpha=0.1), tmp_path / "m")
    seen = []
    original = ElasticNet.predict
    monkeypatch.setattr(ElasticNet, "predict", lambda self, data: seen.append(type(data)) or original(self, data))
    _served(pyfunc).predictor(_frame(0, 2), None, enforce=False)
    _served(pyfunc, sklearn_array_input=False).predictor(_frame(0, 2), None, enforce=False)
    assert seen == [np.ndarray, pd.DataFrame]


def test_estimator_fitted_on_an_array_takes_it_without_the_names_warning(tmp_path: Path) -> None:
    pyfunc = _save(ElasticNet(alpha=0.1), tmp_path / "m", fit_on=X.to_numpy())
    served = _served(pyfunc)
    assert served.predictor.array_columns == tuple(X.columns)
    frame = _frame(4, 5)
    np.testing.assert_array_equal(served.predictor(frame, None, enforce=False), pyfunc.predict(frame.copy()))


class OwnScaler(ElasticNet):
    """A user's subclass: it might read column names, so it keeps its DataFrame."""


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(StandardScaler(), ElasticNet(alpha=0.1)),
        lambda: make_pipeline(
            ColumnTransformer([("keep", "passthrough", list(X.columns))]), ElasticNet(alpha=0.1)
        ),
        lambda: MultiOutputRegressor(ElasticNet(alpha=0.1)),
        lambda: OwnScaler(alpha=0.1),
    ],
    ids=["pipeline", "column-transformer", "meta-estimator", "user-subclass"],
)
def test_composite_and_foreign_estimators_keep_the_dataframe(tmp_path: Path, make) -> None:
    estimator = make()
    y = np.c_[Y_REG, Y_REG] if isinstance(estimator, MultiOutputRegressor) else None
    pyfunc = _save(estimator, tmp_path / "m", y=y)
    served = _served(pyfunc)
    assert served.predictor.array_columns is None
    frame = _frame(5, 3)
    np.testing.assert_array_equal(served.predictor(frame, None, enforce=False), pyfunc.predict(frame.copy()))


def test_estimator_fitted_on_other_columns_or_order_keeps_the_dataframe(tmp_path: Path) -> None:
    reordered = X[list(reversed(X.columns))]
    pyfunc = _save(ElasticNet(alpha=0.1), tmp_path / "m", fit_on=reordered)
    assert _served(pyfunc).predictor.array_columns is None
    fewer = _save(ElasticNet(alpha=0.1), tmp_path / "m2", fit_on=X.iloc[:, :5].to_numpy())
    assert _served(fewer).predictor.array_columns is None


def test_setting_off_and_non_float_signatures_keep_the_dataframe(tmp_path: Path) -> None:
    pyfunc = _save(ElasticNet(alpha=0.1), tmp_path / "m")
    assert _served(pyfunc, sklearn_array_input=False).predictor.array_columns is None
    # A signature with an integer column is not all one float type: no hand-off.
    ints = X.assign(proline=X["proline"].round().astype("int64"))
    est = ElasticNet(alpha=0.1).fit(ints, Y_REG)
    mlflow.sklearn.save_model(
        est,
        str(tmp_path / "ints"),
        signature=infer_signature(ints),
        serialization_format="cloudpickle",
        pip_requirements=[],
    )
    assert Predictor(mlflow.pyfunc.load_model(str(tmp_path / "ints")), None).array_columns is None


def test_frames_other_than_the_signatures_float_columns_are_not_converted(tmp_path: Path) -> None:
    """Only a frame of exactly the signature's columns, as floats, becomes an array."""
    pyfunc = _save(ElasticNet(alpha=0.1), tmp_path / "m")
    predictor = _served(pyfunc).predictor
    frame = _frame(6, 2)
    reordered = frame[list(reversed(frame.columns))]
    with pytest.raises(Exception, match="feature names"):  # sklearn's own error, as without us
        predictor(reordered, None, enforce=False)
    as_object = frame.astype(object)
    np.testing.assert_array_equal(predictor(as_object, None, enforce=False), pyfunc.predict(frame.copy()))
