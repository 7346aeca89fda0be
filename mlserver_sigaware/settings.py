"""The runtime's configuration: two classes, every field documented (the docs' reference is generated here).

* :class:`SigawareSettings`, per model: ``parameters.extra`` of model-settings.json, or an environment
  variable named ``MLSERVER_SIGAWARE_<FIELD>`` (e.g. ``MLSERVER_SIGAWARE_TRACKING_URI``); values in
  model-settings.json win, because they are specific to one model while env vars are process-wide.
* :class:`ServerSettings`, server-wide: environment variables only (``MLSERVER_SIGAWARE_MAX_BODY_BYTES``...).
  Request limits apply before any model is known (a body is refused before it is read, whichever route
  it is for), and log settings to every line of the process, so they cannot belong to one model's
  settings: they are read once per process from the server's environment.
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
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description=(
            "Where a transformers pipeline, sentence-transformers model or PyTorch module runs: "
            "`cpu`, `cuda` (the first GPU), `cuda:<n>`, or `auto` (the first GPU when torch sees "
            "one, else the CPU: MLflow's own default). A GPU that is not there fails the load with "
            "a message saying what torch sees. Other flavors ignore it. The device in use is "
            "reported in the model's metadata (`parameters.device`)."
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
            "When the default version is an alias (`models:/name@champion`) or a stage "
            "(`models:/name/Production`), re-resolve it this often and hot-swap to its new target "
            "(0 disables polling; the repository load API still works)."
        ),
    )
    allowed_versions: Optional[list[str]] = Field(
        default=None,
        description=(
            "If set, requests may select only these registry versions (others: 403). A deployment "
            "pinned to one version (`models:/name/3`) serves only that version unless this (or "
            "`allowed_aliases`) is set; name-only and alias deployments let requests select any version."
        ),
    )
    allowed_aliases: Optional[list[str]] = Field(
        default=None,
        description=(
            "If set, requests may select only these aliases (others: 403). On a pinned deployment it "
            "also opens selection by these aliases."
        ),
    )

    registry_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Connect and read timeout of each HTTP call to an MLflow tracking server / registry "
            "(`http(s)://` URIs) and to its proxied artifact store (`mlflow-artifacts:/`). Replaces "
            "MLflow's `MLFLOW_HTTP_REQUEST_TIMEOUT` (120 s) for this model's calls only."
        ),
    )
    registry_retries: int = Field(
        default=2,
        ge=0,
        description=(
            "Retries of a registry HTTP call that failed to connect, timed out or got a 429/5xx answer, "
            "before the request that needed it answers 503. Replaces MLflow's "
            "`MLFLOW_HTTP_REQUEST_MAX_RETRIES` (7, about 4 minutes of back-off) for this model's calls only."
        ),
    )
    registry_backoff_seconds: float = Field(
        default=0.5,
        ge=0,
        description=(
            "Pause before the first retry of a failed registry call, doubled for each further retry "
            "(defaults: 0.5 s then 1 s, so an unreachable registry answers 503 in about 1.5 s)."
        ),
    )
    startup_registry_wait_seconds: float = Field(
        default=300.0,
        ge=0,
        description=(
            "At start-up, how long the default version keeps waiting for an unreachable registry "
            "(logging what it waits for) before the server gives up and exits with status 1. "
            "Liveness answers 200 and readiness 400 meanwhile. 0: give up at the first failure."
        ),
    )
    artifact_cache_dir: Optional[str] = Field(
        default=None,
        description=(
            "Folder the artifacts of registry and `runs:/` models are downloaded to: one sub-folder per "
            "server process and one per model version inside it, reused while that version is loaded, "
            "removed when it is evicted or replaced and no request uses it any more, and when the "
            "process exits. Default: `<system temp dir>/mlserver-sigaware-artifacts`. On Kubernetes, "
            "mount an `emptyDir` here (its `sizeLimit` must hold `max_loaded_versions` copies per worker)."
        ),
    )
    invocations_stack_trace: bool = Field(
        default=False,
        description=(
            "Include MLflow's `stack_trace` field (a Python traceback) in `/invocations` error bodies "
            "where `mlflow models serve` includes one (a model exception, a CSV or Parquet parse "
            "error). Off by default: a traceback in a response body shows a server's internals to "
            "any client. Turn it on only for clients that need MLflow's exact body."
        ),
    )

    @classmethod
    def from_extra(cls, extra: Optional[dict[str, Any]]) -> "SigawareSettings":
        """Build from model-settings' ``parameters.extra``, where unknown keys are a user's typo."""
        values = {k: v for k, v in (extra or {}).items() if k != VERSION_INSTANCE_KEY}
        server_wide = sorted(set(values) & set(ServerSettings.model_fields))
        if server_wide:
            raise ValueError(
                f"{', '.join(server_wide)}: server-wide setting{'s' if len(server_wide) > 1 else ''}, "
                f"not per model; set {', '.join(ENV_PREFIX + k.upper() for k in server_wide)} in the "
                f"server's environment instead of parameters.extra"
            )
        return cls(**values)


MiB = 1024 * 1024


class ServerSettings(BaseSettings):
    """Server-wide settings of mlserver-sigaware: environment variables ``MLSERVER_SIGAWARE_<FIELD>`` only.

    Read once per process (:func:`server_settings`). They take effect when the package is imported:
    at startup when settings.json names ``mlserver_sigaware.MlflowRegistryRepository``, else when the
    first model of this runtime loads (a request that arrives before is MLServer's alone).
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", protected_namespaces=())

    max_body_bytes: int = Field(
        default=32 * MiB,
        ge=1,
        description=(
            "Largest request body accepted on every REST route, in bytes, as sent (compressed or not). "
            "A larger `Content-Length` is answered 413 before the body is read; a chunked body is "
            "answered 413 as soon as it grows past the limit. A JSON request's peak memory is up to "
            "~16x its size (docs/limits-and-errors.md), so the default bounds one request near 0.5 GiB. "
            "gRPC messages are bounded by MLServer's own `grpc_max_message_length` (settings.json; "
            "gRPC's default is 4 MiB)."
        ),
    )
    max_decompressed_bytes: int = Field(
        default=32 * MiB,
        ge=1,
        description=(
            "Largest body after `Content-Encoding: gzip` / `deflate` decoding, in bytes: decoding stops "
            "and the request is answered 413 as soon as it inflates past the limit."
        ),
    )
    max_json_depth: int = Field(
        default=32,
        ge=2,
        description=(
            "Deepest nesting of arrays and objects accepted in a JSON body (a V2 body of a rank-2 tensor "
            "is 5 deep). Deeper bodies are answered 400 before they are parsed."
        ),
    )
    max_request_id_length: int = Field(
        default=256,
        ge=1,
        description=(
            "Longest V2 request `id` accepted (REST and gRPC). MLServer echoes the id into the "
            "`Ce-Id` / `Ce-Requestid` response headers: a longer id, or one with characters a header "
            "cannot carry (outside printable ASCII), is answered 400 naming `id`."
        ),
    )
    fast_v2: bool = Field(
        default=True,
        description=(
            "This runtime's models read V2 requests without a Python object per value: on REST, "
            "Triton's binary tensor extension (what `tritonclient.http` sends by default: "
            "`Inference-Header-Content-Length`, raw little-endian tensors after the JSON; binary outputs "
            "when asked) and large JSON bodies parsed straight into arrays; on gRPC, `raw_input_contents` "
            "(what `tritonclient.grpc` sends) as arrays, and large numeric outputs written to "
            "`raw_output_contents` from arrays (docs/performance.md). `false` leaves every request to "
            "MLServer's own parsing, which refuses binary REST bodies."
        ),
    )
    rejected_log_level: Literal["info", "warning", "off"] = Field(
        default="info",
        description=(
            "Level of the one line logged per rejected request (a 4xx: status, route, model, version, "
            "reason); `off` logs none. A model failure (500) is logged at ERROR with its traceback, once."
        ),
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description=(
            "`json` writes the server's log lines (MLServer's, its workers', uvicorn's, ours) as one JSON "
            "object each, with `time`, `level`, `logger`, `message`, the `model` when known, a "
            "`traceback` when there is one, and the `request_id` (the `x-request-id` header, else one "
            "generated per request) for lines about a REST request."
        ),
    )


_SERVER_SETTINGS: Optional[ServerSettings] = None


def server_settings() -> ServerSettings:
    """The process's :class:`ServerSettings`, read from the environment on first use."""
    global _SERVER_SETTINGS
    if _SERVER_SETTINGS is None:
        _SERVER_SETTINGS = ServerSettings()
    return _SERVER_SETTINGS


def reset_server_settings() -> None:
    """Forget the cached :class:`ServerSettings` (tests that change the environment)."""
    global _SERVER_SETTINGS
    _SERVER_SETTINGS = None


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
