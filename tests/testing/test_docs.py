"""The README's "Testing your code" example is exactly test_readme_example.py."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = Path(__file__).with_name("test_readme_example.py")


def _python_blocks(text: str) -> list[str]:
    blocks: list[str] = []
    lines: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if not inside and line.strip() == "```python":
            inside, lines = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("".join(lines))
        elif inside:
            lines.append(line)
    return blocks


def test_the_readme_example_is_the_tested_file() -> None:
    example = EXAMPLE.read_text()
    sources = [
        path
        for path in (ROOT / "notes" / "readme-testing.md", ROOT / "README.md")
        if path.exists() and "## Testing your code" in path.read_text()
    ]
    assert sources, "no README section 'Testing your code' found"
    for path in sources:
        assert example in _python_blocks(path.read_text()), path
