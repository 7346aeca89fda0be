"""Resolve a :class:`~.location.ModelRef` to a registry version, download it and load the pyfunc.

Resolution is separate from loading so that the version we *report* is the version we *loaded*:
``models:/name@champion`` is turned into ``models:/name/<n>`` once, and ``<n>`` is what metadata and every
response say. We never change MLflow's process-wide tracking URI: two models on one server may live in
two registries.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from contextlib import contextmanager
from typing import Optional

from ..errors import ModelLoadError, RegistryNotFound, SigawareError
from ..settings import SigawareSettings, resolve_relative_sqlite
from .device import load_on_device
from .location import ModelRef, ResolvedModel

__all__ = ["RegistryClient"]

logger = logging.getLogger("mlserver.sigaware")

_GLOBAL_URI_LOCK = threading.Lock()
#: One model load at a time per process: concurrent first imports of a flavor's modules from several
#: loader threads can deadlock in importlib (seen: ``_DeadlockError`` on ``sklearn.svm._base``).
_LOAD_LOCK = threading.Lock()


class RegistryClient:
    """MLflow's client bound to one tracking/registry URI pair (never the process-wide one)."""

    def __init__(self, cfg: SigawareSettings, settings_dir: Optional[str]):
        self.tracking_uri = resolve_relative_sqlite(
            cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), settings_dir
        )
        self.registry_uri = (
            resolve_relative_sqlite(cfg.registry_uri, settings_dir)
            or os.environ.get("MLFLOW_REGISTRY_URI")
            or self.tracking_uri
        )
        self._client = None
        #: The ``device`` setting, applied to torch-based flavors at load (:mod:`.device`).
        self.device = cfg.device

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        return self._client

    def resolve(self, ref: ModelRef) -> ResolvedModel:
        if ref.kind != "registry":
            return ResolvedModel(ref=ref, load_uri=ref.uri, run_id=_run_id_of(ref.uri))
        assert ref.name is not None
        if ref.version:
            mv = self._get_version(ref.name, ref.version)
        elif ref.alias:
            mv = self._get_alias(ref.name, ref.alias)
        else:
            mv = self._latest(ref.name)
        return ResolvedModel(
            ref=ref,
            load_uri=f"models:/{ref.name}/{mv.version}",
            version=str(mv.version),
            run_id=getattr(mv, "run_id", None),
        )

    def _get_version(self, name: str, version: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(name, version)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise RegistryNotFound(f"model '{name}' has no version {version}") from None
            raise ModelLoadError(f"registry error for model '{name}' version {version}: {exc.message}") from None

    def _get_alias(self, name: str, alias: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(name, alias)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise RegistryNotFound(f"model '{name}' has no alias '{alias}'") from None
            raise ModelLoadError(f"registry error for model '{name}@{alias}': {exc.message}") from None

    def _latest(self, name: str):
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name = '{_quote(name)}'")
        except MlflowException as exc:
            raise ModelLoadError(f"registry error listing versions of '{name}': {exc.message}") from None
        if not versions:
            raise RegistryNotFound(
                f"registered model '{name}' not found (or has no versions) in {self.registry_uri}"
            )
        return max(versions, key=lambda mv: int(mv.version))

    def list_versions(self, name: str) -> list[str]:
        versions = self.client.search_model_versions(f"name = '{_quote(name)}'")
        return sorted((str(mv.version) for mv in versions), key=int)

    def load(self, resolved: ResolvedModel):
        """Download (for remote or registry URIs) and load the pyfunc model."""
        with _LOAD_LOCK:
            return self._load(resolved)

    def _load(self, resolved: ResolvedModel):
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException

        try:
            if resolved.ref.kind == "local":
                return load_on_device(resolved.load_uri, self.device)
            import mlflow.artifacts

            with _mlflow_uris(self.tracking_uri, self.registry_uri):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=resolved.load_uri,
                    dst_path=tempfile.mkdtemp(prefix="sigaware-model-"),
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.registry_uri,
                )
            return load_on_device(local, self.device)
        except SigawareError:
            raise
        except MlflowException as exc:
            if _is_not_found(exc):
                raise RegistryNotFound(f"{resolved.ref.describe}: {exc.message}") from None
            raise ModelLoadError(f"cannot load {resolved.ref.describe}: {exc.message}") from None
        except Exception as exc:  # a broken artifact is an operator's problem; say which
            raise ModelLoadError(
                f"cannot load {resolved.ref.describe}: {type(exc).__name__}: {exc}"
            ) from None


@contextmanager
def _mlflow_uris(tracking_uri: Optional[str], registry_uri: Optional[str]):
    """Point MLflow's process-wide URIs at this model's registry while downloading, then restore them.

    MLflow 3 registers model versions with a ``models:/m-<id>`` source (a logged model) that it resolves
    with the *global* tracking URI, whatever URI the download was given; without this, a registry model
    fails to load ("Registered Model ... not found") and MLflow creates an empty ./mlflow.db.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    with _GLOBAL_URI_LOCK:
        saved_env = {k: os.environ.get(k) for k in env_keys}
        saved = (getattr(tracking_utils, "_tracking_uri", None), getattr(registry_utils, "_registry_uri", None))
        try:
            if tracking_uri:
                mlflow.set_tracking_uri(tracking_uri)
            if registry_uri:
                mlflow.set_registry_uri(registry_uri)
            yield
        finally:
            tracking_utils._tracking_uri, registry_utils._registry_uri = saved
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _run_id_of(uri: str) -> Optional[str]:
    """The run id of a ``runs:/<run_id>/<path>`` URI (``None`` for any other URI).

    Registry versions report their run id in metadata (``mlflow_run_id``); a model served straight
    from ``runs:/`` has it in its URI and reports it too.
    """
    if not uri.startswith("runs:/"):
        return None
    run_id = uri[len("runs:/") :].lstrip("/").split("/", 1)[0]
    return run_id or None


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _is_not_found(exc) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()
