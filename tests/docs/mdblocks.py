"""Fenced code blocks of the project's Markdown, and the conventions that make them checkable.

Which files: README.md, CONTRIBUTING.md and every ``docs/**/*.md`` (:func:`markdown_files`).

Conventions (docs/design.md, "Writing docs", explains them to authors):

* every fenced block names its language, one of :data:`LANGUAGES`; ``bash``/``sh`` and ``python``
  blocks are *runnable*: tests/docs/test_snippets.py runs each against the demo server, with the
  documented ports (``localhost:8080`` REST, ``8081`` gRPC, ``8082`` metrics) replaced by the test
  server's;
* an expected answer is a comment line ``# -> ANSWER`` right after the command (or ``print``) it
  belongs to, continued on lines that start with ``#`` and two or more spaces. ``ANSWER`` is an
  optional HTTP status (``400``) followed by JSON, whose fields must be found in the actual answer
  (a subset: the server adds an ``id``...), or by plain text, which must equal the output;
* a runnable block that cannot run in a test starts with the line ``# Not run by the snippet tests:
  <reason>``: the reason is visible to readers, and the test keeps the list of such blocks exact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Languages a fenced block may name; ``text`` is for output and trees, never for commands.
LANGUAGES = frozenset({"bash", "sh", "python", "json", "yaml", "text"})
SHELL = frozenset({"bash", "sh"})
RUNNABLE = SHELL | {"python"}

NOT_RUN_PREFIX = "# Not run by the snippet tests:"
EXPECT_PREFIX = "# ->"

_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_CONTINUATION = re.compile(r"^#\s{2,}\S")
_STATUS = re.compile(r"^(?P<status>[1-5][0-9]{2})(?:\s+(?P<rest>.*))?$", re.S)


def markdown_files() -> list[Path]:
    """The Markdown whose snippets must run: README.md, CONTRIBUTING.md, docs/**/*.md."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file()]


@dataclass(frozen=True)
class Expectation:
    """What a ``# ->`` line promises: an HTTP status, and JSON fields or exact text."""

    raw: str
    status: int | None
    json: object = field(default=None)
    text: str | None = None
    is_json: bool = False

    @classmethod
    def parse(cls, raw: str) -> Expectation:
        status = None
        rest = raw.strip()
        match = _STATUS.match(rest)
        if match:
            status = int(match["status"])
            rest = (match["rest"] or "").strip()
        if not rest:
            return cls(raw, status)
        try:
            return cls(raw, status, json=json.loads(rest), is_json=True)
        except ValueError:
            return cls(raw, status, text=rest)


@dataclass(frozen=True)
class Segment:
    """Lines of a runnable block between two comment lines, and the answer expected of them."""

    code: str
    expectation: Expectation | None
    line: int  # of the segment's first line in the Markdown file


@dataclass(frozen=True)
class Block:
    """One fenced code block."""

    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str  # content, without the fences and without the list indentation

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in RUNNABLE

    @property
    def not_run_reason(self) -> str | None:
        first = self.text.lstrip("\n").splitlines()[0] if self.text.strip() else ""
        if first.startswith(NOT_RUN_PREFIX):
            return first[len(NOT_RUN_PREFIX) :].strip()
        return None

    def expectations(self) -> list[Expectation]:
        return [seg.expectation for seg in self.segments() if seg.expectation is not None]

    def segments(self) -> list[Segment]:
        """Split at comment lines in column 0; a ``# ->`` comment is the answer of the segment before it.

        Comment lines in column 0 never fall inside a multi-line command here (continuation lines of
        a JSON body are indented), so a segment is always whole commands.
        """
        segments: list[Segment] = []
        code: list[str] = []
        start = 0
        lines = self.text.splitlines()
        i = 0

        def flush(expectation: Expectation | None) -> None:
            nonlocal code
            if any(c.strip() for c in code) or expectation is not None:
                segments.append(Segment("\n".join(code), expectation, self.line + 1 + start))
            code = []

        while i < len(lines):
            line = lines[i]
            if line.startswith(EXPECT_PREFIX):
                parts = [line[len(EXPECT_PREFIX) :].strip()]
                while i + 1 < len(lines) and _CONTINUATION.match(lines[i + 1]):
                    i += 1
                    parts.append(lines[i][1:].strip())
                flush(Expectation.parse("\n".join(parts)))
                start = i + 1
            elif line.startswith("#"):
                flush(None)
                start = i + 1
            else:
                if not code:
                    start = i
                code.append(line)
            i += 1
        flush(None)
        return segments


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order. An unclosed fence is an error (it would swallow the page)."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        else:
            raise ValueError(f"{path}:{i + 1}: unclosed code fence")
        lang = info.split()[0].lower() if info else ""
        found.append(Block(path, i + 1, lang, "\n".join(body) + "\n"))
        i = j + 1
    return found


def all_blocks() -> list[Block]:
    return [b for f in markdown_files() for b in blocks(f)]


def subset_mismatch(expected: object, actual: object, where: str = "$") -> str | None:
    """Why ``actual`` does not contain ``expected`` (None when it does).

    Objects: every expected key must be there with a matching value (others may be added). Lists:
    same length, item by item. Floats: equal to 1e-9 relative. Everything else: equal.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{where}: no key {key!r} in {sorted(actual)}"
            why = subset_mismatch(value, actual[key], f"{where}.{key}")
            if why:
                return why
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where}: expected {expected!r}, got {actual!r}"
        for n, (e, a) in enumerate(zip(expected, actual)):
            why = subset_mismatch(e, a, f"{where}[{n}]")
            if why:
                return why
        return None
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        if abs(expected - actual) <= 1e-9 * max(abs(expected), abs(actual)):
            return None
        return f"{where}: expected {expected!r}, got {actual!r}"
    if type(expected) is not type(actual) or expected != actual:
        return f"{where}: expected {expected!r}, got {actual!r}"
    return None
