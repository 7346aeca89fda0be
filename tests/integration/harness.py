"""Run a real ``mlserver start`` process for integration tests.

:class:`MLServerProcess` writes ``settings.json`` into a model repository folder, starts
``mlserver start <root>`` (the ``mlserver`` script of the running interpreter's environment) in
its own session, waits until the server and the listed models are ready, and on exit terminates
the whole process group: the MLServer main process, its parallel inference workers and any other
child, whatever state they are in.

The server's environment is the test process's environment, except:

* ``MLSERVER_*`` variables are dropped: MLServer reads them as settings / model settings and a
  stray one (``MLSERVER_MODEL_URI``...) would silently change what is tested;
* ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` are dropped: ``mlflow.set_tracking_uri`` in a
  test exports ``MLFLOW_TRACKING_URI``, which would then leak into the server;
* ``PYTHONPATH`` is dropped: the server must not import ``tests`` (models have to load on their
  own, as in production);
* ``MLFLOW_DISABLE_TELEMETRY=true`` and ``PYTHONUNBUFFERED=1`` are set;

and ``env`` (applied last) can put back or override anything.  The server runs with ``root`` as
its current directory (MLServer puts ``.`` on ``sys.path`` and defaults ``metrics_dir`` to
``./.metrics``), so nothing is written outside ``root``.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "IMPLEMENTATION",
    "MLServerProcess",
    "MLServerStartError",
    "free_port",
    "mlserver_executable",
    "write_model_settings",
]

#: The runtime under test, as ``model-settings.json`` names it.
IMPLEMENTATION = "mlserver_sigaware.SignatureAwareRuntime"

_LOOPBACK = "127.0.0.1"
_DROPPED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PYTHONPATH")
_ADDRESS_IN_USE = ("address already in use", "errno 98", "[errno 48]")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


def mlserver_executable() -> Path:
    """The ``mlserver`` script installed next to the running Python interpreter."""
    candidate = Path(sys.executable).parent / "mlserver"
    if not candidate.is_file():
        raise FileNotFoundError(f"no mlserver script next to {sys.executable}")
    return candidate


def write_model_settings(
    folder: Path,
    name: str,
    uri: str | None = None,
    extra: dict[str, Any] | None = None,
    **model_settings_fields: Any,
) -> Path:
    """Write ``<folder>/model-settings.json`` for model ``name`` and return its path.

    ``implementation`` is :data:`IMPLEMENTATION` and ``parameters`` is
    ``{"uri": uri, "extra": extra or {}}`` (no ``uri`` key when ``uri`` is ``None``).  Other
    model settings (``parallel_workers``, ``max_batch_size``, ``versions``...) go in
    ``model_settings_fields``; ``implementation=...`` replaces the runtime and a
    ``parameters={...}`` dict is merged into the parameters above.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    parameters: dict[str, Any] = {}
    if uri is not None:
        parameters["uri"] = uri
    parameters["extra"] = dict(extra or {})
    parameters.update(model_settings_fields.pop("parameters", None) or {})
    settings: dict[str, Any] = {
        "name": name,
        "implementation": IMPLEMENTATION,
        "parameters": parameters,
    }
    settings.update(model_settings_fields)
    path = folder / "model-settings.json"
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return path


class MLServerStartError(RuntimeError):
    """The server exited or was not ready in time; the message ends with its last log lines."""


class MLServerProcess:
    """A ``mlserver start <root>`` process, as a context manager.

    ``with MLServerProcess(root, models=["m"]) as server: requests.get(server.http_url + ...)``

    ``root`` is the model repository (MLServer finds every ``model-settings.json`` below it);
    ``settings.json`` is (over)written there with ``host`` 127.0.0.1, free ``http_port``,
    ``grpc_port`` and ``metrics_port``, ``parallel_workers``, ``debug`` and
    ``metrics_dir=<root>/.metrics``, then updated with ``extra_settings``.  The output goes to
    ``log_path`` (``<root>/mlserver.log``, appended to across starts).

    Entering waits until ``GET /v2/health/ready`` and ``GET /v2/models/<name>/ready`` for each
    of ``models`` answer 200, for at most ``startup_timeout`` seconds; if the process exits or
    the time runs out, it is killed and :class:`MLServerStartError` raised with the end of the
    log.  If the ports were taken in between (another test grabbed them), it retries with new
    ones.  Exiting sends SIGTERM to the process group, waits up to ``stop_timeout`` (20 s) and
    then SIGKILLs the group.
    """

    def __init__(
        self,
        root: Path,
        parallel_workers: int = 0,
        debug: bool = False,
        extra_settings: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        models: list[str] | None = None,
        startup_timeout: float = 120,
        *,
        stop_timeout: float = 20,
        port_attempts: int = 3,
    ) -> None:
        self.root = Path(root).resolve()
        self.parallel_workers = parallel_workers
        self.debug = debug
        self.extra_settings: dict[str, Any] = dict(extra_settings or {})
        self.env: dict[str, str] = dict(env or {})
        self.models: list[str] = list(models or [])
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port_attempts = max(1, port_attempts)
        self.log_path = self.root / "mlserver.log"
        self.settings_path = self.root / "settings.json"
        self.process: subprocess.Popen[bytes] | None = None
        self.http_port = 0
        self.grpc_port = 0
        self.metrics_port = 0
        self._log_offset = 0

    # ------------------------------------------------------------------------- addresses

    @property
    def http_url(self) -> str:
        """Base URL of the REST server, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{_LOOPBACK}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC server (what ``tritonclient.grpc`` expects)."""
        return f"{_LOOPBACK}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """Full URL of the Prometheus endpoint, e.g. ``http://127.0.0.1:40125/metrics``."""
        endpoint = self.extra_settings.get("metrics_endpoint", "/metrics") or "/metrics"
        return f"http://{_LOOPBACK}:{self.metrics_port}{endpoint}"

    @property
    def pid(self) -> int | None:
        """PID of the MLServer main process (also its process group id), once started."""
        return None if self.process is None else self.process.pid

    # ---------------------------------------------------------------------------- logs

    def log_text(self) -> str:
        """Everything the server printed so far (this start only)."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self._log_offset)
                return handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 100) -> str:
        """The last ``lines`` lines of :meth:`log_text`."""
        return "\n".join(collections.deque(self.log_text().splitlines(), maxlen=lines))

    # ----------------------------------------------------------------------- lifecycle

    def __enter__(self) -> MLServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until it and :attr:`models` are ready."""
        if self.process is not None:
            raise RuntimeError("this MLServerProcess is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, self.port_attempts + 1):
            self._spawn()
            try:
                self._wait_ready()
                return
            except MLServerStartError:
                log = self.log_text().lower()
                self.stop()
                retry = attempt < self.port_attempts and any(s in log for s in _ADDRESS_IN_USE)
                if not retry:
                    raise
            except BaseException:  # KeyboardInterrupt, pytest timeout...: never leak
                self.stop()
                raise

    def launch(self) -> None:
        """Start the process and return at once, without waiting for readiness (start-up tests)."""
        if self.process is not None:
            raise RuntimeError("this MLServerProcess is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        self._spawn()

    def stop(self) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL after :attr:`stop_timeout`)."""
        process = self.process
        if process is None:
            return
        pgid = process.pid  # start_new_session=True: the main process leads its own group
        try:
            _signal_group(pgid, signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pgid, signal.SIGKILL)
                process.wait(timeout=10)
        finally:
            # Workers or helpers that outlived the main process (or ignored SIGTERM).
            _signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(pgid, timeout=5)
            self.process = None
            atexit.unregister(self._kill_at_exit)

    # ------------------------------------------------------------------------- helpers

    def _write_settings(self) -> None:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.http_port, self.grpc_port, self.metrics_port = sorted(ports)
        settings: dict[str, Any] = {
            "host": _LOOPBACK,
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port,
            "parallel_workers": self.parallel_workers,
            "debug": self.debug,
            "metrics_dir": str(self.root / ".metrics"),
        }
        settings.update(self.extra_settings)
        # extra_settings may pin ports: keep the attributes truthful.
        self.http_port = int(settings["http_port"])
        self.grpc_port = int(settings["grpc_port"])
        self.metrics_port = int(settings["metrics_port"])
        self.settings_path.write_text(json.dumps(settings, indent=2) + "\n")

    def _server_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("MLSERVER_") and key not in _DROPPED_ENV
        }
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        return env

    def _spawn(self) -> None:
        self._write_settings()
        (self.root / ".metrics").mkdir(exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [str(mlserver_executable()), "start", str(self.root)]
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command,
                cwd=self.root,
                env=self._server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self._kill_at_exit)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        paths = ["/v2/health/ready"] + [
            f"/v2/models/{urllib.parse.quote(name, safe='')}/ready" for name in self.models
        ]
        pending = list(paths)
        while pending:
            code = self.process.poll()
            if code is not None:
                raise MLServerStartError(
                    f"mlserver exited with code {code} before being ready "
                    f"(log: {self.log_path}):\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise MLServerStartError(
                    f"mlserver not ready after {self.startup_timeout:g}s, still waiting for "
                    f"{', '.join(pending)} (log: {self.log_path}):\n{self.log_tail()}"
                )
            if _http_status(self.http_url + pending[0]) == 200:
                pending.pop(0)
            else:
                time.sleep(0.2)

    def _kill_at_exit(self) -> None:
        """Last resort if the test process exits without :meth:`stop` (atexit hook)."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGKILL)

    def __repr__(self) -> str:
        state = "stopped" if self.process is None else f"pid {self.process.pid}"
        return f"MLServerProcess({str(self.root)!r}, {self.http_url}, {state})"


def _http_status(url: str) -> int | None:
    """Status code of ``GET url``, ``None`` if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):  # connection refused/reset, timeout, garbled answer
        return None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """``killpg`` that ignores an already gone group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """Wait until no process of group ``pgid`` is left (zombies reparented to init included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
