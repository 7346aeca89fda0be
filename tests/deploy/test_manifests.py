"""deploy/: every manifest against its CRD schema (strict: an unknown field is an error), and the rules
the Seldon and KServe controllers apply across resources. Each rule is also shown to catch the mistake
it is about (a mutated copy of the manifests), so a rule that cannot fail would fail here.

CRD schemas: ``../shared/k8s-crds/`` next to the checkout, else ``tests/data/k8s-crds/``; a manifest
whose schema is in neither is skipped, with that reason (a clone without ``../shared/``).
"""

from __future__ import annotations

import copy
import textwrap
from typing import Any, Callable

import pytest

from tests.deploy import k8s

pytestmark = pytest.mark.manifests

DOCS = k8s.manifests()
CRD_DOCS = [(path, doc) for path, doc in DOCS if (doc["apiVersion"], doc["kind"]) in k8s.CRD_FILES]


def test_deploy_has_what_the_docs_walk_through():
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for _, doc in DOCS)
    assert kinds == [
        ("ConfigMap", "sigaware-model-settings"),
        ("InferenceService", "wine"),
        ("InferenceService", "wine-local"),
        ("Model", "wine"),
        ("Model", "wine-v1"),
        ("SeldonDeployment", "wine"),
        ("Server", "mlserver-sigaware"),
        ("ServingRuntime", "mlserver-sigaware"),
    ]


def _validator_or_skip(doc: dict) -> None:
    try:
        k8s.validator(doc["apiVersion"], doc["kind"])
    except FileNotFoundError as exc:
        pytest.skip(f"no CRD schema for {doc['kind']}: {exc}")


@pytest.mark.parametrize("path,doc", CRD_DOCS, ids=[f"{p}:{d['metadata']['name']}" for p, d in CRD_DOCS])
def test_manifest_matches_its_crd_schema(path, doc):
    _validator_or_skip(doc)
    assert k8s.schema_errors(doc) == []


def _set(doc: dict, dotted: str, value: Any) -> dict:
    """A copy of ``doc`` with the field at ``a>b>0>c`` (keys and list indices) set to ``value``."""
    doc = copy.deepcopy(doc)
    node = doc
    keys = dotted.split(">")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return doc


def _doc(kind: str, name: str) -> dict:
    return next(d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name)


SCHEMA_MISTAKES = [
    # An unknown field at the top of spec, and deep inside the pod specs: refused, not pruned.
    ("Server", "mlserver-sigaware", "spec>capabilites", ["x"], "Additional properties"),
    ("Server", "mlserver-sigaware", "spec>podSpec>containers>1>imagePullPolicyy", "Always", "Additional properties"),
    ("Model", "wine", "spec>storageURI", "s3://x", "Additional properties"),
    ("Model", "wine", "spec>parameters", [{"name": "model_uri"}], "'value' is a required property"),
    ("SeldonDeployment", "wine", "spec>predictors>0>graph>endpoint>http_port", 9000, "Additional properties"),
    ("SeldonDeployment", "wine", "spec>predictors>0>replicas", "2", "is not of type 'integer'"),
    ("ServingRuntime", "mlserver-sigaware", "spec>supportedModelFormats>0>autoselect", True, "Additional properties"),
    ("ServingRuntime", "mlserver-sigaware", "spec>containers>0>env>0>valu", "x", "Additional properties"),
    ("InferenceService", "wine", "spec>predictor>model>storageURI", "pvc://x", "Additional properties"),
    ("InferenceService", "wine", "spec>predictor>minReplicas", "two", "is not of type 'integer'"),
    ("InferenceService", "wine", "metadata>name", "Wine_1", "DNS-1123"),
]


@pytest.mark.parametrize("kind,name,path,value,message", SCHEMA_MISTAKES,
                         ids=[f"{k}:{p}" for k, _, p, _, _ in SCHEMA_MISTAKES])
def test_schema_validation_refuses_the_mistake(kind, name, path, value, message):
    doc = _doc(kind, name)
    _validator_or_skip(doc)
    errors = k8s.schema_errors(_set(doc, path, value))
    assert any(message in e for e in errors), errors


RULES: list[tuple[str, Callable[[list], list[str]]]] = [
    ("seldon-v2", k8s.seldon_v2_problems),
    ("seldon-v1", k8s.seldon_v1_problems),
    ("kserve", k8s.kserve_problems),
    ("credentials", k8s.credential_problems),
]


@pytest.mark.parametrize("rules", [r for _, r in RULES], ids=[n for n, _ in RULES])
def test_cross_resource_rules_hold(rules):
    assert rules(DOCS) == []


def _mutated(kind: str, name: str, path: str, value: Any) -> list:
    target = _doc(kind, name)
    return [(p, _set(d, path, value) if d is target else d) for p, d in DOCS]


RULE_MISTAKES = [
    # Seldon Core v2
    ("Model", "wine", "spec>requirements", ["mlflow-sigaware", "gpu"], k8s.seldon_v2_problems, "not among Server"),
    ("Model", "wine", "spec>server", "mlserver", k8s.seldon_v2_problems, "is not a Server in deploy/"),
    ("Model", "wine", "spec>storageUri", "/var/other", k8s.seldon_v2_problems, "rclone container"),
    ("Model", "wine", "spec>parameters>0>name", "modeluri", k8s.seldon_v2_problems, "parameters.extra refused"),
    ("Model", "wine-v1", "spec>parameters>0>value", "models:/wine-regressor", k8s.seldon_v2_problems,
     "neither an alias nor a pinned version"),
    ("Server", "mlserver-sigaware", "spec>podSpec>containers>1>name", "server", k8s.seldon_v2_problems,
     "no `mlserver` container"),
    ("Server", "mlserver-sigaware", "spec>podSpec>containers>1>readinessProbe>httpGet>port", "server-grpc",
     k8s.seldon_v2_problems, "is not the HTTP port"),
    ("ConfigMap", "sigaware-model-settings", "data>model-settings.json",
     '{"name": "x", "implementation": "mlserver_mlflow.MLflowRuntime"}', k8s.seldon_v2_problems, "implementation"),
    # Seldon Core v1
    ("SeldonDeployment", "wine", "spec>predictors>0>graph>name", "wine-model", k8s.seldon_v1_problems,
     "has no container of that name"),
    ("SeldonDeployment", "wine", "spec>predictors>0>graph>endpoint>httpPort", 9001, k8s.seldon_v1_problems,
     "!= endpoint httpPort"),
    ("SeldonDeployment", "wine", "spec>protocol", "seldon", k8s.seldon_v1_problems, "protocol must be v2"),
    ("SeldonDeployment", "wine", "spec>predictors>0>annotations>prometheus.io/port", "9000",
     k8s.seldon_v1_problems, "prometheus.io/port"),
    # KServe
    ("InferenceService", "wine", "spec>predictor>model>modelFormat>name", "sklearn", k8s.kserve_problems,
     "does not support model format"),
    ("InferenceService", "wine", "spec>predictor>model>protocolVersion", "v1", k8s.kserve_problems,
     "not in the runtime's protocolVersions"),
    ("InferenceService", "wine", "spec>predictor>model>runtime", "kserve-mlserver", k8s.kserve_problems,
     "is not in deploy/"),
    ("InferenceService", "wine-local", "spec>predictor>model>env>0>value", "models:/wine-regressor/1",
     k8s.kserve_problems, "must be /mnt/models"),
    ("ServingRuntime", "mlserver-sigaware", "spec>containers>0>name", "mlserver", k8s.kserve_problems,
     "kserve-container"),
    ("ServingRuntime", "mlserver-sigaware", "spec>containers>0>ports>0>containerPort", 9000, k8s.kserve_problems,
     "MLSERVER_HTTP_PORT"),
    ("ServingRuntime", "mlserver-sigaware", "spec>containers>0>volumeMounts>0>name", "tmp", k8s.kserve_problems,
     "is not declared"),
    # Credentials
    ("ServingRuntime", "mlserver-sigaware", "spec>containers>0>env>0",
     {"name": "MLFLOW_TRACKING_PASSWORD", "value": "hunter2"}, k8s.credential_problems, "literal value"),
    ("ServingRuntime", "mlserver-sigaware", "spec>containers>0>envFrom>0>secretRef>name", "mlflow",
     k8s.credential_problems, "expected only mlflow-credentials"),
]


@pytest.mark.parametrize("kind,name,path,value,rules,message", RULE_MISTAKES,
                         ids=[f"{k}:{n}:{p}" for k, n, p, _, _, _ in RULE_MISTAKES])
def test_cross_resource_rules_catch_the_mistake(kind, name, path, value, rules, message):
    problems = rules(_mutated(kind, name, path, value))
    assert any(message in p for p in problems), problems


def _excerpts() -> list:
    from tests.docs.mdblocks import blocks

    page = k8s.REPO / "docs" / "kubernetes.md"
    return [b for b in blocks(page) if b.lang == "yaml"]


@pytest.mark.parametrize("block", _excerpts(), ids=lambda b: b.id)
def test_docs_show_the_deploy_files_verbatim(block):
    """Each YAML block of docs/kubernetes.md names its file on its first line and is a slice of it."""
    first, *lines = block.text.strip("\n").splitlines()
    assert first.startswith("# deploy/"), f"{block.id}: name the deploy/ file on the first line"
    source = (k8s.REPO / first[2:].strip()).read_text().splitlines()
    shown = textwrap.dedent("\n".join(lines))
    assert any(textwrap.dedent("\n".join(source[i:i + len(lines)])) == shown for i in range(len(source))), \
        f"{block.id}: not a slice of {first[2:]}"
