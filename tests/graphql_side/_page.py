"""Run docs/typed-clients.md as written: its files and its shell commands, in order.

The page follows the docs' snippet conventions: a block after ``<!-- file: NAME -->`` is
written to NAME in the working folder, a block after ``<!-- skip: REASON -->`` is not run,
``sh`` blocks run with ``bash -euo pipefail`` there. Python blocks of this page are files
(run by its shell blocks) or skipped.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "typed-clients.md"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(?P<name>skip|file)\s*:\s*(?P<arg>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the page."""

    lang: str
    code: str
    line: int
    file: str | None = None
    skip: str | None = None


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, with the directive on the line before each."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        body: list[str] = []
        j = i + 1
        while not lines[j].strip().startswith(fence):
            body.append(lines[j].removeprefix(indent))
            j += 1
        directive = _DIRECTIVE.match(lines[i - 1]) if i else None
        kind = directive["name"] if directive else None
        found.append(
            Block(
                lang=m["lang"],
                code="\n".join(body) + "\n",
                line=i + 1,
                file=directive["arg"] if kind == "file" else None,
                skip=directive["arg"] if kind == "skip" else None,
            )
        )
        i = j + 1
    return found


async def run_page(workdir: Path, env: Mapping[str, str]) -> list[tuple[Block, str]]:
    """Write the page's files and run its shell blocks in ``workdir``; return the outputs.

    Raises:
        AssertionError: A shell block failed (naming its line, with its output).
    """
    outputs = []
    for block in blocks(PAGE.read_text()):
        if block.skip is not None:
            continue
        if block.file is not None:
            (workdir / block.file).write_text(block.code)
        elif block.lang in ("sh", "bash"):
            process = await asyncio.create_subprocess_exec(
                "bash",
                "-euo",
                "pipefail",
                "-c",
                block.code,
                cwd=workdir,
                env=dict(env),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(process.communicate(), timeout=300)
            text = out.decode()
            assert process.returncode == 0, f"{PAGE.name}:{block.line} failed:\n{text}"
            outputs.append((block, text))
    return outputs
