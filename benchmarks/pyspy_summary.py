"""Summarise a ``py-spy record --format raw --subprocesses`` profile of an MLServer under load.

Each raw line is ``process A:"cmd";[process B:"cmd";]frame;frame;... count`` (outermost first). We report,
per process, the share of samples (a) whose stack passes through each package ("inclusive"), (b) whose
innermost frame is in each package ("self"), and the functions of ours (``mlserver_sigaware``) and the
leaf functions that take the most samples.
"""

from __future__ import annotations

import collections
import re
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

#: (label, path prefixes) in priority order; a frame belongs to the first match.
PACKAGES = (
    ("ours (mlserver_sigaware)", ("mlserver_sigaware/",)),
    ("model: sklearn", ("sklearn/", "narwhals/", "scipy/", "joblib/", "threadpoolctl")),
    ("mlflow", ("mlflow/",)),
    ("pandas", ("pandas/",)),
    ("numpy", ("numpy/",)),
    ("mlserver", ("mlserver/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("fastapi/starlette", ("fastapi/", "starlette/")),
    ("uvicorn/h11/httptools", ("uvicorn/", "h11/", "httptools/")),
    ("prometheus/metrics", ("prometheus_client/", "starlette_exporter/")),
    ("multiprocessing/pickle", ("multiprocessing/", "pickle", "copyreg")),
    ("asyncio/uvloop", ("asyncio/", "uvloop/", "selectors.py", "concurrent/")),
)


def _package(file: str) -> str:
    for label, prefixes in PACKAGES:
        if any(file.startswith(p) or f"/{p}" in file for p in prefixes):
            return label
    return "other"


def summarize(raw: Path, main_pid: int | None = None, top: int = 15) -> str:
    per_process: dict[str, dict[str, collections.Counter]] = collections.defaultdict(
        lambda: {"incl": collections.Counter(), "self": collections.Counter(),
                 "ours": collections.Counter(), "leaf": collections.Counter(), "total": collections.Counter()}
    )
    for line in raw.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        parts = stack.split(";")
        processes = [p for p in parts if p.startswith("process ")]
        frames = [p for p in parts if not p.startswith("process ")]
        if processes:
            pid = processes[-1].split(":", 1)[0].split()[1]
            name = "main" if main_pid is not None and pid == str(main_pid) else f"worker {pid}"
            if main_pid is None:
                name = f"pid {pid}"
        else:
            name = "process"
        stats = per_process[name]
        stats["total"]["samples"] += count
        parsed = []
        for frame in frames:
            m = _FRAME.match(frame)
            if m:
                parsed.append((m.group("func"), m.group("file"), m.group("line")))
        if not parsed:
            continue
        packages = {_package(f) for _, f, _ in parsed}
        for p in packages:
            stats["incl"][p] += count
        func, file, lineno = parsed[-1]
        stats["self"][_package(file)] += count
        stats["leaf"][f"{func} ({file}:{lineno})"] += count
        ours = [(fn, f) for fn, f, _ in parsed if f.startswith("mlserver_sigaware/") or "/mlserver_sigaware/" in f]
        for fn, f in {(fn, f) for fn, f in ours}:
            stats["ours"][f"{fn} ({f})"] += count
    out = []
    for name in sorted(per_process, key=lambda n: (n != "main", n)):
        stats = per_process[name]
        total = stats["total"]["samples"] or 1
        out.append(f"== {name}: {total} samples (non-idle) ==")
        out.append("  package                      inclusive   self")
        for label in [p for p, _ in PACKAGES] + ["other"]:
            inc, slf = stats["incl"][label], stats["self"][label]
            if inc or slf:
                out.append(f"  {label:28s} {inc / total:8.1%} {slf / total:7.1%}")
        if stats["ours"]:
            out.append("  our functions (inclusive):")
            for key, n in stats["ours"].most_common(top):
                out.append(f"    {n / total:6.1%}  {key}")
        out.append("  leaf functions (self):")
        for key, n in stats["leaf"].most_common(top):
            out.append(f"    {n / total:6.1%}  {key}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # python benchmarks/pyspy_summary.py raw.txt [main pid]
    import sys

    print(summarize(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None))
