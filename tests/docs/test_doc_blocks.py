"""Static checks of every fenced block in README.md, CONTRIBUTING.md and docs/ (no server; seconds).

What tests/docs/test_snippets.py runs is decided here: every block names a known language, runnable
blocks carry no placeholder, the blocks that are not run are exactly the expected ones, each with a
visible reason; JSON and YAML blocks parse, and a model-settings.json or settings.json shown is one
MLServer and the runtime accept.
"""

from __future__ import annotations

import ast
import json
import re

import pytest
import yaml
from mlserver.settings import ModelSettings, Settings

from mlserver_sigaware.settings import SigawareSettings
from tests.docs.mdblocks import LANGUAGES, ROOT, Block, Expectation, all_blocks, blocks, markdown_files

pytestmark = pytest.mark.docs

BLOCKS = all_blocks()

#: Runnable blocks that are not run, by file and first command, each with the reason it gives readers.
#: Keep this list minimal: every other shell and Python block runs against the demo.
NOT_RUN = {
    ("README.md", "make serve   # builds ./demo-registry (a local sqlite MLflow registry) and runs `mlserver start .`"),
    # A Docker engine, root and minutes, or a Kubernetes cluster: tests/deploy/ runs what can run here.
    ("docs/kubernetes.md", "docker build -t registry.example.com/mlserver-sigaware:0.1.0 \\"),
    ("docs/kubernetes.md",
     'IMAGE=localhost/mlserver-sigaware:dev MODEL_PACKAGES="scikit-learn==1.9.1 skops==0.16.0" scripts/build_image.sh'),
    ("docs/kubernetes.md", "kubectl create secret generic mlflow-credentials \\"),
    ("docs/kubernetes.md", "kubectl apply -f deploy/seldon-v2/model-settings.yaml -f deploy/seldon-v2/server.yaml"),
    ("docs/kubernetes.md", "kubectl apply -f deploy/seldon-v1/seldondeployment.yaml"),
    ("docs/kubernetes.md", "kubectl apply -f deploy/kserve/servingruntime.yaml"),
    ("docs/kubernetes.md", "for port in 8090 8091 8092; do"),
}

#: What a command in a ``text`` block would look like (text blocks are for output and trees).
_COMMAND = re.compile(r"^\s*(\$ |curl |python|\.venv/|make |mlserver |pip |bash )")


def _ids(blocks_: list[Block]) -> list[str]:
    return [b.id for b in blocks_]


def test_the_pages_have_blocks():
    files = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "CONTRIBUTING.md", "docs/index.md", "docs/configuration.md"} <= files
    assert sum(b.runnable for b in BLOCKS) >= 30


@pytest.mark.parametrize("block", BLOCKS, ids=_ids(BLOCKS))
def test_block_names_a_known_language(block: Block):
    assert block.lang in LANGUAGES, f"{block.id}: fenced block language {block.lang!r}, use one of {sorted(LANGUAGES)}"


RUNNABLE = [b for b in BLOCKS if b.runnable]


@pytest.mark.parametrize("block", RUNNABLE, ids=_ids(RUNNABLE))
def test_runnable_block_has_no_placeholder(block: Block):
    assert "..." not in block.text and "…" not in block.text, f"{block.id}: a placeholder cannot run"
    assert not re.search(r"<[a-z_-]+>", block.text), f"{block.id}: a <placeholder> cannot run"


def test_not_run_blocks_are_exactly_the_expected_ones():
    found = set()
    for block in RUNNABLE:
        if block.not_run_reason is not None:
            assert len(block.not_run_reason) > 20, f"{block.id}: give readers the reason it is not run"
            first = next(line for line in block.text.splitlines() if line.strip() and not line.startswith("#"))
            found.add((block.path.relative_to(ROOT).as_posix(), first))
    assert found == NOT_RUN


def test_not_run_marker_only_on_the_first_line():
    for block in RUNNABLE:
        lines = block.text.splitlines()
        assert not any("Not run by the snippet tests" in line for line in lines[1:]), block.id


PYTHON = [b for b in BLOCKS if b.lang == "python"]


@pytest.mark.parametrize("block", PYTHON, ids=_ids(PYTHON))
def test_python_block_compiles(block: Block):
    ast.parse(block.text, filename=block.id)


SHELL_WITH_ANSWERS = [b for b in RUNNABLE if b.lang != "python" and b.expectations()]


@pytest.mark.parametrize("block", SHELL_WITH_ANSWERS, ids=_ids(SHELL_WITH_ANSWERS))
def test_every_answer_follows_a_command(block: Block):
    for segment in block.segments():
        if segment.expectation is not None:
            assert segment.code.strip(), f"{block.id}: `# ->` at line {segment.line} has no command above it"


def test_answers_parse_as_intended():
    """A ``# ->`` that looks like JSON must be JSON: a typo would silently make it a text comparison."""
    for block in RUNNABLE:
        for expectation in block.expectations():
            if not expectation.is_json and expectation.text and expectation.text[:1] in "{":
                pytest.fail(f"{block.id}: answer {expectation.raw!r} looks like JSON but does not parse")


def test_expectation_syntax():
    assert Expectation.parse('400 {"a": 1}') == Expectation('400 {"a": 1}', 400, json={"a": 1}, is_json=True)
    assert Expectation.parse("200").status == 200
    assert Expectation.parse("[b'x'] 1").text == "[b'x'] 1"


JSON = [b for b in BLOCKS if b.lang == "json"]


@pytest.mark.parametrize("block", JSON, ids=_ids(JSON))
def test_json_block_is_valid(block: Block):
    document = json.loads(block.text)
    if isinstance(document, dict) and "implementation" in document:  # a model-settings.json
        settings = ModelSettings.model_validate(document)
        extra = settings.parameters.extra if settings.parameters else None
        SigawareSettings.from_extra(extra)  # an unknown or mistyped key raises, as at load
    elif isinstance(document, dict):  # a settings.json
        assert set(document) <= set(Settings.model_fields), f"{block.id}: unknown settings.json keys"
        Settings.model_validate(document)


YAML = [b for b in BLOCKS if b.lang == "yaml"]


@pytest.mark.parametrize("block", YAML, ids=_ids(YAML))
def test_yaml_block_parses(block: Block):
    assert yaml.safe_load(block.text) is not None


TEXT = [b for b in BLOCKS if b.lang == "text"]


@pytest.mark.parametrize("block", TEXT, ids=_ids(TEXT))
def test_text_block_holds_no_command(block: Block):
    commands = [line for line in block.text.splitlines() if _COMMAND.match(line)]
    assert not commands, f"{block.id}: commands belong in a bash block, where they are run: {commands}"


def test_root_settings_files_are_the_ones_documented():
    """The demo's settings.json and model-settings.json shown in docs/ are the checkout's, verbatim."""
    shown = {json.dumps(json.loads(b.text), sort_keys=True) for b in JSON}
    for name in ("settings.json", "model-settings.json"):
        assert json.dumps(json.loads((ROOT / name).read_text()), sort_keys=True) in shown, name


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines: move detail to a page in docs/"


_LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_links_outside_the_site_resolve(name: str):
    """README.md and CONTRIBUTING.md are not part of the MkDocs build: check their relative links here."""
    text = (ROOT / name).read_text(encoding="utf-8")
    for target in _LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_file(), f"{name}: link to {target}, which does not exist"


def test_block_parser_finds_indented_and_unclosed_fences(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("- item\n\n  ```bash\n  curl -s localhost:8080/ping\n  ```\n\n```json\n{}\n```\n")
    found = blocks(page)
    assert [(b.lang, b.text) for b in found] == [("bash", "curl -s localhost:8080/ping\n"), ("json", "{}\n")]
    page.write_text("```bash\ncurl -s localhost:8080/ping\n")
    with pytest.raises(ValueError, match="unclosed"):
        blocks(page)
