"""A griffe extension for this site: the docstrings' Sphinx-style markup, in Markdown.

The docstrings are written for readers of the source and for ``help()``: they name other
objects with Sphinx roles (``:class:`TokenManager```) and end a line with ``::`` before an
indented literal block. mkdocstrings reads Markdown, where both would show as typed; this
turns a role into inline code and a literal block into a fenced Python block.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const):`~?\.?([^`]+)`")


def _literal_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and i + 1 < len(lines) and not lines[i + 1].strip():
            j = i + 2
            block: list[str] = []
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" ")):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                head = line.rstrip()[:-1]  # "Example::" -> "Example:"
                if head.strip() in {"Example:", "Examples:"}:
                    head = head.replace("Example", "For example", 1)
                out += [head, "", "```python", *textwrap.dedent("\n".join(block)).split("\n")]
                out += ["```", ""]
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles and ``::`` literal blocks of every docstring as Markdown."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = _ROLE.sub(lambda m: f"`{m.group(1)}`", obj.docstring.value)
            obj.docstring.value = _literal_blocks(value)
