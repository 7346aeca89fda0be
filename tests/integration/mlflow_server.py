"""``mlflow models serve --env-manager local``: MLflow's real scoring server, as a reference in tests.

Used by test_scoring_parity.py and test_flavors_served.py: the same model folder served by MLflow
and by us must answer the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import requests

try:  # pytest's default "prepend" import mode puts this folder on sys.path...
    from harness import free_port
except ImportError:  # ...unless tests/ and tests/integration/ become packages.
    from tests.integration.harness import free_port

__all__ = ["MlflowServer"]


class MlflowServer:
    """``mlflow models serve -m <folder> --env-manager local`` in its own process group."""

    def __init__(self, model: Path, log_path: Path):
        self.model = model
        self.log_path = log_path
        self.port = free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        bin_dir = Path(sys.executable).parent
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PYTHONPATH") and not k.startswith("MLSERVER_")
        }
        # `mlflow models serve` execs `uvicorn` found on PATH: the one of this environment.
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env["PYTHONUNBUFFERED"] = "1"
        command = [
            str(bin_dir / "mlflow"), "models", "serve",
            "-m", str(self.model), "--env-manager", "local",
            "-p", str(self.port), "-h", "127.0.0.1",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                cwd=self.log_path.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited ({self.process.returncode}):\n{self._tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow models serve not ready in time:\n{self._tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        pgid = self.process.pid  # start_new_session: the CLI leads the group, uvicorn is in it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.process = None

    def _tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
