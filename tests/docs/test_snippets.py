"""Every shell and Python snippet of README.md, CONTRIBUTING.md and docs/ runs against the demo server.

The demo (what ``make serve`` serves) is started once for this module on OS-assigned ports; each
snippet runs from the checkout's root (where the docs say commands run), with ``.venv/bin`` first on
``PATH``, the documented ports (``localhost:8080`` REST, ``8081`` gRPC, ``8082`` metrics) replaced by the
test server's. A snippet passes when it exits 0 and

* shell: each ``# -> ANSWER`` matches the output of the commands just above it (JSON fields, or the
  exact text) and the status of their last ``curl``; every other ``curl`` answers 2xx;
* Python: the printed lines are exactly the ``# ->`` answers, in order.

Conventions: tests/docs/mdblocks.py. Run alone: ``.venv/bin/python -m pytest tests/docs/test_snippets.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.mdblocks import ROOT, SHELL, Block, all_blocks, subset_mismatch
from tests.integration.demo_server import demo_server

pytestmark = [pytest.mark.integration, pytest.mark.snippets]

SNIPPETS = [b for b in all_blocks() if b.runnable and b.not_run_reason is None]

#: Each snippet's time limit (seconds): the slowest ones import MLflow or tritonclient.
TIMEOUT = 120

_MARK = "@@sigaware-snippet-segment@@"
_STATUS = "@@sigaware-snippet-status@@"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("demo")) as running:
        yield running


def substitute_ports(text: str, server) -> str:
    """The documented ports become the test server's; ``localhost`` becomes the loopback it listens on."""
    ports = {"8080": server.http_port, "8081": server.grpc_port, "8082": server.metrics_port}
    text = re.sub(r"\b(808[012])\b", lambda m: str(ports[m.group(1)]), text)
    return re.sub(r"\blocalhost\b", "127.0.0.1", text)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLSERVER_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"))}
    env.pop("PYTHONPATH", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(tmp_path)
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def shell_script(block: Block, server) -> str:
    """The block as one bash script: curl reports each status on stderr, each segment ends with a mark."""
    parts = [
        "set -euo pipefail",
        # -S: a connection error is printed; -w after the snippet's options is overridden by its own -w.
        f"curl() {{ command curl -S --max-time 60 -w '%{{stderr}}{_STATUS} %{{http_code}}\\n' \"$@\"; }}",
    ]
    for n, segment in enumerate(block.segments()):
        parts.append(substitute_ports(segment.code, server))
        parts.append(f"printf '\\n{_MARK} {n}\\n'; printf '{_MARK} {n}\\n' >&2")
    return "\n".join(parts) + "\n"


def _split(output: str) -> list[str]:
    return re.split(rf"^{re.escape(_MARK)} \d+\n", output, flags=re.M)


def check_answer(expectation, output: str, statuses: list[int], where: str) -> list[str]:
    """Problems of one segment's output and curl statuses against its ``# ->`` answer (or its absence)."""
    problems = []
    expected_status = expectation.status if expectation else None
    for n, status in enumerate(statuses):
        last = n == len(statuses) - 1
        if last and expected_status is not None:
            if status != expected_status:
                problems.append(f"{where}: HTTP {status}, expected {expected_status}")
        elif not 200 <= status < 300:
            problems.append(f"{where}: HTTP {status} with no `# -> {status} ...` answer documented")
    if expected_status is not None and not statuses:
        problems.append(f"{where}: an HTTP status is expected but no curl ran")
    if expectation is None:
        return problems
    if expectation.is_json:
        try:
            actual = json.loads(output)
        except ValueError:
            return problems + [f"{where}: expected JSON, got {output!r}"]
        why = subset_mismatch(expectation.json, actual)
        if why:
            problems.append(f"{where}: {why}\n  answer: {output.strip()[:2000]}")
    elif expectation.text is not None and _lines(output) != _lines(expectation.text):
        problems.append(f"{where}: expected {expectation.text!r}, got {output.strip()!r}")
    return problems


def _lines(text: str) -> list[str]:
    """Text as its non-blank lines, each stripped (HTTP header lines end with CR)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def run_shell(block: Block, server, tmp_path: Path) -> list[str]:
    script = tmp_path / "snippet.sh"
    script.write_text(shell_script(block, server))
    done = _run(["bash", str(script)], tmp_path)
    if done.returncode != 0:
        return [f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"]
    outputs, errors = _split(done.stdout), _split(done.stderr)
    problems = []
    for n, segment in enumerate(block.segments()):
        statuses = [int(s) for s in re.findall(rf"^{re.escape(_STATUS)} (\d+)$", errors[n], flags=re.M)]
        problems += check_answer(segment.expectation, outputs[n], statuses, f"line {segment.line}")
    return problems


def run_python(block: Block, server, tmp_path: Path) -> list[str]:
    script = tmp_path / "snippet.py"
    script.write_text(substitute_ports(block.text, server))
    done = _run([sys.executable, str(script)], tmp_path)
    if done.returncode != 0:
        return [f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"]
    printed = [line for line in done.stdout.splitlines() if line.strip()]
    expected = block.expectations()
    if len(printed) != len(expected):
        return [f"printed {len(printed)} lines, the snippet documents {len(expected)} `# ->` answers:\n"
                + "\n".join(printed)]
    problems = []
    for n, (line, expectation) in enumerate(zip(printed, expected)):
        problems += check_answer(expectation, line, [], f"answer {n + 1}")
    return problems


@pytest.mark.parametrize("block", SNIPPETS, ids=[b.id for b in SNIPPETS])
def test_snippet_runs_and_answers_as_documented(block: Block, server, tmp_path):
    run = run_shell if block.lang in SHELL else run_python
    problems = run(block, server, tmp_path)
    assert not problems, f"{block.id} ({block.lang}):\n" + "\n".join(problems) + f"\n--- snippet ---\n{block.text}"
