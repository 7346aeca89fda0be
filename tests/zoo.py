"""Tiny MLflow models for the tests, one builder per signature shape.

Each ``build_<kind>(dest: Path) -> Path`` saves an MLflow model folder (an ``MLmodel`` file and
its artifacts) at ``dest`` and returns ``dest``.  :func:`register` logs such a folder (or the
output of a builder) into a registry and returns the new version.

Why the ``PythonModel`` classes of this module load in *other* processes (MLServer workers run
with ``tests`` not importable): ``cloudpickle.register_pickle_by_value`` below makes MLflow's
cloudpickle store these classes, and the module-level helpers and constants they use, *by value*
in ``python_model.pkl``.  Only importable third-party modules (numpy, pandas, mlflow,
``mlserver_sigaware``) are referenced by name.

This module deliberately does not use ``from __future__ import annotations``: MLflow 3 inspects
``predict`` type hints when a ``PythonModel`` subclass is *created*, which happens again when a
by-value class is unpickled, and it can only resolve real annotation objects (strings would be
resolved against the pickled globals, which lack ``pd``/``np``, and log "Unsupported type hint").
``pd.DataFrame`` and ``np.ndarray`` are the hints that make MLflow rely on the declared
signature silently; models whose input is neither leave it unannotated and set
``_skip_type_hint_validation`` (MLflow's own switch, used by ``ChatModel``) so that MLflow
neither warns nor tries to derive a schema from the hint.

Saving skips pip requirement inference (``pip_requirements=[]``), so each builder takes well under
a second once MLflow is imported (the first save of a process pays ~2 s for MLflow's one-off
installed-packages scan).
"""

import contextlib
import io
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import cloudpickle
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types.schema import (
    Array,
    ColSpec,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    TensorSpec,
)

from mlserver_sigaware.demo import EN_DE, EN_FR, TextTranslator, quiet_mlflow, use_tracking_uri

cloudpickle.register_pickle_by_value(sys.modules[__name__])

__all__ = [
    "BUILDERS",
    "EN_FR",
    "TEST_EXPERIMENT",
    "build_composite",
    "build_dict_tensors",
    "build_failing",
    "build_mixed",
    "build_no_signature",
    "build_params",
    "build_slow",
    "build_tensor",
    "build_text",
    "build_wine",
    "register",
]

Builder = Callable[[Path], Path]

#: Experiment that :func:`register` logs into.
TEST_EXPERIMENT = "sigaware-tests"


_DICTIONARIES: dict[str, dict[str, str]] = {"de": EN_DE, "fr": EN_FR}


def _save_pyfunc(
    dest: Path, model: PythonModel, signature: ModelSignature | None
) -> Path:
    """Save ``model`` at ``dest`` quickly (no requirement inference, no input example)."""
    dest = Path(dest)
    with quiet_mlflow():
        mlflow.pyfunc.save_model(
            path=str(dest), python_model=model, signature=signature, pip_requirements=[]
        )
    return dest


# --------------------------------------------------------------------------------------- wine


def build_wine(dest: Path, serialization_format: str = "skops") -> Path:
    """The demo ``ElasticNet`` (13 named double columns, unnamed float64 tensor output).

    ``serialization_format`` defaults to MLflow 3's default, ``skops``; ``"cloudpickle"`` loads
    about 2 s faster in a fresh process (no ``skops`` import).
    """
    import mlflow.sklearn
    import sklearn

    from mlserver_sigaware.demo import train_wine_model

    model, features = train_wine_model()
    signature = mlflow.models.infer_signature(features, model.predict(features))
    dest = Path(dest)
    with quiet_mlflow():
        mlflow.sklearn.save_model(
            model,
            str(dest),
            signature=signature,
            serialization_format=serialization_format,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
    return dest


# -------------------------------------------------------------------------------------- mixed


def _byte_length(value: Any) -> int:
    """Length in bytes of a ``binary`` cell (bytes, or a str if a codec left it as text)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(value)


class MixedModel(PythonModel):
    """Echo/transform one column of every scalar ColSpec type (``note`` is optional)."""

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Compute ``id``, ``score2``, ``greeting``, ``flag_not``, ``when_next``, ``blob_len``,
        ``has_note``."""
        df = model_input
        n = len(df)
        if "note" in df.columns:
            has_note = df["note"].notna().to_numpy(dtype=bool)
        else:
            has_note = np.zeros(n, dtype=bool)
        return pd.DataFrame(
            {
                "id": df["id"].astype("int64").to_numpy(),
                "score2": (df["score"].astype("float64") * 2.0).to_numpy(),
                "greeting": ["hello " + str(name) for name in df["name"]],
                "flag_not": ~df["flag"].astype(bool).to_numpy(),
                "when_next": (pd.to_datetime(df["when"]) + pd.Timedelta(days=1)).to_numpy(),
                "blob_len": np.array([_byte_length(v) for v in df["blob"]], dtype=np.int64),
                "has_note": has_note,
            }
        )


MIXED_SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("long", "id"),
            ColSpec("double", "score"),
            ColSpec("string", "name"),
            ColSpec("boolean", "flag"),
            ColSpec("datetime", "when"),
            ColSpec("binary", "blob"),
            ColSpec("string", "note", required=False),
        ]
    ),
    outputs=Schema(
        [
            ColSpec("long", "id"),
            ColSpec("double", "score2"),
            ColSpec("string", "greeting"),
            ColSpec("boolean", "flag_not"),
            ColSpec("datetime", "when_next"),
            ColSpec("long", "blob_len"),
            ColSpec("boolean", "has_note"),
        ]
    ),
)


def build_mixed(dest: Path) -> Path:
    """ColSpecs of every scalar type, one optional; see :class:`MixedModel`."""
    return _save_pyfunc(dest, MixedModel(), MIXED_SIGNATURE)


# ------------------------------------------------------------------------------------- tensor


class TensorModel(PythonModel):
    """Unnamed float32 (-1, 4) tensor in, float32 (-1, 2) ``[row sum, row max]`` out."""

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: np.ndarray,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Row sums and maxima, as float32."""
        x = np.asarray(model_input, dtype=np.float32)
        return np.stack([x.sum(axis=1), x.max(axis=1)], axis=1).astype(np.float32)


TENSOR_SIGNATURE = ModelSignature(
    inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 4))]),
    outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 2))]),
)


def build_tensor(dest: Path) -> Path:
    """Unnamed TensorSpec input float32 (-1, 4), output float32 (-1, 2)."""
    return _save_pyfunc(dest, TensorModel(), TENSOR_SIGNATURE)


# ------------------------------------------------------------------------------- dict_tensors


class DictTensorsModel(PythonModel):
    """Named tensors in (``a`` float64 (-1, 3), ``b`` int64 (-1,)), a dict of arrays out."""

    # The input is a dict of arrays: no hint of MLflow's silent set fits (see module docstring).
    _skip_type_hint_validation = True

    def predict(  # type: ignore[no-untyped-def]
        self,
        context: PythonModelContext | None,
        model_input,  # dict[str, np.ndarray]; unannotated on purpose, see the module docstring
        params: dict[str, Any] | None = None,
    ) -> dict[str, np.ndarray]:
        """``a_sum`` = row sums of ``a`` (float64), ``b_double`` = ``2 * b`` (int64)."""
        a = np.asarray(model_input["a"], dtype=np.float64)
        b = np.asarray(model_input["b"], dtype=np.int64)
        return {"a_sum": a.sum(axis=1), "b_double": b * 2}


DICT_TENSORS_SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            TensorSpec(np.dtype("float64"), (-1, 3), "a"),
            TensorSpec(np.dtype("int64"), (-1,), "b"),
        ]
    ),
    outputs=Schema(
        [
            TensorSpec(np.dtype("float64"), (-1,), "a_sum"),
            TensorSpec(np.dtype("int64"), (-1,), "b_double"),
        ]
    ),
)


def build_dict_tensors(dest: Path) -> Path:
    """Named TensorSpecs in and out; see :class:`DictTensorsModel`."""
    return _save_pyfunc(dest, DictTensorsModel(), DICT_TENSORS_SIGNATURE)


# ------------------------------------------------------------------------------------- params


class ParamsModel(PythonModel):
    """``x`` double in; shows every inference param it received in its output."""

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """``y = x * multiplier * sum(weights)``, ``tag = suffix``, ``flags`` echoed per row.

        Defaults are repeated here for direct calls; through pyfunc, MLflow fills them in from
        the params schema.
        """
        p = dict(params or {})
        multiplier = float(p.get("multiplier", 1.0))
        weights = [float(w) for w in np.ravel(p.get("weights", [1.0]))]
        suffix = str(p.get("suffix", ""))
        flags = bool(p.get("flags", False))
        x = model_input["x"].astype("float64").to_numpy()
        n = len(x)
        return pd.DataFrame(
            {
                "y": x * multiplier * float(sum(weights)),
                "tag": [f"{suffix}"] * n,
                "flags": np.full(n, flags, dtype=bool),
            }
        )


PARAMS_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("double", "x")]),
    outputs=Schema([ColSpec("double", "y"), ColSpec("string", "tag"), ColSpec("boolean", "flags")]),
    params=ParamSchema(
        [
            ParamSpec("multiplier", "double", 1.0),
            ParamSpec("suffix", "string", ""),
            ParamSpec("flags", "boolean", False),
            ParamSpec("weights", "double", [1.0], (-1,)),
        ]
    ),
)


def build_params(dest: Path) -> Path:
    """ColSpec ``x`` with a params schema (double, string, boolean, list of double)."""
    return _save_pyfunc(dest, ParamsModel(), PARAMS_SIGNATURE)


# --------------------------------------------------------------------------------------- text


def build_text(dest: Path, lang: str = "de", input_name: str = "prompt") -> Path:
    """An en->``lang`` (``de`` or ``fr``) word-by-word translator, transformers style.

    Input: one string column ``input_name``; output: one string column ``translation_text``,
    the model returning ``[{"translation_text": ...}, ...]``.  ``input_name=
    "text_to_translate"`` gives a variant incompatible with the demo's ``prompt`` input.
    The class is :class:`mlserver_sigaware.demo.TextTranslator` (pickled by reference).
    """
    try:
        dictionary = _DICTIONARIES[lang]
    except KeyError:
        raise ValueError(f"lang must be one of {sorted(_DICTIONARIES)}, not {lang!r}") from None
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", input_name)]),
        outputs=Schema([ColSpec("string", "translation_text")]),
    )
    return _save_pyfunc(dest, TextTranslator(dictionary, input_name=input_name), signature)


# ------------------------------------------------------------------------------------ failing


class FailingModel(PythonModel):
    """``x`` double in and out; raises ``ValueError`` when any ``x`` is negative."""

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Return ``x`` unchanged, or raise ``ValueError("model exploded on purpose")``."""
        x = model_input["x"].astype("float64")
        if (x < 0).any():
            raise ValueError("model exploded on purpose")
        return pd.DataFrame({"x": x.to_numpy()})


FAILING_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("double", "x")]), outputs=Schema([ColSpec("double", "x")])
)


def build_failing(dest: Path) -> Path:
    """A model whose predict raises on negative input; see :class:`FailingModel`."""
    return _save_pyfunc(dest, FailingModel(), FAILING_SIGNATURE)


# --------------------------------------------------------------------------------------- lossy


class LossyModel(PythonModel):
    """``x`` double in; returns it as ``y``, which its signature promises as a ``long``."""

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Return ``x`` unchanged as ``y`` (5.48 for a ``long``: a broken promise)."""
        return pd.DataFrame({"y": model_input["x"].astype("float64").to_numpy()})


LOSSY_SIGNATURE = ModelSignature(inputs=Schema([ColSpec("double", "x")]), outputs=Schema([ColSpec("long", "y")]))


def build_lossy(dest: Path) -> Path:
    """A model whose output does not always fit its signature's ``long``; see :class:`LossyModel`."""
    return _save_pyfunc(dest, LossyModel(), LOSSY_SIGNATURE)


# ------------------------------------------------------------------------------------- slow


class SlowModel(PythonModel):
    """``x`` double in and out, after sleeping ``seconds``: requests that stay in flight (shutdown tests)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Sleep, then return ``x`` unchanged."""
        import time

        time.sleep(self.seconds)
        return pd.DataFrame({"x": model_input["x"].astype("float64").to_numpy()})


def build_slow(dest: Path, seconds: float = 1.0) -> Path:
    """A model that takes ``seconds`` per request; see :class:`SlowModel`."""
    return _save_pyfunc(dest, SlowModel(seconds), FAILING_SIGNATURE)


# ------------------------------------------------------------------------------- no_signature


class EchoModel(PythonModel):
    """No signature: returns its input unchanged (whatever the runtime decoded)."""

    # Any input type is possible: no hint of MLflow's silent set fits (see module docstring).
    _skip_type_hint_validation = True

    def predict(  # type: ignore[no-untyped-def]
        self,
        context: PythonModelContext | None,
        model_input,  # Any; unannotated on purpose, see the module docstring
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Return ``model_input`` as it is."""
        return model_input


def build_no_signature(dest: Path) -> Path:
    """A pyfunc without a signature that echoes its input; see :class:`EchoModel`."""
    return _save_pyfunc(dest, EchoModel(), None)


# ---------------------------------------------------------------------------------- composite


class CompositeModel(PythonModel):
    """Array, Object and Map ColSpecs in; one scalar summary of each out."""

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """``n_tags = len(tags)``, ``meta_b = meta["b"]``, ``attrs_sum = sum(attrs.values())``."""
        return pd.DataFrame(
            {
                "n_tags": np.array([len(t) for t in model_input["tags"]], dtype=np.int64),
                "meta_b": [str(m["b"]) for m in model_input["meta"]],
                "attrs_sum": np.array(
                    [float(sum(a.values())) for a in model_input["attrs"]], dtype=np.float64
                ),
            }
        )


COMPOSITE_SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec(Array("string"), "tags"),
            ColSpec(Object([Property("a", "long"), Property("b", "string")]), "meta"),
            ColSpec(Map("double"), "attrs"),
        ]
    ),
    outputs=Schema(
        [ColSpec("long", "n_tags"), ColSpec("string", "meta_b"), ColSpec("double", "attrs_sum")]
    ),
)


def build_composite(dest: Path) -> Path:
    """Array(string), Object(a long, b string) and Map(double) columns; see
    :class:`CompositeModel`."""
    return _save_pyfunc(dest, CompositeModel(), COMPOSITE_SIGNATURE)


#: Every builder by kind (``build_text`` with its defaults: en->de, ``prompt`` input).
class BrokenModel(PythonModel):
    """Registers fine, fails to load: what a bad registry push looks like to a server."""

    def load_context(self, context):
        raise RuntimeError("broken on purpose: this version cannot load")

    def predict(self, context, model_input: pd.DataFrame, params=None):  # pragma: no cover
        raise AssertionError("never loaded")


def build_broken(dest: Path, input_name: str = "prompt") -> Path:
    """A model with the text model's signature whose loading raises."""
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", input_name)]),
        outputs=Schema([ColSpec("string", "translation_text")]),
    )
    return _save_pyfunc(dest, BrokenModel(), signature)


BUILDERS: dict[str, Builder] = {
    "wine": build_wine,
    "mixed": build_mixed,
    "tensor": build_tensor,
    "dict_tensors": build_dict_tensors,
    "params": build_params,
    "text": build_text,
    "failing": build_failing,
    "lossy": build_lossy,
    "no_signature": build_no_signature,
    "composite": build_composite,
    "broken": build_broken,
}


# ----------------------------------------------------------------------------------- register


def _sqlite_folder(tracking_uri: str) -> Path | None:
    """The folder of a ``sqlite:///`` database, or ``None`` for other URIs."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme != "sqlite":
        return None
    # sqlite:////abs/x.db -> path "//abs/x.db"; sqlite:///rel.db -> path "/rel.db"
    path = unquote(parsed.path)
    path = path[1:] if path.startswith("/") else path
    return Path(path).expanduser().resolve().parent


def _experiment_id(client: mlflow.MlflowClient, tracking_uri: str) -> str:
    """Get or create :data:`TEST_EXPERIMENT`, its artifacts next to a sqlite database."""
    experiment = client.get_experiment_by_name(TEST_EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    folder = _sqlite_folder(tracking_uri)
    location = None
    if folder is not None:
        artifacts = folder / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        location = artifacts.as_uri()
    # For an http tracking server, the server picks the location (its artifact root or proxy).
    return client.create_experiment(TEST_EXPERIMENT, artifact_location=location)


@contextlib.contextmanager
def _model_folder(model: Path | str | Builder) -> Iterator[Path]:
    """``model`` itself if it is a saved model folder, else a temporary one built by it."""
    if callable(model):
        with tempfile.TemporaryDirectory(prefix="zoo-") as tmp:
            yield model(Path(tmp) / "model")
    else:
        folder = Path(model)
        if not (folder / "MLmodel").is_file():
            raise FileNotFoundError(f"{folder} is not an MLflow model folder (no MLmodel file)")
        yield folder


def _end_run(client: mlflow.MlflowClient, run_id: str, status: str) -> None:
    """Terminate a run without the "View run at" lines MLflow writes to stdout for http URIs."""
    with contextlib.redirect_stdout(io.StringIO()):
        client.set_terminated(run_id, status)


def register(
    tracking_uri: str,
    name: str,
    model_path_or_builder: Path | str | Builder,
    alias: str | None = None,
    *,
    via: Literal["logged_model", "run"] = "logged_model",
) -> str:
    """Log a model folder into the registry at ``tracking_uri``, register it, return its version.

    ``model_path_or_builder`` is a saved model folder, or a builder (``build_mixed``,
    ``functools.partial(build_text, lang="fr")``, ...) called on a temporary folder.
    ``tracking_uri`` is a sqlite URI (artifacts then go to ``<db folder>/artifacts``) or the
    http URI of an ``mlflow server``; it serves as registry URI too.  MLflow's global
    tracking/registry URIs are restored on return.

    ``via`` picks how the files are stored, i.e. the version's ``source``:

    * ``"logged_model"`` (what ``log_model`` does in MLflow 3): a LoggedModel in a run;
      ``source`` is ``models:/m-<id>``;
    * ``"run"`` (what MLflow 2 did): the files are run artifacts under ``model/``, registered
      from ``runs:/<run id>/model``; ``source`` is the artifact location itself
      (``file:///.../artifacts/<run id>/artifacts/model`` or ``mlflow-artifacts:/...``).

    ``alias``, when given, is set to the new version.
    """
    with _model_folder(model_path_or_builder) as folder, quiet_mlflow(), use_tracking_uri(
        tracking_uri
    ):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment_id = _experiment_id(client, tracking_uri)
        run = client.create_run(experiment_id, run_name=f"{name}-{uuid.uuid4().hex[:8]}")
        run_id = run.info.run_id
        try:
            model_id: str | None = None
            if via == "logged_model":
                logged = client.create_logged_model(
                    experiment_id, name="model", source_run_id=run_id
                )
                model_id = logged.model_id
                client.log_model_artifacts(model_id, str(folder))
                client.finalize_logged_model(model_id, "READY")
                source = f"models:/{model_id}"
            elif via == "run":
                client.log_artifacts(run_id, str(folder), "model")
                source = f"{run.info.artifact_uri.rstrip('/')}/model"
            else:
                raise ValueError(f"via must be 'logged_model' or 'run', not {via!r}")
        except BaseException:
            _end_run(client, run_id, "FAILED")
            raise
        _end_run(client, run_id, "FINISHED")
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        version = client.create_model_version(
            name=name, source=source, run_id=run_id, model_id=model_id
        )
        if alias is not None:
            client.set_registered_model_alias(name, alias, version.version)
        return str(version.version)

