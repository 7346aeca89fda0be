"""A real ``mlflow server`` process (tracking server and model registry: sqlite backend, proxied
artifacts) that tests can stop and restart. (``mlflow models serve``, MLflow's scoring server, is
:mod:`mlflow_server`.) The deploy tests use it too.

Restarts keep the port and the data, as a registry restarted by its operator does, so an MLServer that
talks to it sees an outage and then the same registry again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.integration.harness import free_port

__all__ = ["RegistryServer"]


class RegistryServer:
    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = self.root / "server.log"

    def start(self, timeout: float = 120) -> "RegistryServer":
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
                 "--artifacts-destination", str(self.root / "artifacts")],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=self.root,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(self.log_path.read_text()[-3000:])
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("mlflow server did not start")

    def stop(self, crash: bool = False) -> None:
        """Stop the whole server (its workers too) and wait until it is gone; ``crash``: SIGKILL at once
        (an outage as a crash or a lost node causes it, and no graceful shutdown to wait for)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL if crash else signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # workers of the group may outlive the leader briefly
            try:
                os.killpg(self.process.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)
        else:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(crash=True)  # its data is a test's temporary folder: no graceful shutdown to wait for (~15 s)
