"""Self-test of the integration harness, with a trivial runtime instead of ours.

The runtime is a module written into the model folder (MLServer puts the folder on
``sys.path`` while importing ``implementation``), so these tests only depend on MLServer and
on :mod:`harness`, not on ``mlserver_sigaware``.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from pathlib import Path

import pytest
import requests

try:  # pytest's default "prepend" import mode puts this folder on sys.path...
    from harness import MLServerProcess, MLServerStartError, free_port, write_model_settings
except ImportError:  # ...unless tests/ and tests/integration/ become packages.
    from tests.integration.harness import (
        MLServerProcess,
        MLServerStartError,
        free_port,
        write_model_settings,
    )

pytestmark = pytest.mark.integration

ECHO_RUNTIME = textwrap.dedent(
    '''
    """A runtime that echoes its inputs back as outputs."""

    from mlserver import MLModel
    from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


    class EchoRuntime(MLModel):
        async def load(self) -> bool:
            return True

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            return InferenceResponse(
                model_name=self.name,
                model_version=self.version,
                outputs=[
                    ResponseOutput(
                        name=f"echo_{inp.name}",
                        shape=inp.shape,
                        datatype=inp.datatype,
                        data=inp.data,
                    )
                    for inp in payload.inputs
                ],
            )
    '''
)

BROKEN_RUNTIME = textwrap.dedent(
    """
    from mlserver import MLModel


    class BrokenRuntime(MLModel):
        async def load(self) -> bool:
            raise RuntimeError("cannot load on purpose")
    """
)


def _echo_repository(root: Path, name: str = "echo") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "echo_runtime.py").write_text(ECHO_RUNTIME)
    write_model_settings(folder, name, implementation="echo_runtime.EchoRuntime")
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 0 < port < 65536


def test_write_model_settings(tmp_path: Path) -> None:
    path = write_model_settings(
        tmp_path / "m", "m", uri="models:/m@champion", extra={"a": 1}, max_batch_size=4
    )
    settings = json.loads(path.read_text())
    assert settings == {
        "name": "m",
        "implementation": "mlserver_sigaware.SignatureAwareRuntime",
        "parameters": {"uri": "models:/m@champion", "extra": {"a": 1}},
        "max_batch_size": 4,
    }
    no_uri = json.loads(write_model_settings(tmp_path / "n", "n").read_text())
    assert no_uri["parameters"] == {"extra": {}}


def test_echo_round_trip(tmp_path: Path) -> None:
    root = _echo_repository(tmp_path / "repo")
    with MLServerProcess(root, parallel_workers=0, models=["echo"]) as server:
        assert server.http_url == f"http://127.0.0.1:{server.http_port}"
        assert server.grpc_url == f"127.0.0.1:{server.grpc_port}"
        assert requests.get(f"{server.http_url}/v2/health/ready", timeout=5).status_code == 200
        ready = requests.get(f"{server.http_url}/v2/models/echo/ready", timeout=5)
        assert ready.status_code == 200

        request = {
            "inputs": [
                {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, 2.5]},
                {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["hi"]},
            ]
        }
        infer_url = f"{server.http_url}/v2/models/echo/infer"
        response = requests.post(infer_url, json=request, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_name"] == "echo"
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["echo_x"]["data"] == [1.5, 2.5]
        assert outputs["echo_x"]["datatype"] == "FP64"
        assert outputs["echo_s"]["data"] == ["hi"]

        metrics = requests.get(server.metrics_url, timeout=5)
        assert metrics.status_code == 200
        assert "Traceback" not in server.log_text()
        pid = server.pid
        assert pid is not None

    assert server.process is None
    assert not _alive(pid)
    assert not _group_alive(pid)
    assert "mlserver start" in server.log_text()


def test_parallel_workers_are_cleaned_up(tmp_path: Path) -> None:
    """With inference workers, stopping leaves no process of the group behind."""
    root = _echo_repository(tmp_path / "repo")
    with MLServerProcess(root, parallel_workers=1, models=["echo"]) as server:
        request = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [7]}]}
        infer_url = f"{server.http_url}/v2/models/echo/infer"
        response = requests.post(infer_url, json=request, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [7]
        pgid = server.pid
        assert pgid is not None
    assert not _group_alive(pgid)


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    root = _echo_repository(tmp_path / "repo")
    server = MLServerProcess(root, models=["echo"], stop_timeout=1)
    with server:
        pgid = server.pid
        assert pgid is not None
        # Stand-in for a hung shutdown: the group's main process stops handling SIGTERM.
        os.kill(pgid, signal.SIGSTOP)
        started = time.monotonic()
    assert time.monotonic() - started < 15
    assert not _group_alive(pgid)


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    folder = tmp_path / "repo" / "broken"
    folder.mkdir(parents=True)
    (folder / "broken_runtime.py").write_text(BROKEN_RUNTIME)
    write_model_settings(folder, "broken", implementation="broken_runtime.BrokenRuntime")
    server = MLServerProcess(tmp_path / "repo", models=["broken"], startup_timeout=60)
    with pytest.raises(MLServerStartError) as info:
        server.start()
    assert "cannot load on purpose" in str(info.value)
    assert server.process is None
