"""The runtime's configuration: ``parameters.extra`` of model-settings.json, overridable by env vars.

Every field can be set in ``model-settings.json`` under ``parameters.extra`` or through an environment
variable named ``MLSERVER_SIGAWARE_<FIELD>`` (e.g. ``MLSERVER_SIGAWARE_TRACKING_URI``); values in
model-settings.json win, because they are specific to one model while env vars are process-wide.
"""

from __future__ import annotations

import os
from typing import Any, Literal, Optional

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "MLSERVER_SIGAWARE_"

#: Key of ``parameters.extra`` that marks a per-version instance listed by ``MlflowRegistryRepository``
#: and names the registry version it serves. It is internal (not a setting): ``parameters.version``
#: cannot carry that meaning, because platforms set it for their own purposes (Seldon Core v2's agent
#: writes ``"1"``, Seldon Core v1 ``MLSERVER_MODEL_VERSION=v1``).
VERSION_INSTANCE_KEY = "sigaware_version_instance"


class SigawareSettings(BaseSettings):
    """Per-model settings of :class:`mlserver_sigaware.SignatureAwareRuntime`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", protected_namespaces=())

    tracking_uri: Optional[str] = Field(
        default=None,
        description=(
            "MLflow tracking URI used to resolve `runs:/` and `models:/` URIs. Defaults to the usual "
            "`MLFLOW_TRACKING_URI`. A relative sqlite path (`sqlite:///mlflow.db`) is resolved against "
            "the folder holding model-settings.json, so a model folder can ship next to its registry."
        ),
    )
    model_uri: Optional[str] = Field(
        default=None,
        description=(
            "What to serve, kept apart from `parameters.uri`: a registry reference (`models:/name@alias`, "
            "`models:/name/3`, `models:/name`) or any location `parameters.uri` accepts; it wins over "
            "`parameters.uri`. Seldon Core v2's agent rewrites model-settings.json (the model's name, "
            "`parameters.version`) but keeps `parameters.extra` and adds a Model's `spec.parameters` to it, "
            "so a Seldon Model names its registry version here. As an environment variable it applies "
            "to every model of the server."
        ),
    )
    registry_uri: Optional[str] = Field(
        default=None,
        description="MLflow model registry URI, when it differs from the tracking URI (`MLFLOW_REGISTRY_URI`).",
    )
    registry_name: Optional[str] = Field(
        default=None,
        description=(
            "Registered model name to serve when no `uri` is given. Defaults to the MLServer model "
            "`name`; set it when the deployment renames the model (Seldon Core appends `_<version>`)."
        ),
    )
    unknown_inputs: Literal["error", "ignore"] = Field(
        default="error",
        description=(
            "What to do with a V2 input whose name is not in the input signature: `error` answers 400 "
            "naming it (catches typos in optional column names), `ignore` drops it as MLflow does."
        ),
    )
    default_invocations_model: bool = Field(
        default=False,
        description=(
            "Serve the bare `POST /invocations` with this model when the server hosts several "
            "(with one model it is always that one). Every model has `/v2/models/<name>/invocations`."
        ),
    )
    enforce_schema_in_mlflow: bool = Field(
        default=False,
        description=(
            "Also run MLflow's own schema enforcement inside `pyfunc.predict`. Our decoder already "
            "produces data of the signature's types, so this only costs time; turn it on to get "
            "MLflow's exact conversions for exotic inputs."
        ),
    )
    sklearn_array_input: bool = Field(
        default=True,
        description=(
            "Hand a scikit-learn model its input as the ndarray its own validation would derive from "
            "the DataFrame, skipping that validation (~1.2 ms of a one-row request): only for a plain "
            "scikit-learn estimator (no pipeline or meta-estimator) fitted on exactly the signature's "
            "columns, in its order, all of one float type; answers are bit-identical. Set false to "
            "always pass the DataFrame."
        ),
    )

    max_loaded_versions: int = Field(
        default=2,
        ge=1,
        description=(
            "Most registry versions kept loaded per worker process, the default version included; "
            "the least recently used other version is evicted to make room."
        ),
    )
    compatibility: Literal["strict", "compatible"] = Field(
        default="strict",
        description=(
            "How a requested version's signature must relate to the default version's: `strict` "
            "(equal) or `compatible` (same required inputs and types; new optional inputs and params "
            "allowed; every default output still present). Refused versions answer 409."
        ),
    )
    alias_poll_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "When the default version is an alias (`models:/name@champion`), re-resolve it this often "
            "and hot-swap to its new target (0 disables polling; the repository load API still works)."
        ),
    )
    allowed_versions: Optional[list[str]] = Field(
        default=None,
        description="If set, requests may select only these registry versions (others: 403).",
    )
    allowed_aliases: Optional[list[str]] = Field(
        default=None,
        description="If set, requests may select only these aliases (others: 403).",
    )

    @classmethod
    def from_extra(cls, extra: Optional[dict[str, Any]]) -> "SigawareSettings":
        """Build from model-settings' ``parameters.extra``, where unknown keys are a user's typo."""
        values = {k: v for k, v in (extra or {}).items() if k != VERSION_INSTANCE_KEY}
        return cls(**values)


def resolve_relative_sqlite(uri: Optional[str], base_dir: Optional[str]) -> Optional[str]:
    """Anchor ``sqlite:///relative.db`` at ``base_dir``, leaving every other URI untouched.

    SQLAlchemy reads three slashes as a path relative to the *process's* working directory, which for
    ``mlserver start <folder>`` is wherever the operator happened to be; anchoring it at the model's
    folder makes the setting mean the same thing everywhere.
    """
    if not uri or base_dir is None or not uri.startswith("sqlite:///"):
        return uri
    path = uri[len("sqlite:///") :]
    if path.startswith("/") or path == ":memory:" or not path:
        return uri
    return "sqlite:///" + os.path.normpath(os.path.join(os.path.abspath(base_dir), path))
