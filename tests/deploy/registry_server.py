"""A real ``mlflow server`` process on loopback (sqlite backend, proxied artifacts), as in production.

``with MlflowServer(folder) as server: zoo.register(server.url, ...)``. The process runs in its own
session and the whole group is stopped on exit; everything it writes stays under ``folder``.
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

__all__ = ["MlflowServer"]


class MlflowServer:
    def __init__(self, folder: Path, startup_timeout: float = 120) -> None:
        self.folder = Path(folder)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "MlflowServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        with open(self.folder / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.folder}/mlflow.db",
                 "--artifacts-destination", str(self.folder / "artifacts")],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=self.folder,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        log_tail = (self.folder / "server.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"mlflow server did not start:\n{log_tail}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(20)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)  # gunicorn/uvicorn workers that outlived it
        except ProcessLookupError:
            pass
        process.wait(10)
