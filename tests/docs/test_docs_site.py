"""The docs site builds with ``mkdocs build --strict``: a broken link or anchor, or a page left out of the nav, fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.mdblocks import ROOT

pytestmark = pytest.mark.docs


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``config`` into ``site``, offline, with the test's interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=config.parent, capture_output=True, text=True, timeout=300, check=False,
    )


def test_site_builds_in_strict_mode(tmp_path):
    done = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    pages = {p.relative_to(ROOT / "docs").with_suffix("").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert {"index.html"} | {f"{p}/index.html" for p in pages if p != "index"} <= built


@pytest.fixture
def docs_copy(tmp_path) -> Path:
    """A copy of mkdocs.yml and docs/ to break on purpose."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    return tmp_path


@pytest.mark.parametrize(
    "breakage,message",
    [
        ("[a page that does not exist](no-such-page.md)", "no-such-page.md"),
        ("[an anchor that does not exist](versions.md#no-such-section)", "no-such-section"),
    ],
)
def test_a_broken_link_fails_the_build(docs_copy, breakage, message):
    page = docs_copy / "docs" / "index.md"
    page.write_text(page.read_text() + f"\n{breakage}\n")
    done = mkdocs_build(docs_copy / "mkdocs.yml", docs_copy / "site")
    assert done.returncode != 0 and message in done.stdout + done.stderr, done.stdout + done.stderr


def test_a_page_missing_from_nav_fails_the_build(docs_copy):
    (docs_copy / "docs" / "orphan.md").write_text("# Orphan\n")
    done = mkdocs_build(docs_copy / "mkdocs.yml", docs_copy / "site")
    assert done.returncode != 0 and "orphan.md" in done.stdout + done.stderr, done.stdout + done.stderr
