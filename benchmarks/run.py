#!/usr/bin/env python
"""Benchmark our runtime against MLServer's floor, MLServer's MLflow runtime and MLflow's scoring server.

    .venv/bin/python benchmarks/run.py            # full run, ~10 min on 2 cores
    .venv/bin/python benchmarks/run.py --quick    # the target cases only, ~2-3 min

One run starts, one at a time and each on free loopback ports:

* ``floor``: MLServer with a do-nothing runtime (``floor_runtime.FloorRuntime``: a fixed one-element
  answer, nothing decoded) -- MLServer's own cost, the best any runtime can do on it;
* ``mlserver-mlflow``: MLServer's MLflow runtime, ``mlserver_mlflow.MLflowRuntime`` (1.7.1);
* ``mlflow-serve``: MLflow's scoring server, ``mlflow models serve -m <model> --env-manager local``;
* ``ours``: ``mlserver_sigaware.SignatureAwareRuntime`` (V2 ``/infer``, and ``/v2/models/<m>/invocations``);
  ``ours-bare`` is our bare ``POST /invocations``, the drop-in for ``mlflow models serve`` clients;

all on the same saved MLflow models, MLServer with ``parallel_workers`` 1 (the default) and 0, and drives
each with the same closed-loop load (wrk -t1 -c8, or a Python asyncio client when wrk is missing; the
output says which). Every case first checks one answer against the model's own ``predict`` (a server that
answers something else is not timed); a route answering 404 is skipped with a note.

Writes ``benchmarks/results/<timestamp>/{results.md,results.json,chart.png,profile.txt}`` and
``benchmarks/results/latest.md``, prints the table and PASS/FAIL against the targets of issue #6.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT), str(ROOT / "tests" / "integration")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import bench_models  # noqa: E402
from harness import MLServerProcess, free_port, write_model_settings  # noqa: E402

SERVERS = ("floor", "mlserver-mlflow", "mlflow-serve", "ours", "ours-bare")
SERVER_LABELS = {
    "floor": "floor (MLServer, no-op runtime)",
    "mlserver-mlflow": "MLServer MLflowRuntime",
    "mlflow-serve": "mlflow models serve",
    "ours": "ours",
    "ours-bare": "ours, bare /invocations",
}
JSON = "application/json"
#: Ours answers the bare /invocations with this model when it hosts several.
BARE_MODEL = "wine"


# ---------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    kind: str  # bench_models.KINDS
    protocol: str  # "v2" | "invocations"
    rows: int
    servers: tuple[str, ...]
    #: How a V2 request travels: "json" (REST, JSON body), "binary" (REST, tritonclient.http's defaults:
    #: Triton's binary tensor extension both ways) or "grpc" (tritonclient.grpc's raw_input_contents).
    transport: str = "json"

    @property
    def id(self) -> str:
        proto = "gRPC" if self.transport == "grpc" else "V2" if self.protocol == "v2" else "/invocations"
        suffix = " binary" if self.transport == "binary" else ""
        return f"{self.kind} {proto} {self.rows} row{'s' if self.rows > 1 else ''}{suffix}"


def cases_for(quick: bool) -> list[Case]:
    v2_all = ("floor", "mlserver-mlflow", "ours")
    if quick:
        return [
            Case("trivial", "v2", 1, ("floor", "ours")),
            Case("wine", "v2", 1, ("floor", "mlserver-mlflow", "ours")),
            Case("wine", "invocations", 1, ("floor", "mlserver-mlflow", "mlflow-serve", "ours-bare")),
            Case("wine", "v2", 10000, v2_all),
            Case("wine", "v2", 10000, ("ours",), "binary"),
            Case("wine", "v2", 1, v2_all, "grpc"),
            Case("wine", "v2", 10000, v2_all, "grpc"),
        ]
    out = []
    for rows in (1, 100, 10000):
        out.append(Case("wine", "v2", rows, v2_all))
    # MLServer alone refuses binary tensors (400): only ours is measured, against its own JSON.
    for rows in (1, 10000):
        out.append(Case("wine", "v2", rows, ("ours",), "binary"))
    for rows in (1, 10000):
        out.append(Case("wine", "v2", rows, v2_all, "grpc"))
    out.append(Case("wine", "invocations", 1, ("floor", "mlserver-mlflow", "mlflow-serve", "ours", "ours-bare")))
    for rows in (100, 10000):
        out.append(Case("wine", "invocations", rows, ("mlserver-mlflow", "mlflow-serve", "ours-bare")))
    for kind in ("trivial", "text", "tensor"):
        out.append(Case(kind, "v2", 1, v2_all))
        # MLServer's MLflow runtime mounts /invocations for one model per server (the wine one here).
        out.append(Case(kind, "invocations", 1, ("mlflow-serve", "ours")))
    out.append(Case("tensor", "v2", 60000, v2_all))
    out.append(Case("tensor", "v2", 60000, ("ours",), "binary"))
    return out


def model_name(case: Case, server: str) -> str:
    return "floor" if server == "floor" else case.kind


def endpoint(case: Case, server: str) -> str:
    if case.transport == "grpc":
        return f"gRPC ModelInfer {model_name(case, server)}"
    if case.protocol == "v2":
        name = "floor" if server == "floor" else case.kind
        return f"/v2/models/{name}/infer"
    if server == "ours":
        return f"/v2/models/{case.kind}/invocations"
    return "/invocations"


# -------------------------------------------------------------------------------------------- results


@dataclass
class Result:
    case: str
    kind: str
    protocol: str
    rows: int
    server: str
    workers: Optional[int]  # None: not an MLServer (mlflow-serve)
    endpoint: str
    status: str = "ok"  # ok | skipped | error | wrong-answer
    note: str = ""
    rps: Optional[float] = None
    p50_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    requests: int = 0
    errors: int = 0
    client: str = ""
    #: CPU time the server's processes (main + workers) used per answered request during the
    #: measurement: much less sensitive than req/s to other load on the machine.
    cpu_ms_per_req: Optional[float] = None
    #: With --rounds N > 1: each round's req/s (this result holds the medians).
    round_rps: list = field(default_factory=list)


def _fmt(v: Optional[float], digits: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


# ---------------------------------------------------------------------------------------------- load


class LoadGenerator:
    """Closed-loop load: ``connections`` clients each sending the next request when the last answered."""

    def __init__(self, kind: str, connections: int, scratch: Path):
        self.kind = kind
        self.connections = connections
        self.scratch = scratch
        self.wrk = shutil.which("wrk")
        if kind == "wrk" and not self.wrk:
            raise SystemExit("--client wrk: wrk is not installed (apt-get install -y wrk)")
        if kind == "auto":
            self.kind = "wrk" if self.wrk else "python"

    @property
    def label(self) -> str:
        if self.kind == "wrk":
            return f"wrk -t1 -c{self.connections} (benchmarks/post.lua)"
        why = "--client python" if self.wrk else "FALLBACK: wrk not found"
        return (
            f"Python asyncio/aiohttp closed loop, {self.connections} concurrent "
            f"({why}; the client shares the cores with the server and caps throughput)"
        )

    def run(self, url: str, body_file: Path, content_type: str, seconds: float,
            headers: Optional[dict[str, str]] = None) -> dict[str, Any]:
        if self.kind == "wrk":
            return self._wrk(url, body_file, content_type, seconds, headers or {})
        return asyncio.run(self._python(url, body_file.read_bytes(), content_type, seconds, headers or {}))

    def run_grpc(self, target: str, request: bytes, seconds: float) -> dict[str, Any]:
        """The same closed loop over gRPC (``ModelInfer``, the serialized request sent as it is), from a
        Python ``grpc.aio`` client: wrk does not speak gRPC. The client shares the cores with the server,
        so compare gRPC numbers with each other (ours / floor), not with wrk's."""
        return asyncio.run(self._grpc(target, request, seconds))

    def _wrk(self, url: str, body_file: Path, content_type: str, seconds: float,
             headers: dict[str, str]) -> dict[str, Any]:
        command = [
            self.wrk, "-t1", f"-c{self.connections}", f"-d{max(1, round(seconds))}s", "--timeout", "60s",
            "-s", str(HERE / "post.lua"), url, "--", str(body_file), content_type,
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
        for line in proc.stdout.splitlines():
            if line.startswith("WRK_JSON "):
                raw = json.loads(line[len("WRK_JSON "):])
                errors = sum(raw[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
                duration = raw["duration_us"] / 1e6
                return {
                    "requests": raw["requests"],
                    "errors": errors,
                    "rps": raw["requests"] / duration if duration else 0.0,
                    "p50_ms": raw["p50_us"] / 1e3,
                    "p99_ms": raw["p99_us"] / 1e3,
                }
        raise RuntimeError(f"wrk printed no summary: {proc.stdout[-500:]} {proc.stderr[-500:]}")

    async def _python(self, url: str, body: bytes, content_type: str, seconds: float,
                      headers: dict[str, str]) -> dict[str, Any]:
        import aiohttp

        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds
        connector = aiohttp.TCPConnector(limit=self.connections)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def client() -> None:
                nonlocal errors
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    try:
                        async with session.post(url, data=body, headers={"Content-Type": content_type, **headers}) as r:
                            await r.read()
                            ok = 200 <= r.status < 400
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        ok = False
                    latencies.append(time.perf_counter() - t0)
                    errors += 0 if ok else 1

            t_start = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(self.connections)))
            elapsed = time.perf_counter() - t_start
        return _summary(latencies, errors, elapsed)

    async def _grpc(self, target: str, request: bytes, seconds: float) -> dict[str, Any]:
        import grpc

        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")

            async def client() -> None:
                nonlocal errors
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    try:
                        await call(request, timeout=60)
                    except grpc.RpcError:
                        errors += 1
                    latencies.append(time.perf_counter() - t0)

            t_start = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(self.connections)))
            elapsed = time.perf_counter() - t_start
        return _summary(sorted(latencies), errors, elapsed)


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    latencies.sort()

    def pct(q: float) -> Optional[float]:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(math.ceil(q * len(latencies))) - 1)] * 1e3

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def _post_full(url: str, body: bytes, headers: dict[str, str], timeout: float = 60) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return int(error.code), error.read(), {}


def _grpc_call(target: str, request: bytes) -> tuple[int, Any]:
    """One ``ModelInfer``: (0, response) or (the gRPC status code's value, its details)."""
    import grpc
    from mlserver.grpc import dataplane_pb2 as service_pb2

    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                   response_deserializer=service_pb2.ModelInferResponse.FromString)
        try:
            return 0, call(request, timeout=120)
        except grpc.RpcError as error:
            return error.code().value[0], f"{error.code().name}: {error.details()}"


def _post(url: str, body: bytes, content_type: str = JSON, timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: Optional[int]) -> Optional[float]:
    """User + system CPU seconds used so far by the live processes of process group ``pgid`` (Linux)."""
    if not pgid or not os.path.isdir("/proc"):
        return None
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:  # field 5: pgrp
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / _CLOCK_TICKS


def _last_exception(log: str) -> str:
    """The last ``SomeError: message`` line of a server log (what a 500 hides)."""
    for line in reversed(log.splitlines()[-400:]):
        head = line.split(":", 1)[0].strip()
        if head.endswith(("Error", "Exception")) and " " not in head and ":" in line:
            return line.strip()[:200]
    return ""


def _same_values(got: list, want: list) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if isinstance(w, (int, float)) and not isinstance(w, bool):
            if not isinstance(g, (int, float)) or not math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-9):
                return False
        elif g != w:
            return False
    return True


# ------------------------------------------------------------------------------------------- servers


class MlflowServe:
    """``mlflow models serve -m <model> --env-manager local`` on a free loopback port."""

    def __init__(self, model: Path, log: Path, startup_timeout: float = 120):
        self.model = model
        self.log = log
        self.port = 0
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.startup_timeout = startup_timeout

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "MlflowServe":
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTHONPATH")}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        bin_dir = str(Path(sys.executable).parent)
        # `mlflow models serve` runs `uvicorn` by name: the venv's bin must be on PATH.
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        mlflow_exe = Path(bin_dir) / "mlflow"
        command = [str(mlflow_exe), "models", "serve", "-m", str(self.model), "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(self.port)]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited ({self.process.returncode}); see {self.log}")
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"mlflow models serve not ready after {self.startup_timeout}s; see {self.log}")
            try:
                with urllib.request.urlopen(self.http_url + "/ping", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (OSError, ValueError):
                pass
            time.sleep(0.3)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def __exit__(self, *exc: Any) -> None:
        if self.process is None:
            return
        pgid = self.process.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


def mlserver_root(base: Path, flavour: str, kinds: list[str], models: dict[str, Path]) -> tuple[Path, list[str]]:
    """A model repository for one MLServer: the floor, MLServer's MLflow runtime, or ours."""
    root = base / flavour
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if flavour == "floor":
        folder = root / "floor"
        folder.mkdir()
        # MLServer puts the model folder on sys.path while importing the implementation.
        shutil.copy(HERE / "floor_runtime.py", folder / "floor_runtime.py")
        write_model_settings(folder, "floor", implementation="floor_runtime.FloorRuntime")
        return root, ["floor"]
    for kind in kinds:
        if flavour.startswith("mlserver-mlflow"):
            write_model_settings(root / kind, kind, uri=str(models[kind]),
                                 implementation="mlserver_mlflow.MLflowRuntime")
        else:
            extra = {"default_invocations_model": True} if kind == BARE_MODEL else {}
            write_model_settings(root / kind, kind, uri=str(models[kind]), extra=extra)
    return root, list(kinds)


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Run:
    args: argparse.Namespace
    out: Path
    models: dict[str, Path]
    load: LoadGenerator
    bodies: dict[tuple, Path] = field(default_factory=dict)
    #: Inference-Header-Content-Length of each binary body.
    header_lengths: dict[Path, int] = field(default_factory=dict)
    expected: dict[tuple[str, int], list] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    sequential_10k: dict[str, float] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        print(message, flush=True)

    def body(self, case: Case, server: str = "") -> Path:
        """The request body file of ``case`` (for gRPC, the serialized request to ``server``'s model)."""
        model = model_name(case, server) if case.transport == "grpc" else ""
        key = (case.kind, case.protocol, case.rows, case.transport, model)
        if key not in self.bodies:
            path = self.out / "work" / "bodies" / f"{case.kind}-{case.protocol}-{case.rows}-{case.transport}{model}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            if case.transport == "grpc":
                path.write_bytes(bench_models.grpc_request(case.kind, case.rows, model))
            elif case.transport == "binary":
                body, length = bench_models.v2_binary_body(case.kind, case.rows)
                path.write_bytes(body)
                self.header_lengths[path] = length
            else:
                maker = bench_models.v2_body if case.protocol == "v2" else bench_models.invocations_body
                path.write_bytes(maker(case.kind, case.rows))
            self.bodies[key] = path
        return self.bodies[key]

    def first_answer(self, case: Case, server: str, url: str, grpc_url: Optional[str],
                     body_file: Path) -> tuple[int, str, Optional[list]]:
        """One request: (status, error text, the answer's values) -- status 0 for a gRPC OK."""
        if case.transport == "grpc":
            if not grpc_url:
                return 404, "no gRPC server", None
            code, answer = _grpc_call(grpc_url, body_file.read_bytes())
            if code:
                return 500, str(answer)[:160], None
            return 200, "", bench_models.grpc_answer_values(answer)
        headers = {"Content-Type": JSON}
        if case.transport == "binary":
            headers["Inference-Header-Content-Length"] = str(self.header_lengths[body_file])
        status, answer, reply_headers = _post_full(url, body_file.read_bytes(), headers)
        if status != 200:
            return status, answer[:160].decode(errors="replace"), None
        try:
            if case.transport == "binary":
                length = reply_headers.get("inference-header-content-length")
                return status, "", bench_models.binary_answer_values(answer, int(length) if length else None)
            return status, "", bench_models.answer_values(case.protocol, json.loads(answer))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return status, "", [f"unreadable answer: {exc}"]

    def expected_values(self, kind: str, rows: int) -> list:
        key = (kind, rows)
        if key not in self.expected:
            import mlflow.pyfunc

            model = mlflow.pyfunc.load_model(str(self.models[kind]))
            prediction = model.predict(bench_models.model_input(kind, rows))
            if hasattr(prediction, "to_dict") and not isinstance(prediction, list):
                prediction = prediction.to_dict(orient="records")
            if hasattr(prediction, "tolist"):
                prediction = prediction.tolist()
            self.expected[key] = bench_models.leaves(prediction)
        return self.expected[key]

    def measure(self, case: Case, server: str, workers: Optional[int], base_url: str,
                pid: Optional[int] = None, log_text: Optional[Any] = None, grpc_url: Optional[str] = None) -> Result:
        path = endpoint(case, server)
        client = "grpc.aio" if case.transport == "grpc" else self.load.kind
        result = Result(case.id, case.kind, case.protocol, case.rows, server, workers, path, client=client)
        body_file = self.body(case, server)
        status, error_text, got = self.first_answer(case, server, base_url + path, grpc_url, body_file)
        if status == 404:
            result.status, result.note = "skipped", f"POST {path} answered 404: route not there (yet)"
            self.log(f"    {server:16s} SKIPPED: {result.note}")
            return result
        if status != 200:
            result.status = "error"
            result.note = f"HTTP {status}: {error_text}"
            cause = _last_exception(log_text() if log_text else "")
            if status >= 500 and cause:
                result.note += f" (server log: {cause})"
            self.log(f"    {server:16s} ERROR {result.note}")
            return result
        if server != "floor":
            want = self.expected_values(case.kind, case.rows)
            if not _same_values(got, want):
                result.status = "wrong-answer"
                result.note = f"answered {str(got)[:80]}, model predicts {str(want)[:80]}"
                self.log(f"    {server:16s} WRONG ANSWER: {result.note}")
                return result
        url = base_url + path
        headers = ({"Inference-Header-Content-Length": str(self.header_lengths[body_file])}
                   if case.transport == "binary" else {})

        def load(seconds: float) -> dict[str, Any]:
            if case.transport == "grpc":
                return self.load.run_grpc(grpc_url, body_file.read_bytes(), seconds)
            return self.load.run(url, body_file, JSON, seconds, headers)

        load(self.args.warmup)
        cpu_before = group_cpu_seconds(pid)
        stats = load(self.args.duration)
        cpu_after = group_cpu_seconds(pid)
        result.rps, result.p50_ms, result.p99_ms = stats["rps"], stats["p50_ms"], stats["p99_ms"]
        result.requests, result.errors = stats["requests"], stats["errors"]
        if cpu_before is not None and cpu_after is not None and stats["requests"]:
            result.cpu_ms_per_req = (cpu_after - cpu_before) * 1e3 / stats["requests"]
        if not result.requests:
            result.rps = result.p50_ms = result.p99_ms = None
            result.status = "error"
            result.note = f"no request completed in {self.args.duration:g} s"
        elif result.errors:
            result.note = f"{result.errors} failed requests during the load"
        self.log(
            f"    {server:16s} {_fmt(result.rps):>8s} req/s  p50 {_fmt(result.p50_ms, 2):>7s} ms  "
            f"p99 {_fmt(result.p99_ms, 2):>7s} ms  cpu {_fmt(result.cpu_ms_per_req, 2):>6s} ms/req  "
            f"({result.requests} requests{', ' + result.note if result.note else ''})"
        )
        if self.args.py_spy and pid and server in ("ours", "ours-bare", "floor") and case.id in self.args.py_spy_cases:
            self.py_spy(case, server, workers, url, body_file, pid, lambda seconds: load(seconds))
        return result

    def py_spy(self, case: Case, server: str, workers: Optional[int], url: str, body_file: Path, pid: int,
               load: Any = None) -> None:
        """One more load run (not counted) with py-spy sampling the server and its workers.

        The floor is profiled too: side by side, the two profiles show what our runtime adds per request.
        """
        from pyspy_summary import summarize

        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(exe).exists():
            self.log("    py-spy: not installed (pip install py-spy); no profile")
            return
        slug = f'{server}-{case.id.replace(" ", "-").replace("/", "")}'
        raw = self.out / f"pyspy-{slug}-w{workers}.raw.txt"
        seconds = max(3, round(self.args.duration))
        spy = subprocess.Popen([exe, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
                                "--format", "raw", "--rate", "200", "--duration", str(seconds), "-o", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        if load is not None:
            load(seconds)
        else:
            self.load.run(url, body_file, JSON, seconds)
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if not raw.exists():
            self.log(f"    py-spy failed: {err.decode(errors='replace')[-300:]}")
            return
        text = summarize(raw, main_pid=pid)
        under = (f"a Python grpc.aio client, {self.load.connections} calls in flight" if case.transport == "grpc"
                 else self.load.label)
        header = (f"py-spy of {server}, {case.id}, parallel_workers={workers}, under {under}, "
                  f"{seconds} s at 200 Hz (--nonblocking)\n\n")
        (self.out / f"pyspy-{slug}-w{workers}.txt").write_text(header + text)
        self.profiles.append(header + text)
        self.log(f"    py-spy profile: pyspy-{slug}-w{workers}.txt")

    def measure_sequential_10k(self, flavour: str, base_url: str) -> None:
        """The 10,000-row target's denominator: unloaded sequential requests of that body."""
        case = Case("wine", "v2", 10000, ())
        url = base_url + endpoint(case, flavour)
        status, _ = _post(url, self.body(case).read_bytes())
        if status == 200:
            self.sequential_10k[flavour] = self.sequential(url, self.body(case))

    def sequential(self, url: str, body_file: Path, n: int = 15) -> float:
        body = body_file.read_bytes()
        _post(url, body)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            _post(url, body)
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1e3

    # -- servers --------------------------------------------------------------------------------

    def run_mlserver(self, flavour: str, workers: int, cases: list[tuple[Case, str]]) -> None:
        if not cases:
            return
        kinds = sorted({c.kind for c, _ in cases})
        root, names = mlserver_root(self.out / "work" / "servers" / f"w{workers}", flavour, kinds, self.models)
        self.log(f"  starting MLServer [{flavour}] parallel_workers={workers} with {names}")
        try:
            server = MLServerProcess(root, parallel_workers=workers, models=names, startup_timeout=180)
            server.start()
        except Exception as exc:  # noqa: BLE001 - report and go on with the other servers
            for case, role in cases:
                self.results.append(Result(case.id, case.kind, case.protocol, case.rows, role, workers,
                                           endpoint(case, role), status="error",
                                           note=f"server did not start: {str(exc)[:200]}"))
            self.log(f"  FAILED to start: {str(exc)[:500]}")
            return
        try:
            for case, role in cases:
                self.log(f"  {case.id}  (parallel_workers={workers})")
                self.results.append(self.measure(case, role, workers, server.http_url, server.pid,
                                                 server.log_text, server.grpc_url))
            if workers == 1 and (flavour == "floor" or (flavour == "ours" and "wine" in kinds)):
                self.measure_sequential_10k(flavour, server.http_url)
        finally:
            server.stop()

    def run_mlflow_serve(self, kind: str, cases: list[Case]) -> None:
        if not cases:
            return
        self.log(f"  starting mlflow models serve -m <{kind}> --env-manager local")
        try:
            server = MlflowServe(self.models[kind], self.out / "work" / f"mlflow-serve-{kind}.log").__enter__()
        except Exception as exc:  # noqa: BLE001
            for case in cases:
                self.results.append(Result(case.id, case.kind, case.protocol, case.rows, "mlflow-serve", None,
                                           "/invocations", status="error", note=str(exc)[:200]))
            self.log(f"  FAILED to start: {exc}")
            return
        try:
            for case in cases:
                self.log(f"  {case.id}")
                self.results.append(self.measure(case, "mlflow-serve", None, server.http_url,
                                                 pid=server.process.pid if server.process else None,
                                                 log_text=server.log_text))
        finally:
            server.__exit__(None, None, None)


def execute(run: Run, cases: list[Case]) -> None:
    for workers in run.args.workers:
        run.log(f"\n== MLServer parallel_workers={workers} ==")
        floor = [(c, "floor") for c in cases if "floor" in c.servers]
        run.run_mlserver("floor", workers, floor)
        # MLServer's MLflow runtime mounts /invocations for whichever model registers first: the wine
        # model gets a server of its own so that /invocations is surely the wine model's.
        mm = [(c, "mlserver-mlflow") for c in cases if "mlserver-mlflow" in c.servers]
        run.run_mlserver("mlserver-mlflow-wine", workers, [x for x in mm if x[0].kind == "wine"])
        run.run_mlserver("mlserver-mlflow-others", workers, [x for x in mm if x[0].kind != "wine"])
        ours = [(c, s) for c in cases for s in ("ours", "ours-bare") if s in c.servers]
        run.run_mlserver("ours", workers, ours)
    run.log("\n== mlflow models serve (one uvicorn worker; no parallel_workers setting) ==")
    for kind in bench_models.KINDS:
        run.run_mlflow_serve(kind, [c for c in cases if c.kind == kind and "mlflow-serve" in c.servers])


@dataclass
class Live:
    """A running server the interleaved schedule sends load to."""

    url: str
    pid: Optional[int]
    log_text: Any
    grpc_url: Optional[str] = None


def execute_interleaved(run: Run, cases: list[Case], slices: int) -> list[list[Result]]:
    """Every server up at once, measurements taken in turns: slice after slice, each case's servers
    back to back. Other load on the machine comes and goes over minutes; taking the servers' numbers
    seconds apart, many times, lets it move all of them alike instead of whichever ran at that moment.
    Returns one list of results per slice (medians are taken by :func:`merge_rounds`)."""
    per_slice: list[list[Result]] = [[] for _ in range(slices)]
    for workers in run.args.workers:
        run.log(f"\n== MLServer parallel_workers={workers}: every server up, {slices} interleaved slices ==")
        with contextlib.ExitStack() as stack:
            live: dict[tuple[str, str], Optional[Live]] = {}

            def start_mlserver(flavour: str, kinds: list[str]) -> Optional[Live]:
                root, names = mlserver_root(run.out / "work" / "servers" / f"w{workers}", flavour, kinds, run.models)
                run.log(f"  starting MLServer [{flavour}] parallel_workers={workers} with {names}")
                try:
                    server = MLServerProcess(root, parallel_workers=workers, models=names, startup_timeout=180)
                    server.start()
                except Exception as exc:  # noqa: BLE001 - report in the table, go on with the others
                    run.log(f"  FAILED to start: {str(exc)[:500]}")
                    return None
                stack.callback(server.stop)
                return Live(server.http_url, server.pid, server.log_text, server.grpc_url)

            def needed(role: str, kind_filter: Any = lambda k: True) -> list[str]:
                return sorted({c.kind for c in cases if role in c.servers and kind_filter(c.kind)})

            if needed("floor"):
                live[("floor", "*")] = start_mlserver("floor", [])
            if needed("mlserver-mlflow", lambda k: k == "wine"):
                live[("mlserver-mlflow", "wine")] = start_mlserver("mlserver-mlflow-wine", ["wine"])
            others = needed("mlserver-mlflow", lambda k: k != "wine")
            if others:
                live[("mlserver-mlflow", "*")] = start_mlserver("mlserver-mlflow-others", others)
            ours_kinds = sorted(set(needed("ours")) | set(needed("ours-bare")))
            if ours_kinds:
                live[("ours", "*")] = start_mlserver("ours", ours_kinds)
            for kind in needed("mlflow-serve"):
                run.log(f"  starting mlflow models serve -m <{kind}> --env-manager local")
                try:
                    serve = MlflowServe(run.models[kind], run.out / "work" / f"mlflow-serve-{kind}-w{workers}.log")
                    serve.__enter__()
                except Exception as exc:  # noqa: BLE001
                    run.log(f"  FAILED to start: {exc}")
                    live[("mlflow-serve", kind)] = None
                    continue
                stack.callback(serve.__exit__, None, None, None)
                live[("mlflow-serve", kind)] = Live(serve.http_url, serve.process.pid if serve.process else None,
                                                    serve.log_text)

            def server_for(role: str, kind: str) -> Optional[Live]:
                key = "ours" if role == "ours-bare" else role
                if (key, kind) in live:
                    return live[(key, kind)]
                return live.get((key, "*"))

            for number in range(slices):
                run.log(f"  -- slice {number + 1} of {slices}")
                for case in cases:
                    run.log(f"  {case.id}  (parallel_workers={workers})")
                    for role in case.servers:
                        role_workers = None if role == "mlflow-serve" else workers
                        target = server_for(role, case.kind)
                        if target is None:
                            per_slice[number].append(Result(
                                case.id, case.kind, case.protocol, case.rows, role, role_workers,
                                endpoint(case, role), status="error", note="server did not start"))
                            continue
                        per_slice[number].append(run.measure(case, role, role_workers, target.url, target.pid,
                                                             target.log_text, target.grpc_url))
            if workers == 1:
                for flavour, key in (("floor", ("floor", "*")), ("ours", ("ours", "*"))):
                    target = live.get(key)
                    if target is not None and (flavour == "floor" or "wine" in ours_kinds):
                        run.measure_sequential_10k(flavour, target.url)
    return per_slice


# ------------------------------------------------------------------------------------------ report


def _median(values: list) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def merge_rounds(rounds: list[list[Result]]) -> list[Result]:
    """One result per (case, server, workers): the median of each number over the rounds.

    A burst of other load on the machine moves one round, not the median; the spread is kept in
    ``round_rps`` and the notes. (``mlflow models serve`` has no workers setting: its measurements from
    the passes at each ``parallel_workers`` value are pooled.)
    """
    merged: list[Result] = []
    keys: dict[tuple, list[Result]] = {}
    for results in rounds:
        for r in results:
            keys.setdefault((r.case, r.server, r.workers), []).append(r)
    for group in keys.values():
        ok = [r for r in group if r.status == "ok"]
        base = ok[0] if ok else group[0]
        out = Result(**{**asdict(base), "round_rps": [r.rps for r in group]})
        if ok:
            out.rps = _median([r.rps for r in ok])
            out.p50_ms = _median([r.p50_ms for r in ok])
            out.p99_ms = _median([r.p99_ms for r in ok])
            out.cpu_ms_per_req = _median([r.cpu_ms_per_req for r in ok])
            out.requests = sum(r.requests for r in ok)
            out.errors = sum(r.errors for r in ok)
            spread = [r.rps for r in ok if r.rps is not None]
            out.note = (f"median of {len(ok)} ({_fmt(min(spread))}-{_fmt(max(spread))} req/s)"
                        if len(spread) > 1 else "")
            failed = len(group) - len(ok)
            if failed:
                out.note += f"; {failed} round(s) failed: {[r.note for r in group if r.status != 'ok'][:1]}"
        merged.append(out)
    return merged


def lookup(results: list[Result], case: str, server: str, workers: Optional[int]) -> Optional[Result]:
    for r in results:
        if r.case == case and r.server == server and r.status == "ok":
            if server == "mlflow-serve" or r.workers == workers:
                return r
    return None


def ours_for(results: list[Result], case: Case, workers: int) -> Optional[Result]:
    """Our number for a case: the bare /invocations (what MLflow clients call) if measured, else the
    per-model route."""
    if case.protocol == "invocations":
        return lookup(results, case.id, "ours-bare", workers) or lookup(results, case.id, "ours", workers)
    return lookup(results, case.id, "ours", workers)


@dataclass
class Target:
    name: str
    value: Optional[float]
    threshold: float
    higher_is_better: bool
    detail: str

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "N/A"
        ok = self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold
        return "PASS" if ok else "FAIL"

    def line(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        # Three decimals near the threshold, so that a FAIL never reads like the threshold itself.
        near = self.value is not None and abs(self.value - self.threshold) < 0.01
        value = "-" if self.value is None else f"{self.value:.3f}" if near else f"{self.value:.2f}"
        return f"{self.verdict:4s}  {self.name}: {value} (target {op} {self.threshold:g}) {self.detail}"


def targets(results: list[Result], analysis: dict[str, Any]) -> list[Target]:
    out = []

    def ratio_target(name: str, case_id: str, ref: str, workers: int, threshold: float) -> None:
        mine = lookup(results, case_id, "ours-bare", workers) or lookup(results, case_id, "ours", workers)
        other = lookup(results, case_id, ref, workers)
        value = _ratio(mine.rps if mine else None, other.rps if other else None)
        detail = (f"[{SERVER_LABELS[mine.server] if mine else 'ours: not measured'} {_fmt(mine.rps if mine else None)} "
                  f"vs {SERVER_LABELS[ref]} {_fmt(other.rps if other else None)} req/s")
        cpu = _ratio(other.cpu_ms_per_req if other else None, mine.cpu_ms_per_req if mine else None)
        if cpu is not None:
            detail += f"; by server CPU per request: {cpu:.2f}"
        detail += "]"
        out.append(Target(name, value, threshold, True, detail))

    def pair_target(name: str, mine: Optional[Result], other: Optional[Result], threshold: float,
                    labels: tuple[str, str]) -> None:
        value = _ratio(mine.rps if mine else None, other.rps if other else None)
        detail = f"[{labels[0]} {_fmt(mine.rps if mine else None)} vs {labels[1]} {_fmt(other.rps if other else None)} req/s"
        cpu = _ratio(other.cpu_ms_per_req if other else None, mine.cpu_ms_per_req if mine else None)
        if cpu is not None:
            detail += f"; by server CPU per request: {cpu:.2f}"
        out.append(Target(name, value, threshold, True, detail + "]"))

    # Issue #6 (round 1), still in force; the single-process trivial floor is raised by issue #16.
    ratio_target("trivial V2 1 row, ours / floor, parallel_workers=1", "trivial V2 1 row", "floor", 1, 0.85)
    ratio_target("trivial V2 1 row, ours / floor, parallel_workers=0", "trivial V2 1 row", "floor", 0, 0.9)
    ratio_target("wine V2 1 row, ours / MLServer MLflowRuntime, parallel_workers=1", "wine V2 1 row", "mlserver-mlflow", 1, 3)
    ratio_target("wine V2 1 row, ours / MLServer MLflowRuntime, parallel_workers=0", "wine V2 1 row", "mlserver-mlflow", 0, 2.5)
    ratio_target("wine /invocations 1 row, ours / mlflow models serve, parallel_workers=1", "wine /invocations 1 row", "mlflow-serve", 1, 4)
    ratio_target("wine /invocations 1 row, ours / mlflow models serve, parallel_workers=0", "wine /invocations 1 row", "mlflow-serve", 0, 3)
    # Issue #16 (round 2).
    ratio_target("wine V2 1 row, ours / floor, parallel_workers=0", "wine V2 1 row", "floor", 0, 0.5)
    for workers in (1, 0):
        ratio_target(f"wine V2 10,000 rows (JSON), ours / floor, parallel_workers={workers}", "wine V2 10000 rows",
                     "floor", workers, 1.3)
    for workers in (1, 0):
        pair_target(f"wine V2 10,000 rows, binary tensors / our JSON, parallel_workers={workers}",
                    lookup(results, "wine V2 10000 rows binary", "ours", workers),
                    lookup(results, "wine V2 10000 rows", "ours", workers), 3, ("ours binary", "ours JSON"))
    for rows in (1, 10000):
        rest_id, grpc_id = f"wine V2 {rows} row{'s' if rows > 1 else ''}", f"wine gRPC {rows} row{'s' if rows > 1 else ''}"
        for workers in (1, 0):
            for ref in ("floor", "mlserver-mlflow"):
                def rps(case_id: str, server: str) -> Optional[float]:
                    found = lookup(results, case_id, server, workers)
                    return found.rps if found else None

                grpc_ratio = _ratio(rps(grpc_id, "ours"), rps(grpc_id, ref))
                rest_ratio = _ratio(rps(rest_id, "ours"), rps(rest_id, ref))
                value = _ratio(grpc_ratio, rest_ratio)
                detail = (f"[gRPC ours / {SERVER_LABELS[ref]} {_fmt(grpc_ratio, 2)} "
                          f"({_fmt(rps(grpc_id, 'ours'))} vs {_fmt(rps(grpc_id, ref))} req/s), REST "
                          f"{_fmt(rest_ratio, 2)}]")
                out.append(Target(f"wine gRPC {rows} row{'s' if rows > 1 else ''}, (ours / {SERVER_LABELS[ref]}) "
                                  f"over gRPC / over REST, parallel_workers={workers}", value, 1.0, True, detail))
    binary = [r for r in results if r.case.endswith(" binary") and r.server == "ours"]
    if binary:
        ok = [r for r in binary if r.status == "ok"]
        out.append(Target("tritonclient.http defaults (binary tensors both ways): cases answered, equal to the model's "
                          "predict", len(ok) / len(binary), 1.0, True,
                          f"[{len(ok)} of {len(binary)}: {sorted({r.case for r in ok})}"
                          + (f"; failed: {[(r.case, r.note[:80]) for r in binary if r.status != 'ok']}" if len(ok) < len(binary) else "")
                          + "]"))
    share = analysis.get("share")
    if share:
        out.append(Target("wine V2 10,000 rows, (decode + encode) / total request time", share["value"], 0.20, False,
                          f"[{share['detail']}]"))
    copies = analysis.get("copies")
    if copies:
        # Not rounded: the peak also holds the DataFrame's own bookkeeping and, while a column is
        # converted, its values' pointers (see codec.values.plain_floats); all of it counts.
        out.append(Target("wine V2 10,000 rows, payload copies alive on the way to the model (tracemalloc peak / payload)",
                          copies["copies_peak"], 2.0, False,
                          f"[peak {copies['fast']['peak'] / 1e6:.2f} MB for a {copies['payload_bytes'] / 1e6:.2f} MB payload; "
                          f"{copies['mlflow_copies_peak']:.1f} with MLflow's enforcement]"))
    return out


def markdown(run: Run, cases: list[Case], analysis: dict[str, Any], target_list: list[Target], meta: dict[str, Any]) -> str:
    results = run.results
    lines = [f"# mlserver-sigaware benchmark, {meta['started']}", ""]
    lines.append(f"- mode: {'quick' if run.args.quick else 'full'}; {run.args.warmup:g} s warm-up + "
                 f"{run.args.duration:g} s per measurement; load: **{run.load.label}**")
    if run.args.rounds > 1 and run.args.interleave:
        lines.append(f"- every server up at once; {run.args.rounds} interleaved rounds (each round measures every "
                     f"case on each of its servers in turn); each number below is the median over the rounds")
    elif run.args.rounds > 1:
        lines.append(f"- {run.args.rounds} rounds (every server restarted and every case measured again each "
                     f"round); each number below is the median over the rounds")
    lines.append(f"- machine: {meta['machine']}; load average at start {meta['loadavg']}")
    lines.append("- every number: closed loop, the load generator on the same machine; req/s = answered requests / s")
    lines.append("")
    lines.append("## Throughput and latency")
    lines.append("")
    lines.append("| case | parallel_workers | server | endpoint | req/s | p50 ms | p99 ms | server CPU ms/req | note |")
    lines.append("|---|---|---|---|---:|---:|---:|---:|---|")
    for case in cases:
        rows = [r for r in results if r.case == case.id]
        rows.sort(key=lambda r: (-1 if r.workers is None else -r.workers, SERVERS.index(r.server)))
        for r in rows:
            w = "n/a" if r.workers is None else str(r.workers)
            status = "" if r.status == "ok" else f"**{r.status}** "
            lines.append(f"| {case.id} | {w} | {SERVER_LABELS[r.server]} | `{r.endpoint}` | {_fmt(r.rps)} | "
                         f"{_fmt(r.p50_ms, 2)} | {_fmt(r.p99_ms, 2)} | {_fmt(r.cpu_ms_per_req, 2)} | {status}{r.note} |")
    lines.append("")
    lines.append("## Ours relative to the floor and the references (req/s ratio; >1: ours serves more)")
    lines.append("")
    lines.append("Each cell: req/s ratio, and in brackets the same ratio computed from server CPU per request "
                 "(reference's CPU ms/req ÷ ours), which other load on the machine disturbs much less.")
    lines.append("")
    lines.append("| case | parallel_workers | ours req/s | ours ÷ floor | ours ÷ MLServer MLflowRuntime | ours ÷ mlflow models serve |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for case in cases:
        for workers in run.args.workers:
            mine = ours_for(results, case, workers)
            if mine is None:
                continue
            cells = []
            for ref in ("floor", "mlserver-mlflow", "mlflow-serve"):
                other = lookup(results, case.id, ref, workers)
                v = _ratio(mine.rps, other.rps if other else None)
                c = _ratio(other.cpu_ms_per_req if other else None, mine.cpu_ms_per_req)
                cell = "-" if v is None else f"{v:.2f}×"
                if c is not None:
                    cell += f" ({c:.2f}×)"
                cells.append(cell)
            label = case.id + (" (bare)" if mine.server == "ours-bare" else "")
            lines.append(f"| {label} | {workers} | {_fmt(mine.rps)} | {' | '.join(cells)} |")
    lines.append("")
    lines.append("## Targets (issues #6 and #16)")
    lines.append("")
    lines.append("```")
    lines.extend(t.line() for t in target_list)
    lines.append("```")
    lines.append("")
    lines.extend(analysis_markdown(analysis))
    for profile in run.profiles:
        lines.append("## py-spy under load (ours and the floor)")
        lines.append("")
        lines.append("```")
        lines.append(profile.rstrip())
        lines.append("```")
        lines.append("")
    return "\n".join(lines) + "\n"


def analysis_markdown(analysis: dict[str, Any]) -> list[str]:
    from analysis import fmt_bytes

    lines = ["## 10,000 rows: where the time and the memory go (our runtime, in process)", ""]
    stages = analysis.get("stages")
    if stages:
        total = stages["total_in_process"]
        lines.append("Median of repeated runs of one wine V2 request of 10,000 rows (13 FP64 inputs), each stage alone:")
        lines.append("")
        lines.append("| stage | ms | share of in-process total |")
        lines.append("|---|---:|---:|")
        names = {
            "parse": "our V2 route: JSON body -> InferenceRequest (simdjson arrays + orjson/pydantic)",
            "decode": "ours: `served.decoder.decode`",
            "predict": "ours: `served.predictor(..., enforce=False)` (the model)",
            "encode": "ours: `served.encoder.encode` (numeric outputs as arrays)",
            "serialize": "our V2 route: InferenceResponse -> JSON bytes",
        }
        for key, label in names.items():
            lines.append(f"| {label} | {stages[key]:.2f} | {stages[key] / total:.0%} |")
        lines.append(f"| **total in process** | {total:.2f} | 100% |")
        lines.append(f"| *(MLServer's own route, for reference: parse, orjson + pydantic)* | {stages['mlserver_parse']:.2f} | |")
        lines.append(f"| *(MLServer's own route, for reference: serialize, FastAPI + orjson)* | {stages['mlserver_serialize']:.2f} | |")
        lines.append(f"| *(skipped by the fast path: MLflow's schema enforcement)* | {stages['mlflow_enforce']:.2f} | |")
        lines.append("")
        if analysis.get("invocations_10k_ms"):
            lines.append(f"The same 10,000 rows as an MLflow `dataframe_split` body through our whole `/invocations` "
                         f"handling (`scoring.invoke`: JSON parse, decode, predict, MLflow-identical JSON "
                         f"answer): {analysis['invocations_10k_ms']:.1f} ms.")
            lines.append("")
        share = analysis.get("share")
        if share:
            lines.append(f"Decode + encode: {share['detail']}.")
            lines.append("")
    copies = analysis.get("copies")
    if copies:
        pb = copies["payload_bytes"]
        lines.append(
            f"Memory (tracemalloc), payload = 10,000 x 13 float64 = {fmt_bytes(pb)}. From the parsed "
            f"`InferenceRequest` to the moment the model is called:"
        )
        lines.append("")
        lines.append("| path | peak | live at the model call | copies (peak / payload) |")
        lines.append("|---|---:|---:|---:|")
        f, m = copies["fast"], copies["mlflow_enforce"]
        lines.append(f"| ours (fast path) | {fmt_bytes(f['peak'])} | {fmt_bytes(f['live'])} | {f['peak'] / pb:.2f} |")
        lines.append(f"| ours + MLflow enforcement (`enforce=True`) | {fmt_bytes(m['peak'])} | {fmt_bytes(m['live'])} | {m['peak'] / pb:.2f} |")
        lines.append("")
        lines.append("Large live blocks at the model call (fast path): " + ", ".join(
            f"`{where}` {fmt_bytes(size)}" for where, size in f["live_blocks"]) + ".")
        lines.append(
            f"Before our runtime, MLServer's parse holds the same values as Python floats: "
            f"{fmt_bytes(copies['mlserver_request_live'])} live, {fmt_bytes(copies['mlserver_request_peak'])} peak."
        )
        lines.append("")
    profile = analysis.get("profile")
    if profile:
        lines.append("## One row: `SignatureAwareRuntime.predict` in process (wine)")
        lines.append("")
        st = profile["stages_us"]
        lines.append(f"`runtime.predict` {profile['predict_us']:.0f} µs per request; stages alone (µs): "
                     + ", ".join(f"{k} {v:.0f}" for k, v in st.items() if k != "total_in_process")
                     + ". cProfile (top by own time, and cumulative): `profile.txt`.")
        lines.append("")
    return lines


def chart(run: Run, cases: list[Case], path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    groups = []
    for case in cases:
        for workers in run.args.workers:
            groups.append((case, workers))
    series = list(SERVERS)
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(10, len(groups) * 0.9), 5.5))
    colors = {"floor": "#9e9e9e", "mlserver-mlflow": "#f28e2b", "mlflow-serve": "#e15759", "ours": "#4e79a7", "ours-bare": "#76b7b2"}
    for i, server in enumerate(series):
        values = []
        for case, workers in groups:
            r = lookup(run.results, case.id, server, workers)
            values.append(r.rps if r and r.rps else 0)
        xs = [g + (i - len(series) / 2 + 0.5) * width for g in range(len(groups))]
        ax.bar(xs, values, width, label=SERVER_LABELS[server], color=colors[server])
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{c.id}\nworkers={w}" for c, w in groups], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("requests / s (log)")
    ax.set_yscale("log")
    ax.set_title(f"mlserver-sigaware vs references ({run.load.kind} -c{run.args.connections}; "
                 f"mlflow models serve has no workers setting: same bar in both)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -------------------------------------------------------------------------------------------- main


def run_analysis(run: Run) -> dict[str, Any]:
    import analysis as an

    out: dict[str, Any] = {}
    served = an.load_served(run.models["wine"])
    body = bench_models.v2_body("wine", 10000)
    run.log("  stage times, 10,000 rows ...")
    stages = an.stage_times(served, body, reps=5 if run.args.quick else 11)
    out["stages"] = stages
    try:
        out["invocations_10k_ms"] = an.invocations_time(
            served, bench_models.invocations_body("wine", 10000), reps=3 if run.args.quick else 5)
    except Exception as exc:  # noqa: BLE001 - the route's module may be mid-change
        out["invocations_10k_ms"] = None
        run.log(f"  /invocations in process failed: {exc}")
    ours_share = stages["decode"] + stages["encode"]
    e2e = run.sequential_10k.get("ours")
    if e2e:
        out["share"] = {
            "value": ours_share / e2e,
            "detail": (f"{ours_share:.1f} ms (in process) of {e2e:.1f} ms, the median of sequential unloaded "
                       f"HTTP requests to our server (parallel_workers=1) = {ours_share / e2e:.0%}; "
                       f"{ours_share / stages['total_in_process']:.0%} of the in-process total "
                       f"{stages['total_in_process']:.1f} ms"
                       + (f"; the floor server answers the same body in {run.sequential_10k['floor']:.1f} ms"
                          if "floor" in run.sequential_10k else "")),
        }
    else:
        out["share"] = {
            "value": ours_share / stages["total_in_process"],
            "detail": (f"{ours_share:.1f} ms of the in-process total {stages['total_in_process']:.1f} ms "
                       f"(no HTTP measurement of our server in this run)"),
        }
    run.log("  tracemalloc, 10,000 rows ...")
    out["copies"] = an.payload_copies(served, body, 10000 * 13 * 8)
    run.log("  cProfile of runtime.predict, 1 row ...")
    profile = an.profile_single_row(run.models["wine"], bench_models.v2_body("wine", 1),
                                    iterations=1000 if run.args.quick else 3000)
    out["profile"] = {k: profile[k] for k in ("predict_us", "stages_us")}
    (run.out / "profile.txt").write_text(
        "cProfile of SignatureAwareRuntime.predict, wine, 1 row, "
        f"{profile['predict_us']:.0f} us per request unprofiled\n\n== by own time ==\n{profile['tottime']}\n\n"
        f"== by cumulative time ==\n{profile['cumulative']}\n"
    )
    return out


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the cases of the targets, shorter runs (~2-3 min)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 5, quick 2)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each measurement (default 1)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk if installed (auto), or the Python asyncio fallback")
    parser.add_argument("--rounds", type=int,
                        help="measure every case this many times and report the medians (default 3, quick 5): "
                             "the machines are noisy")
    parser.add_argument("--no-interleave", dest="interleave", action="store_false",
                        help="one server at a time, all rounds of it in a row, servers restarted each round "
                             "(default: every server up at once and the rounds interleaved, so that other "
                             "load on the machine moves every server's numbers alike)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 0],
                        help="MLServer parallel_workers values (default: 1 0)")
    parser.add_argument("--only", action="append",
                        help="run only cases whose id contains this text (e.g. 'wine V2'); repeat for several")
    parser.add_argument("--no-analysis", action="store_true", help="skip the in-process 10,000-row analysis and profile")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="results folder")
    parser.add_argument("--py-spy", action="store_true",
                        help="also profile our server (and its workers) and the floor with py-spy under load, "
                             "in an extra uncounted run of each --py-spy-case (needs `pip install py-spy` and "
                             "ptrace rights)")
    parser.add_argument("--py-spy-case", dest="py_spy_cases", action="append",
                        help="case id to profile with --py-spy (default: 'wine V2 1 row')")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep work/ (saved models, request bodies) in the results folder; server logs "
                             "and settings are always kept")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 2.0 if args.quick else 5.0
    if args.warmup is None:
        args.warmup = 1.0
    if args.rounds is None:
        args.rounds = 5 if args.quick else 3
    if not args.py_spy_cases:
        args.py_spy_cases = ["wine V2 1 row"]
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now()
    t_start = time.monotonic()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out = args.results / stamp
    out.mkdir(parents=True, exist_ok=True)
    load = LoadGenerator(args.client, args.connections, out)
    print(f"results: {out}\nload generator: {load.label}", flush=True)
    if load.kind == "python":
        print("NOTE: wrk not found (apt-get install -y wrk); using the Python fallback client, "
              "whose own CPU use lowers every number on a 2-core machine.", flush=True)

    cases = cases_for(args.quick)
    if args.only:
        cases = [c for c in cases if any(text in c.id for text in args.only)]
    print("building models ...", flush=True)
    models = {}
    kinds = sorted({c.kind for c in cases} | {"wine"})
    with contextlib.redirect_stdout(sys.stderr):
        for kind in kinds:
            models[kind] = bench_models.build(kind, out / "work" / "models" / kind)
    run = Run(args, out, models, load)
    rounds: list[list[Result]] = []
    if args.interleave:
        rounds = execute_interleaved(run, cases, args.rounds)
    else:
        for number in range(args.rounds):
            if args.rounds > 1:
                print(f"\n######## round {number + 1} of {args.rounds} ########", flush=True)
            run.results = []
            execute(run, cases)
            rounds.append(run.results)
    run.results = merge_rounds(rounds)
    analysis: dict[str, Any] = {}
    if not args.no_analysis:
        print("\n== in-process analysis ==", flush=True)
        analysis = run_analysis(run)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    target_list = targets(run.results, analysis)
    report = markdown(run, cases, analysis, target_list, meta)
    png = chart(run, cases, out / "chart.png")
    if png:
        report += "\n![requests per second](chart.png)\n"
    (out / "results.md").write_text(report)
    (out / "results.json").write_text(json.dumps(
        {"meta": meta, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
         "load_generator": load.label, "results": [asdict(r) for r in run.results],
         "analysis": analysis, "sequential_10k_ms": run.sequential_10k,
         "targets": [dict(asdict(t), verdict=t.verdict) for t in target_list]},
        indent=2, default=str))
    latest = report.replace("](chart.png)", f"]({stamp}/chart.png)")
    (args.results / "latest.md").write_text(latest)
    if not args.keep_work:
        # "servers" holds model-settings.json files: left behind, `mlserver start .` at the root would load them.
        for sub in ("models", "bodies", "servers"):
            shutil.rmtree(out / "work" / sub, ignore_errors=True)
    print("\n" + report)
    written = ["results.md", "results.json"] + (["chart.png"] if png else []) + (
        [] if args.no_analysis else ["profile.txt"])
    print(f"wrote {', '.join(written)} in {out} and {args.results / 'latest.md'}; "
          f"{time.monotonic() - t_start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
