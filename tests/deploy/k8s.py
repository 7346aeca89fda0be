"""The manifests of ``deploy/``, their CRD schemas, and the rules the controllers enforce across them.

CRD schemas come from ``../shared/k8s-crds/`` next to the checkout (CI's layout), else from the copy
in ``tests/data/k8s-crds/``. Validation is strict, as the API server's structural schemas are: an
object whose schema lists ``properties`` accepts no other field unless it is marked
``x-kubernetes-preserve-unknown-fields`` (Kubernetes prunes or, with ``kubectl apply
--validate=strict``, refuses unknown fields; a silently dropped field is a bug in a manifest).

The cross-resource rules (functions returning a list of problems, empty when the manifests agree) are
what the Seldon and KServe controllers check or silently rely on: a Model lands only on a Server whose
capabilities cover its requirements; an InferenceService's runtime must support its model format and
protocol; names, ports and mounts must line up between resources.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterator, Optional

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SHARED_CRDS = REPO.parent / "shared" / "k8s-crds"
COMMITTED_CRDS = REPO / "tests" / "data" / "k8s-crds"
RUNTIME = "mlserver_sigaware.SignatureAwareRuntime"

#: (apiVersion, kind) -> the CRD file that defines it.
CRD_FILES = {
    ("mlops.seldon.io/v1alpha1", "Server"): "servers.mlops.seldon.io.json",
    ("mlops.seldon.io/v1alpha1", "Model"): "models.mlops.seldon.io.json",
    ("machinelearning.seldon.io/v1", "SeldonDeployment"): "seldondeployments.machinelearning.seldon.io.json",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "servingruntimes.serving.kserve.io.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "inferenceservices.serving.kserve.io.json",
}

Doc = dict[str, Any]


def manifests() -> list[tuple[str, Doc]]:
    """Every document of every ``deploy/**/*.yaml``, with its file (relative to the repository)."""
    found = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((str(path.relative_to(REPO)), doc))
    return found


def of_kind(kind: str, docs: Optional[list[tuple[str, Doc]]] = None) -> list[Doc]:
    return [doc for _, doc in (manifests() if docs is None else docs) if doc["kind"] == kind]


def crd_file(name: str) -> Optional[Path]:
    """The CRD schema file: the shared folder's, else the committed copy, else None."""
    for folder in (SHARED_CRDS, COMMITTED_CRDS):
        if (folder / name).is_file():
            return folder / name
    return None


def _closed(node: Any) -> Any:
    """The schema with every object that lists ``properties`` closed to other fields."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _closed(value) for key, value in node.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=None)
def validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """A strict validator for one (apiVersion, kind); FileNotFoundError if no CRD file is found."""
    name = CRD_FILES[(api_version, kind)]
    path = crd_file(name)
    if path is None:
        raise FileNotFoundError(f"{name} is neither in {SHARED_CRDS} nor in {COMMITTED_CRDS}")
    crd = json.loads(path.read_text())
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind, path
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema = _closed(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
            return jsonschema.Draft7Validator(schema)
    raise LookupError(f"{path} does not define {api_version}")


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def schema_errors(doc: Doc) -> list[str]:
    """What the API server would refuse in this document (its CRD schema, strict; the object's name)."""
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
              for e in validator(doc["apiVersion"], doc["kind"]).iter_errors(doc)]
    name = doc.get("metadata", {}).get("name", "")
    if not _DNS_LABEL.match(name):
        errors.append(f"metadata/name: {name!r} is not a DNS-1123 label")
    return errors


# ------------------------------------------------------------------------------------ helpers


def env_of(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def container(containers: list[Doc], name: str) -> Optional[Doc]:
    return next((c for c in containers if c.get("name") == name), None)


def secret_refs(node: Any) -> Iterator[str]:
    """Names of the Secrets a manifest reads (envFrom / secretKeyRef), anywhere in it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretRef", "secretKeyRef") and isinstance(value, dict):
                yield value["name"]
            else:
                yield from secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_refs(item)


def literal_secrets(node: Any, path: str = "") -> Iterator[str]:
    """Env values that look like credentials written in the manifest itself."""
    if isinstance(node, dict):
        if "name" in node and "value" in node and re.search(r"PASSWORD|TOKEN|SECRET|ACCESS_KEY", str(node["name"])):
            yield f"{path}: {node['name']} has a literal value"
        for key, value in node.items():
            yield from literal_secrets(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from literal_secrets(item, f"{path}/{i}")


def _port_number(port: Any, ports: list[Doc]) -> Optional[int]:
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in ports if p.get("name") == port), None)


def probe_problems(where: str, c: Doc, http_port: Optional[int], known_ports: list[Doc]) -> list[str]:
    """Readiness on /v2/health/ready, liveness on /v2/health/live, on the server's HTTP port."""
    problems = []
    for probe, path in (("readinessProbe", "/v2/health/ready"), ("livenessProbe", "/v2/health/live")):
        get = c.get(probe, {}).get("httpGet")
        if get is None:
            problems.append(f"{where}: no {probe}")
            continue
        if get.get("path") != path:
            problems.append(f"{where}: {probe} path {get.get('path')!r}, expected {path}")
        number = _port_number(get.get("port"), known_ports)
        if http_port is not None and number != http_port:
            problems.append(f"{where}: {probe} port {get.get('port')!r} is not the HTTP port {http_port}")
    if "memory" not in c.get("resources", {}).get("limits", {}) or not c.get("resources", {}).get("requests"):
        problems.append(f"{where}: resources need requests and a memory limit")
    return problems


# --------------------------------------------------------------------------------- Seldon Core v2

#: The ports of the `mlserver` container in Seldon's default ServerConfig (server-http = 9000).
SELDON_V2_SERVERCONFIG_PORTS = [{"name": "server-http", "containerPort": 9000},
                                {"name": "server-grpc", "containerPort": 9500}]


def seldon_v2_model_settings(server: Doc, model: Doc, configmaps: list[Doc]) -> tuple[Optional[dict], list[str]]:
    """The model-settings.json a Model's storageUri holds, found through the Server's rclone mount."""
    uri = model["spec"]["storageUri"]
    rclone = container(server["spec"].get("podSpec", {}).get("containers", []), "rclone")
    volumes = {v["name"]: v for v in server["spec"].get("podSpec", {}).get("volumes", [])}
    for mount in (rclone or {}).get("volumeMounts", []):
        if mount["mountPath"] == f"{uri.rstrip('/')}/model-settings.json" and mount.get("subPath"):
            source = volumes.get(mount["name"], {}).get("configMap", {}).get("name")
            cm = next((c for c in configmaps if c["metadata"]["name"] == source), None)
            if cm is None:
                return None, [f"Model {model['metadata']['name']}: ConfigMap {source!r} is not in deploy/"]
            text = cm.get("data", {}).get(mount["subPath"])
            if text is None:
                return None, [f"ConfigMap {source}: no key {mount['subPath']!r}"]
            return json.loads(text), []
    return None, [f"Model {model['metadata']['name']}: storageUri {uri} is no model-settings.json mounted "
                  "(subPath) into the Server's rclone container"]


def seldon_v2_problems(docs: list[tuple[str, Doc]]) -> list[str]:
    from mlserver.settings import ModelSettings

    from mlserver_sigaware.model.location import parse_registry_uri
    from mlserver_sigaware.settings import SigawareSettings

    problems: list[str] = []
    servers = {s["metadata"]["name"]: s for s in of_kind("Server", docs)}
    configmaps = of_kind("ConfigMap", docs)
    for name, server in servers.items():
        containers = server["spec"].get("podSpec", {}).get("containers", [])
        mlserver = container(containers, "mlserver")
        if mlserver is None or not mlserver.get("image"):
            problems.append(f"Server {name}: no `mlserver` container with our image (Seldon merges by that name)")
            continue
        if "MLSERVER_MODELS_DIR" in env_of(mlserver):
            problems.append(f"Server {name}: MLSERVER_MODELS_DIR is the agent's (/mnt/agent/models); do not set it")
        problems += probe_problems(f"Server {name}/mlserver", mlserver, 9000,
                                   SELDON_V2_SERVERCONFIG_PORTS + mlserver.get("ports", []))
        volume_names = {v["name"] for v in server["spec"]["podSpec"].get("volumes", [])}
        for c in containers:
            for mount in c.get("volumeMounts", []):
                if mount["name"] not in volume_names:
                    problems.append(f"Server {name}/{c['name']}: volume {mount['name']!r} is not declared")
    for model in of_kind("Model", docs):
        mname = model["metadata"]["name"]
        spec = model["spec"]
        server = servers.get(spec.get("server", ""))
        if server is None:
            problems.append(f"Model {mname}: server {spec.get('server')!r} is not a Server in deploy/")
            continue
        capabilities = set(server["spec"].get("capabilities", [])) | set(server["spec"].get("extraCapabilities", []))
        missing = set(spec.get("requirements", [])) - capabilities
        if missing or not spec.get("requirements"):
            problems.append(f"Model {mname}: requirements {sorted(missing) or '[]'} not among Server "
                            f"{server['metadata']['name']}'s capabilities {sorted(capabilities)}")
        settings, found = seldon_v2_model_settings(server, model, configmaps)
        problems += found
        if settings is None:
            continue
        if settings.get("implementation") != RUNTIME:
            problems.append(f"Model {mname}: model-settings.json implementation is not {RUNTIME}")
        ModelSettings.model_validate(settings)  # what MLServer reads (raises on a bad document)
        extra = dict(settings.get("parameters", {}).get("extra", {}))
        # What Seldon's agent does: each spec.parameters entry lands in parameters.extra, as a string.
        extra.update({p["name"]: p["value"] for p in spec.get("parameters", [])})
        try:
            cfg = SigawareSettings.from_extra(extra)
        except Exception as exc:  # a typo in a parameter name: the model would fail to load
            problems.append(f"Model {mname}: parameters.extra refused: {exc}")
            continue
        if not (cfg.model_uri or "").startswith("models:/"):
            problems.append(f"Model {mname}: no registry `model_uri` (the agent rewrites name and version)")
        else:
            ref = parse_registry_uri(cfg.model_uri)
            if not (ref.alias or ref.version):
                problems.append(f"Model {mname}: {cfg.model_uri} is neither an alias nor a pinned version")
    return problems


# --------------------------------------------------------------------------------- Seldon Core v1


def seldon_v1_problems(docs: list[tuple[str, Doc]]) -> list[str]:
    problems: list[str] = []
    for sdep in of_kind("SeldonDeployment", docs):
        name = sdep["metadata"]["name"]
        if sdep["spec"].get("protocol") != "v2":
            problems.append(f"SeldonDeployment {name}: protocol must be v2 (MLServer speaks V2)")
        for predictor in sdep["spec"]["predictors"]:
            graph = predictor["graph"]
            containers = [c for cs in predictor.get("componentSpecs", []) for c in cs["spec"]["containers"]]
            volumes = {v["name"] for cs in predictor.get("componentSpecs", []) for v in cs["spec"].get("volumes", [])}
            c = container(containers, graph["name"])
            where = f"SeldonDeployment {name}/{predictor['name']}"
            if c is None:
                problems.append(f"{where}: graph node {graph['name']!r} has no container of that name")
                continue
            if graph.get("implementation"):
                problems.append(f"{where}: a custom server has no `implementation` (prepackaged servers only)")
            endpoint = graph.get("endpoint", {})
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for port_name, key in (("http", "httpPort"), ("grpc", "grpcPort")):
                if ports.get(port_name) != endpoint.get(key):
                    problems.append(f"{where}: port {port_name!r} {ports.get(port_name)} != endpoint {key} "
                                    f"{endpoint.get(key)}")
            env = env_of(c)
            for owned in ("MLSERVER_MODEL_NAME", "MLSERVER_HTTP_PORT", "MLSERVER_GRPC_PORT"):
                if owned in env:
                    problems.append(f"{where}: {owned} is set by Seldon (from the container name / endpoint)")
            if env.get("MLSERVER_MODEL_IMPLEMENTATION") != RUNTIME:
                problems.append(f"{where}: MLSERVER_MODEL_IMPLEMENTATION must be {RUNTIME}")
            if not env.get("MLSERVER_MODEL_URI"):
                problems.append(f"{where}: no MLSERVER_MODEL_URI (what to serve)")
            annotations = predictor.get("annotations", {})
            if "metrics" in ports and annotations.get("prometheus.io/port") != str(ports["metrics"]):
                problems.append(f"{where}: prometheus.io/port is not the `metrics` port {ports['metrics']}")
            problems += probe_problems(where, c, endpoint.get("httpPort"), c.get("ports", []))
            for mount in c.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{where}: volume {mount['name']!r} is not declared")
    return problems


# ------------------------------------------------------------------------------------------ KServe


def kserve_problems(docs: list[tuple[str, Doc]]) -> list[str]:
    problems: list[str] = []
    runtimes = {r["metadata"]["name"]: r for r in of_kind("ServingRuntime", docs)}
    for name, runtime in runtimes.items():
        c = container(runtime["spec"]["containers"], "kserve-container")
        if c is None:
            problems.append(f"ServingRuntime {name}: the container must be named kserve-container")
            continue
        env = env_of(c)
        http = int(env.get("MLSERVER_HTTP_PORT", "8080"))
        if [p["containerPort"] for p in c.get("ports", [])][:1] != [http]:
            problems.append(f"ServingRuntime {name}: first container port is not MLSERVER_HTTP_PORT {http}")
        if env.get("MLSERVER_MODEL_IMPLEMENTATION") != RUNTIME:
            problems.append(f"ServingRuntime {name}: MLSERVER_MODEL_IMPLEMENTATION must be {RUNTIME}")
        if runtime["spec"].get("annotations", {}).get("prometheus.kserve.io/port") != env.get("MLSERVER_METRICS_PORT",
                                                                                             "8082"):
            problems.append(f"ServingRuntime {name}: prometheus.kserve.io/port is not MLSERVER_METRICS_PORT")
        problems += probe_problems(f"ServingRuntime {name}", c, http, c.get("ports", []))
        volumes = {v["name"] for v in runtime["spec"].get("volumes", [])}
        for mount in c.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"ServingRuntime {name}: volume {mount['name']!r} is not declared")
    for isvc in of_kind("InferenceService", docs):
        name = isvc["metadata"]["name"]
        model = isvc["spec"]["predictor"].get("model", {})
        runtime = runtimes.get(model.get("runtime", ""))
        if runtime is None:
            problems.append(f"InferenceService {name}: runtime {model.get('runtime')!r} is not in deploy/")
            continue
        fmt = model.get("modelFormat", {})
        supported = runtime["spec"].get("supportedModelFormats", [])
        if not any(s["name"] == fmt.get("name") and (fmt.get("version") is None or s.get("version") == fmt["version"])
                   for s in supported):
            problems.append(f"InferenceService {name}: runtime {runtime['metadata']['name']} does not support "
                            f"model format {fmt}")
        protocol = model.get("protocolVersion", "v1")
        if protocol not in runtime["spec"].get("protocolVersions", []):
            problems.append(f"InferenceService {name}: protocol {protocol} not in the runtime's protocolVersions")
        uri = env_of(model).get("MLSERVER_MODEL_URI", "")
        if model.get("storageUri"):
            if uri != "/mnt/models":
                problems.append(f"InferenceService {name}: with a storageUri, MLSERVER_MODEL_URI must be /mnt/models "
                                "(where the storage initializer puts it)")
        elif not uri.startswith("models:/"):
            problems.append(f"InferenceService {name}: without a storageUri, MLSERVER_MODEL_URI must be a "
                            "registry reference (models:/...)")
        if not uri.startswith("/") and "MLFLOW_TRACKING_URI" not in env_of(model):
            problems.append(f"InferenceService {name}: a registry model needs MLFLOW_TRACKING_URI")
    return problems


def credential_problems(docs: list[tuple[str, Doc]]) -> list[str]:
    """Registry credentials come from one Secret, named the same everywhere; none is written inline."""
    problems = [p for _, doc in docs for p in literal_secrets(doc, f"{doc['kind']} {doc['metadata']['name']}")]
    names = {name for _, doc in docs for name in secret_refs(doc)}
    if names != {"mlflow-credentials"}:
        problems.append(f"Secrets referenced: {sorted(names)}, expected only mlflow-credentials")
    return problems
