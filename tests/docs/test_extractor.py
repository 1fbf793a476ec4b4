"""The snippet runner itself: what it finds, what it skips, and that it fails when it should."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._snippets import PageRun, SnippetError, extract_blocks

PAGE = """# A page

```python
from netrex_async import NetrexClient, Provider
```

Some text.

<!-- skip: needs a browser -->
```python
webbrowser.open("https://example.com")
```

- A list item with a nested block:

  ```sh
  echo nested
  ```

````text
```python
not a block of its own
```
````

<!-- file: notes/pyproject.toml -->
```toml
[tool.pytest.ini_options]
```
"""


def test_finds_blocks_with_lines_languages_and_directives() -> None:
    blocks = extract_blocks(PAGE, "page.md")
    assert [(b.lang, b.line) for b in blocks] == [
        ("python", 4),
        ("python", 11),
        ("sh", 17),
        ("text", 21),
        ("toml", 28),
    ]
    assert blocks[0].code == "from netrex_async import NetrexClient, Provider\n"
    assert blocks[1].skip == "needs a browser"
    assert blocks[2].code == "echo nested\n"  # the list item's indent is removed
    assert "```python" in blocks[3].code  # a longer fence holds a shorter one
    assert blocks[4].file == "notes/pyproject.toml"
    assert blocks[0].skip is blocks[0].file is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```python\nx = 1\n", "never closed"),
        ("<!-- skip: -->\n```python\nx = 1\n```\n", "needs a value"),
        ("<!-- needs: postgres -->\n```python\nx = 1\n```\n", "unknown"),
    ],
)
def test_refuses_broken_pages(text: str, message: str) -> None:
    with pytest.raises(SnippetError, match=message):
        extract_blocks(text, "page.md")


def _run(text: str, tmp_path: Path) -> PageRun:
    run = PageRun("page.md", tmp_path)
    run.run(extract_blocks(text, "page.md"))
    return run


WITH_IMPORT = """
```python
import asyncio
from netrex_async import NetrexClient, Provider
```

```python
async def names() -> list[str]:
    async with NetrexClient(
        os.environ["NETREX_TOKEN"], provider=Provider("https://system2.netrex.cz")
    ) as client:
        data = await client.graphql("{cameraList{name}}")
    return [camera["name"] for camera in data["cameraList"]]

print(asyncio.run(names()))
```
"""


def test_a_page_runs_in_one_namespace_against_the_fake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = "```python\nimport os\n```\n" + WITH_IMPORT
    run = _run(page, tmp_path)
    assert len(run.ran) == 3
    assert "'Entrance'" in capsys.readouterr().out  # the fake's sample camera


def test_a_snippet_that_lost_its_import_fails(tmp_path: Path) -> None:
    """The point of running the docs: a missing import is a failure naming the line."""
    page = WITH_IMPORT.replace("from netrex_async import NetrexClient, Provider\n", "")
    page = "```python\nimport os\n```\n" + page
    with pytest.raises(SnippetError, match=r"page\.md:\d+: NameError: name 'NetrexClient'"):
        _run(page, tmp_path)


def test_a_missing_import_fails_inside_an_async_block_too(tmp_path: Path) -> None:
    page = "```python\nasync with aiohttp.ClientSession() as session:\n    pass\n```\n"
    with pytest.raises(SnippetError, match=r"page\.md:2: NameError: name 'aiohttp'"):
        _run(page, tmp_path)


def test_top_level_await_blocks_share_one_event_loop(tmp_path: Path) -> None:
    page = (
        "```python\nimport asyncio\nawait asyncio.sleep(0)\n"
        "loop = asyncio.get_running_loop()\n```\n"
        "```python\nawait asyncio.sleep(0)\nassert asyncio.get_running_loop() is loop\n```\n"
    )
    assert len(_run(page, tmp_path).ran) == 2


def test_skipped_blocks_do_not_run(tmp_path: Path) -> None:
    page = "<!-- skip: shows an error on purpose -->\n```python\nraise SystemExit(3)\n```\n"
    run = _run(page, tmp_path)
    assert (run.ran, [b.skip for b in run.skipped]) == ([], ["shows an error on purpose"])


def test_shell_blocks_run_and_fail_on_a_failing_command(tmp_path: Path) -> None:
    assert len(_run("```sh\nnetrex-async --help | grep -q login\n```\n", tmp_path).ran) == 1
    with pytest.raises(SnippetError, match="exited 2"):
        _run("```sh\nnetrex-async no-such-command\n```\n", tmp_path)


def test_file_blocks_are_written_for_later_blocks(tmp_path: Path) -> None:
    page = "<!-- file: hello.py -->\n```python\nprint('hi')\n```\n```sh\npython hello.py\n```\n"
    run = _run(page, tmp_path)
    assert (tmp_path / "hello.py").read_text() == "print('hi')\n"
    assert [b.lang for b in run.ran] == ["sh"]


def test_input_plays_the_browser_on_the_printed_authorization_url(tmp_path: Path) -> None:
    page = """
```python
import os
from netrex_async import OAuth2App, OAuth2Client, Provider

app = OAuth2App(
    client_id=os.environ["NETREX_CLIENT_ID"],
    client_secret=os.environ["NETREX_CLIENT_SECRET"],
    redirect_uri=os.environ["NETREX_REDIRECT_URI"],
    provider=Provider("https://system2.netrex.cz"),
)
async with OAuth2Client(app) as oauth:
    request = oauth.authorization_request("read")
    print("Open:", request.url)
    token = await oauth.exchange(input("Paste the URL: "), request)
assert token.access_token
```
"""
    assert len(_run(page, tmp_path).ran) == 1
