"""Resolve a :class:`~.location.ModelRef` to a registry version, download it and load the pyfunc.

Resolution is separate from loading so that the version we *report* is the version we *loaded*:
``models:/name@champion`` is turned into ``models:/name/<n>`` once, and ``<n>`` is what metadata and every
response say. We never change MLflow's process-wide tracking URI: two models on one server may live in
two registries.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Optional, TypeVar

from ..errors import ModelLoadError, RegistryNotFound, RegistryUnavailable, SigawareError
from ..settings import SigawareSettings, resolve_relative_sqlite
from . import registry_http
from .artifacts import ArtifactCache, Lease, cache_for
from .device import load_on_device
from .location import ModelRef, ResolvedModel
from .registry_health import health_of

__all__ = ["RegistryClient"]

logger = logging.getLogger("mlserver.sigaware")

T = TypeVar("T")

_GLOBAL_URI_LOCK = threading.Lock()
#: One model load at a time per process: concurrent first imports of a flavor's modules from several
#: loader threads can deadlock in importlib (seen: ``_DeadlockError`` on ``sklearn.svm._base``).
_LOAD_LOCK = threading.Lock()


class RegistryClient:
    """MLflow's client bound to one tracking/registry URI pair (never the process-wide one).

    Every call it makes runs under this model's deadlines (:mod:`.registry_http`): an unreachable
    registry is a :class:`~mlserver_sigaware.errors.RegistryUnavailable` (503) within
    ``registry_timeout_seconds`` x (``registry_retries`` + 1) plus back-off, reported once per outage
    (:mod:`.registry_health`).
    """

    def __init__(self, cfg: SigawareSettings, settings_dir: Optional[str]):
        self.cfg = cfg
        self.tracking_uri = resolve_relative_sqlite(
            cfg.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), settings_dir
        )
        self.registry_uri = (
            resolve_relative_sqlite(cfg.registry_uri, settings_dir)
            or os.environ.get("MLFLOW_REGISTRY_URI")
            or self.tracking_uri
        )
        self.health = health_of(self.registry_uri or "(default registry)")
        self.artifacts = cache_for(cfg.artifact_cache_dir)
        self._client = None
        #: The ``device`` setting, applied to torch-based flavors at load (:mod:`.device`).
        self.device = cfg.device

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        return self._client

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` under this model's deadlines; an unreachable registry raises 503."""
        with registry_http.policy(
            self.cfg.registry_timeout_seconds, self.cfg.registry_retries, self.cfg.registry_backoff_seconds
        ) as policy:
            try:
                result = fn(*args, **kwargs)
            except SigawareError:
                raise
            except Exception:
                if policy.failure is None:
                    self.health.succeeded()  # it answered, with an error of its own
                    raise
                self.health.failed(policy.failure)
                raise RegistryUnavailable(
                    f"the model registry is unreachable ({policy.failure}; gave up after "
                    f"{policy.attempts} attempts); versions already loaded keep serving, try again later"
                ) from None
        self.health.succeeded()
        return result

    def resolve(self, ref: ModelRef) -> ResolvedModel:
        if ref.kind != "registry":
            return ResolvedModel(ref=ref, load_uri=ref.uri, run_id=_run_id_of(ref.uri))
        assert ref.name is not None
        if ref.version:
            mv = self._get_version(ref.name, ref.version)
        elif ref.alias:
            mv = self._get_alias(ref.name, ref.alias)
        elif ref.stage:
            mv = self._get_stage(ref.name, ref.stage)
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
            return self.call(self.client.get_model_version, name, version)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise RegistryNotFound(f"model '{name}' has no version {version}") from None
            raise ModelLoadError(f"registry error for model '{name}' version {version}: {exc.message}") from None

    def _get_alias(self, name: str, alias: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.call(self.client.get_model_version_by_alias, name, alias)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise RegistryNotFound(f"model '{name}' has no alias '{alias}'") from None
            raise ModelLoadError(f"registry error for model '{name}@{alias}': {exc.message}") from None

    def _get_stage(self, name: str, stage: str):
        """The newest version in a stage (MLflow's deprecated stages, still what many guides use)."""
        from mlflow.exceptions import MlflowException

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "stages are deprecated": we say so in docs
                versions = self.call(self.client.get_latest_versions, name, [stage])
        except MlflowException as exc:
            if _is_not_found(exc):
                raise RegistryNotFound(f"registered model '{name}' not found in {self._where}") from None
            raise ModelLoadError(f"registry error for model '{name}' stage {stage}: {exc.message}") from None
        if not versions:
            raise RegistryNotFound(f"model '{name}' has no version in stage '{stage}'")
        return max(versions, key=lambda mv: int(mv.version))

    def _latest(self, name: str):
        from mlflow.exceptions import MlflowException

        try:
            versions = self.call(self.client.search_model_versions, f"name = '{_quote(name)}'")
        except MlflowException as exc:
            raise ModelLoadError(f"registry error listing versions of '{name}': {exc.message}") from None
        if not versions:
            raise RegistryNotFound(
                f"registered model '{name}' not found (or has no versions) in {self._where}"
            )
        return max(versions, key=lambda mv: int(mv.version))

    @property
    def _where(self) -> str:
        return registry_http.display_uri(self.registry_uri or "the default registry")

    def list_versions(self, name: str) -> list[str]:
        versions = self.call(self.client.search_model_versions, f"name = '{_quote(name)}'")
        return sorted((str(mv.version) for mv in versions), key=int)

    def load(self, resolved: ResolvedModel) -> tuple[Any, Optional[Lease]]:
        """Download (for remote or registry URIs) and load the pyfunc model.

        Returns the model and the lease on its artifact folder (None for a local folder): whoever
        keeps the model releases the lease when it is done with it.
        """
        with _LOAD_LOCK:
            return self._load(resolved)

    def _load(self, resolved: ResolvedModel) -> tuple[Any, Optional[Lease]]:
        from mlflow.exceptions import MlflowException

        lease: Optional[Lease] = None
        try:
            if resolved.ref.kind == "local":
                return load_on_device(resolved.load_uri, self.device), None
            key = ArtifactCache.key_for(
                resolved.ref.name, resolved.version, f"{self.registry_uri}|{self.tracking_uri}|{resolved.load_uri}"
            )
            lease = self.artifacts.checkout(key, lambda folder: self._download(resolved, folder))
            return load_on_device(lease.local_path, self.device), lease
        except SigawareError:
            if lease is not None:
                lease.release()
            raise
        except MlflowException as exc:
            if lease is not None:
                lease.release()
            if _is_not_found(exc):
                raise RegistryNotFound(f"{resolved.ref.describe}: {exc.message}") from None
            raise ModelLoadError(f"cannot load {resolved.ref.describe}: {exc.message}") from None
        except Exception as exc:  # a broken artifact is an operator's problem; say which
            if lease is not None:
                lease.release()
            raise ModelLoadError(
                f"cannot load {resolved.ref.describe}: {type(exc).__name__}: {exc}"
            ) from None

    def _download(self, resolved: ResolvedModel, folder: str) -> str:
        import mlflow.artifacts

        def download() -> str:
            with _mlflow_uris(self.tracking_uri, self.registry_uri):
                return mlflow.artifacts.download_artifacts(
                    artifact_uri=resolved.load_uri,
                    dst_path=folder,
                    tracking_uri=self.tracking_uri,
                    registry_uri=self.registry_uri,
                )

        return self.call(download)


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
