"""What Seldon Core v2's agent does to a Model's artifact before MLServer loads it, in Python.

From SeldonIO/seldon-core ``scheduler/pkg/agent`` (v2.6.0, the last Apache-2.0 release; unchanged in
what matters here through v2.10): ``client.go`` ``LoadModel`` names the model
``<name>_<generation>`` (``util.GetVersionedModelName``) and pins the artifact version to 1
(``util.GetPinnedModelVersion``); ``repository/model_repository.go`` ``DownloadModelVersion`` copies
the folder rclone downloaded from ``storageUri`` to ``<repository>/<name>_<generation>/1/``; then
``repository/mlserver/mlserver.go`` reads model-settings.json into a Go struct that knows only some
fields (``ModelSettings``/``ModelParameters``), sets ``name`` and ``parameters.version`` ("1") and
writes it back (``updateNameAndVersion``: every other field is dropped), and ``SetExtraParameters``
adds each ``spec.parameters`` entry of the Model to ``parameters.extra`` as a string. The agent then
calls MLServer's ``POST /v2/repository/models/<name>_<generation>/load``, and its reverse proxy
rewrites request paths ``/v2/models/<name>[/versions/<v>]/...`` to ``/v2/models/<name>_<generation>/...``
(``rproxy.go`` ``rewritePath``).

The agent keeps ``parameters.uri`` as written; ``replace_uri=True`` also points it at the download
folder, the harsher rewrite some descriptions of Seldon give: what to serve must survive both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["agent_model_name", "agent_path", "rewrite"]

#: The fields of the agent's ``ModelSettings`` / ``ModelParameters`` Go structs (mlserver.go).
_SETTINGS_FIELDS = ("name", "inputs", "outputs", "platform", "versions", "parallel_workers", "implementation",
                    "parameters")
_PARAMETER_FIELDS = ("uri", "version", "format", "content_type", "extra", "environment_tarball")
PINNED_VERSION = "1"


def agent_model_name(model: str, generation: int) -> str:
    return f"{model}_{generation}"


def agent_path(path: str, model: str, generation: int) -> str:
    """The request path after the agent's reverse proxy (the versions segment is removed)."""
    import re

    return re.sub(r"(/v2/models/)([\w\-]+)(/versions/\w+)?(.*)$", rf"\g<1>{agent_model_name(model, generation)}\g<4>",
                  path)


def rewrite(artifact: Path, repository: Path, model: str, generation: int, parameters: list[dict[str, str]],
            replace_uri: bool = False) -> Path:
    """Copy ``artifact`` into the agent's repository and rewrite its model-settings.json; returns the folder."""
    target = repository / agent_model_name(model, generation) / PINNED_VERSION
    shutil.copytree(artifact, target, dirs_exist_ok=True)
    path = target / "model-settings.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    settings = {k: v for k, v in loaded.items() if k in _SETTINGS_FIELDS}
    params = {k: v for k, v in (settings.get("parameters") or {}).items() if k in _PARAMETER_FIELDS}
    settings["name"] = agent_model_name(model, generation)
    params["version"] = PINNED_VERSION
    extra = dict(params.get("extra") or {})
    for parameter in parameters:
        extra[parameter["name"]] = str(parameter["value"])
    params["extra"] = extra
    if replace_uri:
        params["uri"] = str(target)
    settings["parameters"] = params
    path.write_text(json.dumps(settings))
    return target
