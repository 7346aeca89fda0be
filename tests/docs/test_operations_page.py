"""docs/operations.md beyond the generic block checks (tests/docs/test_doc_blocks.py): its Kubernetes
fragments probe real routes and set real settings, and its settings tables give the code's defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlserver_sigaware.settings import SigawareSettings

pytestmark = pytest.mark.docs

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC.read_text(), flags=re.S)


def blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCKS if lang == kind]


@pytest.mark.parametrize("body", blocks("yaml"))
def test_kubernetes_fragments_parse_and_use_real_routes_and_settings(body, monkeypatch):
    doc = yaml.safe_load(body)
    containers = doc["containers"] if "containers" in doc else []
    for container in containers:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                assert container[probe]["httpGet"]["path"] in ("/v2/health/live", "/v2/health/ready")
        for env in container.get("env", []):
            monkeypatch.setenv(env["name"], env["value"])
        SigawareSettings()  # env vars it sets are real settings (extra="forbid" does not cover env)
        for env in container.get("env", []):
            field = env["name"].removeprefix("MLSERVER_SIGAWARE_").lower()
            assert field in SigawareSettings.model_fields, env["name"]


def test_every_setting_named_in_a_table_exists_with_the_documented_default():
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", DOC.read_text(), flags=re.M)
    assert len(rows) >= 5
    for name, default in rows:
        field = SigawareSettings.model_fields[name]
        if field.default is not None:
            assert default.strip() == f"{field.default:g}", (name, default)
