"""The serving image, built from the repository alone and run: ``scripts/build_image.sh`` (buildah,
``--isolation chroot``, ``--storage-driver vfs``, a debootstrap base, a host-built wheelhouse), then the
image's own command inside the container (``buildah run --network host``: the image's file system,
user and environment) against the demo wine model mounted at ``/mnt/models``, configured by
environment only as KServe does it; and a registry model by alias from a real ``mlflow server`` (what
mlflow-skinny must be able to do). Correct V2 and ``/invocations`` answers, the probes, non-root.

Slow (a few minutes; debootstrap runs once per machine, its root file system cached under
``~/.cache/mlserver-sigaware``): marker ``container``. Everything lives in a private containers-storage
under a temporary folder, removed at the end (containers, images, mounts).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import requests

from tests import zoo
from tests.integration.mlflow_registry import RegistryServer
from tests.integration.harness import free_port

pytestmark = [pytest.mark.container, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/mlserver-sigaware:test"
RUNTIME = "mlserver_sigaware.SignatureAwareRuntime"
WINE = "wine-regressor"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "building and running the image needs root (debootstrap, buildah --isolation chroot)"
    if shutil.which("buildah") is None:
        return "buildah is not installed (scripts/bootstrap.sh test installs it as root with apt)"
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        return "debootstrap is not installed (scripts/bootstrap.sh test installs it as root with apt)"
    return None


if _why_not():
    pytest.skip(_why_not(), allow_module_level=True)


class Buildah:
    """buildah on a private containers-storage (``root``), vfs driver, chroot isolation."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = ["buildah", "--storage-driver", "vfs", "--root", str(root / "storage"),
                     "--runroot", str(root / "run")]

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"buildah {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def cleanup(self) -> None:
        # Containers first (they unmount their root file systems); the storage, images included, goes
        # with the folder.
        subprocess.run([*self.base, "rm", "--all"], capture_output=True, timeout=300)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def buildah(tmp_path_factory) -> Iterator[Buildah]:
    b = Buildah(tmp_path_factory.mktemp("containers"))
    yield b
    b.cleanup()
    with open("/proc/self/mounts") as mounts:
        leftover = [line for line in mounts if str(b.root) in line]
    assert not leftover, leftover
    assert not b.root.exists()


def _pinned(*packages: str) -> str:
    from importlib.metadata import version

    return " ".join(f"{p}=={version(p)}" for p in packages)


@pytest.fixture(scope="module")
def image(buildah: Buildah) -> dict:
    env = dict(os.environ, IMAGE=IMAGE, BUILDAH_ROOT=str(buildah.root / "storage"),
               BUILDAH_RUNROOT=str(buildah.root / "run"),
               # The demo wine model is scikit-learn, saved with MLflow 3's default (skops).
               MODEL_PACKAGES=_pinned("scikit-learn", "skops"))
    started = time.monotonic()
    done = subprocess.run(["scripts/build_image.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    took = time.monotonic() - started
    size = buildah("images", "--noheading", "--format", "{{.Size}}", IMAGE)
    print(f"\nimage {IMAGE}: {size}, built in {took:.0f} s")
    return json.loads(buildah("inspect", "--type", "image", IMAGE))["OCIv1"]["config"]


@pytest.fixture(scope="module")
def container(buildah: Buildah, image: dict) -> str:
    return buildah("from", "--pull=false", IMAGE)


@pytest.fixture(scope="module")
def wine(tmp_path_factory) -> tuple[Path, list[list[float]], list[str], np.ndarray]:
    """The demo's wine regressor, saved as an MLflow model folder the way the demo logs it."""
    import mlflow.sklearn
    import sklearn

    from mlserver_sigaware.demo import train_wine_model

    model, features = train_wine_model()
    folder = tmp_path_factory.mktemp("wine") / "model"
    mlflow.sklearn.save_model(model, str(folder), signature=mlflow.models.infer_signature(features, model.predict(features)),
                              pip_requirements=[f"scikit-learn=={sklearn.__version__}"])
    rows = features.head(3)
    return folder, rows.values.tolist(), list(rows.columns), model.predict(rows)


class Running:
    """The image's command (``Cmd``) run in ``container`` with ``env`` added, as ``docker run -e`` would."""

    def __init__(self, buildah: Buildah, container: str, image: dict, env: dict[str, str], volumes: list[str],
                 log: Path) -> None:
        self.port = int(env["MLSERVER_HTTP_PORT"])
        self.metrics_port = int(env["MLSERVER_METRICS_PORT"])
        command = [*buildah.base, "run", "--isolation", "chroot", "--network", "host"]
        for volume in volumes:
            command += ["-v", volume]
        command += [container, "--", "env", *(f"{k}={v}" for k, v in env.items()), *image["Cmd"]]
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, model: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/v2/models/{model}/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM to the group, then SIGKILL to whatever outlived the main process (MLServer's parallel
        worker can; in a pod, the end of PID 1 ends every process of the container)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _ports() -> dict[str, str]:
    ports: set[int] = set()
    while len(ports) < 3:
        ports.add(free_port())
    http, grpc, metrics = sorted(ports)
    return {"MLSERVER_HOST": "127.0.0.1", "MLSERVER_HTTP_PORT": str(http), "MLSERVER_GRPC_PORT": str(grpc),
            "MLSERVER_METRICS_PORT": str(metrics)}


def _check_answers(server: Running, model: str, columns: list[str], rows: list[list[float]],
                   expected: np.ndarray) -> requests.Response:
    inputs = [{"name": c, "datatype": "FP64", "shape": [len(rows)], "data": [r[i] for r in rows]}
              for i, c in enumerate(columns)]
    v2 = requests.post(f"{server.url}/v2/models/{model}/infer", json={"inputs": inputs}, timeout=60)
    assert v2.status_code == 200, v2.text
    np.testing.assert_allclose(np.asarray(v2.json()["outputs"][0]["data"], dtype=float), expected, rtol=1e-9)
    scoring = requests.post(f"{server.url}/v2/models/{model}/invocations",
                            json={"dataframe_split": {"columns": columns, "data": rows}}, timeout=60)
    assert scoring.status_code == 200, scoring.text
    np.testing.assert_allclose(np.asarray(scoring.json()["predictions"], dtype=float), expected, rtol=1e-9)
    # The bare /invocations of `mlflow models serve` (one model on the server).
    bare = requests.post(f"{server.url}/invocations", json={"dataframe_split": {"columns": columns, "data": rows}},
                         timeout=60)
    assert bare.status_code == 200 and bare.json() == scoring.json(), bare.text
    return v2


def test_image_config_is_what_the_docs_say(image):
    assert image["User"] == "1000"
    assert image["Cmd"] == ["/bin/sh", "-c", 'exec mlserver start "$MLSERVER_MODELS_DIR"']
    env = dict(item.split("=", 1) for item in image["Env"])
    assert env["MLSERVER_MODELS_DIR"] == "/mnt/models"
    assert env["MLSERVER_MODEL_REPOSITORY_IMPLEMENTATION"] == "mlserver_sigaware.MlflowRegistryRepository"
    assert set(image["ExposedPorts"]) == {"8080/tcp", "8081/tcp", "8082/tcp"}


def test_serving_installs_mlflow_skinny_not_mlflow(buildah, container):
    listing = buildah("run", "--isolation", "chroot", container, "--", "pip", "list", "--format", "json")
    installed = {p["name"].lower() for p in json.loads(listing)}
    assert {"mlserver", "mlserver-sigaware", "mlflow-skinny", "scikit-learn"} <= installed
    assert not installed & {"mlflow", "sqlalchemy", "alembic", "flask", "gunicorn", "matplotlib", "pyarrow", "pytest"}


def test_the_image_command_serves_a_mounted_model_and_a_registry_alias(buildah, container, image, wine, tmp_path):
    folder, rows, columns, expected = wine
    # KServe with a storageUri: the artifact at /mnt/models, the model named by environment only.
    kserve_like = {**_ports(), "MLSERVER_MODEL_NAME": WINE, "MLSERVER_MODEL_IMPLEMENTATION": RUNTIME,
                   "MLSERVER_MODEL_URI": "/mnt/models"}
    with RegistryServer(tmp_path / "mlflow") as registry:
        version = zoo.register(registry.url, WINE, folder, alias="champion")
        # No storageUri: the registry model by alias, through the mlflow server over HTTP.
        by_alias = {**_ports(), "MLSERVER_MODEL_NAME": "wine", "MLSERVER_MODEL_IMPLEMENTATION": RUNTIME,
                    "MLSERVER_MODEL_URI": f"models:/{WINE}@champion", "MLFLOW_TRACKING_URI": registry.url}
        local = Running(buildah, container, image, kserve_like, [f"{folder}:/mnt/models:ro"], tmp_path / "local.log")
        remote = Running(buildah, container, image, by_alias, [], tmp_path / "registry.log")
        try:
            local.wait_ready(WINE)
            remote.wait_ready("wine")
            _check_answers(local, WINE, columns, rows, expected)
            reply = _check_answers(remote, "wine", columns, rows, expected)
            assert reply.json()["model_version"] == version
            assert reply.headers["mlflow-model-version"] == version
            for server in (local, remote):
                # The probes the manifests use, and the metrics port their annotations name.
                for path in ("/v2/health/live", "/v2/health/ready", "/ping"):
                    assert requests.get(server.url + path, timeout=10).status_code == 200, path
                metrics = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10)
                assert metrics.status_code == 200 and "model_infer_request_success" in metrics.text
            # The server runs as the image's non-root user.
            owners = subprocess.run(["ps", "-o", "uid=,args=", "-s", str(local.process.pid)], capture_output=True,
                                    text=True).stdout
            served = [line for line in owners.splitlines() if "mlserver start /mnt/models" in line]
            assert served and all(line.split()[0] == "1000" for line in served), owners
        finally:
            local.stop()
            remote.stop()
    for server in (local, remote):
        assert subprocess.run(["pgrep", "-s", str(server.process.pid)], capture_output=True).stdout == b""
