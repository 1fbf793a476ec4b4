"""The README stays a front page: the two quick-start commands as promised, links that work."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEMO = (
    "python3 -m venv .venv && .venv/bin/pip install -q '.[testing]' && .venv/bin/netrex-async demo"
)
TESTS = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/pytest"
    " && .venv/bin/ruff check . && .venv/bin/mypy"
)


def test_the_quick_start_commands_are_there_exactly() -> None:
    lines = README.splitlines()
    assert DEMO in lines
    assert TESTS in lines


def test_ci_runs_the_readmes_test_command_exactly() -> None:
    assert TESTS in (ROOT / ".ci" / "run").read_text().splitlines()


def test_relative_links_point_at_files_that_exist() -> None:
    targets = re.findall(r"\]\((?!https?://|#)([^)#\s]+)(?:#[^)]*)?\)", README)
    assert targets, "the README links into docs/"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing


def test_every_page_of_the_site_is_linked_from_the_readme() -> None:
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    pages -= {"docs/index.md", "docs/changelog.md"}  # the README itself; CHANGELOG.md
    assert pages <= set(re.findall(r"\]\((docs/[^)#]+)", README))
