"""Peak memory per request against body size, up to the largest body the server accepts (issue 12).

Starts a real ``mlserver start`` serving the benchmark's *trivial* model (13 ``double`` columns in, their
row sums out: the model itself costs almost nothing, so what is measured is the serving stack's own
copies of the request), with the server-wide limits as configured (``MLSERVER_SIGAWARE_*``, defaults
below), and for each body size and route sends one request and reads the server's peak RSS growth while
it was answered: the kernel's high-water mark (``VmHWM``) is reset before each request
(``/proc/<pid>/clear_refs``, Linux) and read after it, minus the RSS before. With ``parallel_workers``
>= 1 the growth of every process of the server is summed (an upper bound: their peaks need not coincide).

It then sends what the limits refuse (a body one byte over ``max_body_bytes``, announced and chunked, and
a gzip body inflating past ``max_decompressed_bytes``) and prints their status and peak growth.

Each route gets a fresh server (memory a request frees stays in the process's heap and would hide the
next request's growth); growth is the peak RSS while a request was answered minus the RSS at rest.

Run: ``.venv/bin/python benchmarks/memory_limits.py`` (~2 min on 2 cores); ``--workers 1`` measures with
an inference worker process; ``--sizes 1 8 31`` picks body sizes in MiB (ascending, under the limit);
``--max-body-mib N`` starts the servers with another limit.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT), str(ROOT / "tests" / "integration")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import orjson  # noqa: E402
import requests  # noqa: E402

import bench_models  # noqa: E402
from harness import MLServerProcess, write_model_settings  # noqa: E402

MiB = 1024 * 1024
MODEL = "trivial"


# ------------------------------------------------------------------------------------ measuring


def _pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_growth(pgid: int, send: Callable[[], Any]) -> tuple[Any, float]:
    """``(send()'s result, peak RSS growth in MiB)`` of the server's processes while ``send`` ran."""
    pids = _pids(pgid)
    before = {}
    for pid in pids:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS
        before[pid] = _status_kib(pid, "VmRSS")
    result = send()
    time.sleep(0.2)
    growth = sum(max(_status_kib(pid, "VmHWM") - before[pid], 0) for pid in pids if os.path.exists(f"/proc/{pid}"))
    return result, growth / 1024


# ----------------------------------------------------------------------------------------- bodies


def _rows_for(size: int, make: Callable[[int], bytes]) -> bytes:
    """The largest body ``make(rows)`` no larger than ``size`` bytes (rows found by proportion)."""
    probe = make(1000)
    rows = max(1, int(1000 * size / len(probe)))
    body = make(rows)
    while len(body) > size:
        rows = int(rows * 0.98)
        body = make(rows)
    return body


def v2_infer(rows: int) -> bytes:
    return bench_models.v2_body(MODEL, rows)


def invocations_split(rows: int) -> bytes:
    return bench_models.invocations_body(MODEL, rows)


def predict_records(rows: int) -> bytes:
    frame = bench_models.wine_rows(rows)
    return orjson.dumps({"inputs": frame.to_dict(orient="records")})


ROUTES: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "V2 /infer": (f"/v2/models/{MODEL}/infer", v2_infer),
    "/invocations (dataframe_split)": (f"/v2/models/{MODEL}/invocations", invocations_split),
    "/predict (records)": (f"/v2/models/{MODEL}/predict", predict_records),
}


def _raw_post(port: int, path: str, length: int, sent: bytes) -> int:
    """Announce ``length`` bytes, send ``sent``, return the status (the 413 needs no more)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        sock.sendall(head.encode() + sent)
        return int(sock.recv(4096).split(b" ")[1])


# ------------------------------------------------------------------------------------------- main


def _server(base: Path, folder: Path, workers: int, env: dict[str, str], name: str) -> MLServerProcess:
    write_model_settings(base / name / MODEL, MODEL, uri=str(folder))
    return MLServerProcess(base / name, parallel_workers=workers, env=env, models=[MODEL], startup_timeout=180)


def _rss(pgid: int) -> float:
    return sum(_status_kib(p, "VmRSS") for p in _pids(pgid)) / 1024


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=0, help="parallel_workers (default 0)")
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 4, 16, 31.9], help="body sizes in MiB, ascending")
    parser.add_argument("--max-body-mib", type=float, default=None, help="MLSERVER_SIGAWARE_MAX_BODY_BYTES, in MiB")
    args = parser.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if k.startswith("MLSERVER_SIGAWARE_")}
    if args.max_body_mib is not None:
        env["MLSERVER_SIGAWARE_MAX_BODY_BYTES"] = str(int(args.max_body_mib * MiB))
    os.environ.update(env)
    from mlserver_sigaware.settings import ServerSettings

    limits = ServerSettings()
    print("limits (MLSERVER_SIGAWARE_*; defaults unless set):")
    for name in ("max_body_bytes", "max_decompressed_bytes", "max_json_depth", "max_request_id_length"):
        value = getattr(limits, name)
        shown = f"{value} ({value / MiB:g} MiB)" if name.endswith("bytes") else str(value)
        print(f"  {name:24} {shown}")
    print("  gRPC: MLServer's grpc_max_message_length (settings.json; unset: gRPC's 4 MiB)")
    headers = {"Content-Type": "application/json"}

    with tempfile.TemporaryDirectory(prefix="sigaware-memory-") as tmp:
        base = Path(tmp)
        folder = bench_models.build(MODEL, base / "models" / MODEL)
        print(f"\nparallel_workers: {args.workers}; one fresh server per route; growth = peak RSS during the "
              f"request minus the server's RSS at rest (after warm-up), bodies in ascending size")
        print("\n| route | body MiB | rows | status | peak RSS growth MiB | growth / body |")
        print("|---|---:|---:|---:|---:|---:|")
        worst = 0.0
        for i, (label, (path, make)) in enumerate(ROUTES.items()):
            with _server(base, folder, args.workers, env, f"root-{i}") as server:
                pgid = server.pid
                assert pgid is not None
                for _ in range(3):  # warm-up: caches and first-use allocations are not per-request memory
                    requests.post(server.http_url + path, data=make(100), headers=headers, timeout=300)
                rest = _rss(pgid)
                for size_mib in args.sizes:
                    size = int(size_mib * MiB)
                    if size > limits.max_body_bytes:
                        continue
                    body = _rows_for(size, make)
                    doc = orjson.loads(body)
                    rows = len(doc["inputs"][0]["data"]) if "infer" in path else len(
                        doc.get("inputs") or doc["dataframe_split"]["data"])
                    del doc
                    response, _ = peak_growth(
                        pgid, lambda: requests.post(server.http_url + path, data=body, headers=headers, timeout=600)
                    )
                    peak = sum(_status_kib(p, "VmHWM") for p in _pids(pgid)) / 1024
                    growth = max(peak - rest, 0.0)
                    ratio = growth / (len(body) / MiB)
                    worst = max(worst, ratio)
                    print(f"| {label} | {len(body) / MiB:.1f} | {rows} | {response.status_code} | {growth:.0f} | {ratio:.1f}x |")
                    del body
        print(f"\nlargest growth / body size over the accepted requests: {worst:.1f}x")

        with _server(base, folder, args.workers, env, "root-refused") as server:
            pgid = server.pid
            assert pgid is not None
            url, path = server.http_url, ROUTES["V2 /infer"][0]
            requests.post(url + path, data=v2_infer(100), headers=headers, timeout=60)
            print("\nrefused by the limits (a fresh server):")
            print("| request | status | peak RSS growth MiB |")
            print("|---|---:|---:|")
            over = limits.max_body_bytes + 1
            status, growth = peak_growth(pgid, lambda: _raw_post(server.http_port, path, over, b"{"))
            print(f"| Content-Length {over} (1 byte over), body not sent | {status} | {growth:.0f} |")

            def chunked() -> Any:
                chunk = b" " * MiB

                def gen() -> Any:
                    for _ in range(int(limits.max_body_bytes / MiB) + 2):
                        yield chunk

                return requests.post(url + path, data=gen(), headers=headers, timeout=600)

            response, growth = peak_growth(pgid, chunked)
            print(f"| chunked body past {limits.max_body_bytes / MiB:g} MiB | {response.status_code} | {growth:.0f} |")
            bomb = gzip.compress(b" " * (limits.max_decompressed_bytes * 8))
            response, growth = peak_growth(
                pgid,
                lambda: requests.post(url + path, data=bomb, timeout=600, headers={**headers, "Content-Encoding": "gzip"}),
            )
            print(f"| gzip body of {len(bomb) / 1024:.0f} kB inflating to {limits.max_decompressed_bytes * 8 / MiB:g} MiB "
                  f"| {response.status_code} | {growth:.0f} |")
            ok = requests.post(url + path, data=v2_infer(10), headers=headers, timeout=60)
            print(f"\nafterwards a 10-row request: {ok.status_code}; server RSS {_rss(pgid):.0f} MiB")


if __name__ == "__main__":
    main()
