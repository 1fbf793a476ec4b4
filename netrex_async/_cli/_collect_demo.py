"""``demo --collector``: a collector SIGKILLed and restarted while events keep coming.

1. FakeNetrex starts on loopback and makes camera events at a steady rate.
2. ``netrex-async collect`` runs as a process of its own (a user token, a file
   checkpoint, JSON Lines appended to a file) and is killed with SIGKILL at random moments,
   then restarted, several times, while the events keep coming.
3. The events stop; a last collector catches up and is stopped with SIGTERM (clean).
4. The summary counts the events produced, collected, missing (must be 0) and duplicated
   (at most one batch per kill), from the fake's own record and the collector's file.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._commands import Context
from ._exits import CliError, ExitCode
from ._output import json_text

__all__ = ["run_collect_demo"]

_QUERY = "query($after: ID, $limit: Int) { events(afterId: $after, limit: $limit) { id type } }"
_PAGE = 50
_RATE = 200.0
#: Every wait of the demo ends within this many seconds.
_BOUND = 60.0


async def _collector(base_url: str, token: str, folder: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETREX_")}
    env.update(NETREX_PROVIDER=base_url, NETREX_TOKEN=token)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "netrex_async",
        "collect",
        _QUERY,
        "--items",
        "events",
        "--cursor",
        "after",
        "--key",
        "id",
        "--checkpoint",
        str(folder / "events.checkpoint"),
        "--out",
        str(folder / "events.jsonl"),
        "--every",
        "0.2",
        "--page-size",
        str(_PAGE),
        "--page-size-variable",
        "limit",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


def _ids(path: Path) -> list[int]:
    if not path.exists():
        return []
    found = []
    for line in path.read_bytes().splitlines(keepends=True):
        if line.endswith(b"\n"):  # a partial last line is repaired by the next run
            found.append(int(json.loads(line)["id"]))
    return found


async def run_collect_demo(ctx: Context) -> int:
    """Run the collector demo; exit 0 when no event is missing, 1 otherwise."""
    try:
        from ..testing import FakeNetrex
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise CliError(f"the demo needs the testing extra: {e}") from None
    args, console = ctx.args, ctx.console
    if not 1 <= args.kills <= 100:
        raise CliError("--kills must be between 1 and 100")
    kills: int = args.kills
    rng = random.Random()
    with tempfile.TemporaryDirectory(prefix="netrex-collect-demo-") as tmp:
        folder = Path(tmp)
        out = folder / "events.jsonl"
        async with FakeNetrex() as fake:
            token = fake.issue_token(("read",)).access_token
            console.add_secret(token)
            sample = len(fake.data.events)
            source = fake.start_events(_RATE)
            console.info(
                f"A fake provider makes {_RATE:g} camera events/s; `netrex-async collect` "
                f"follows them and is killed with SIGKILL {kills} time{'s' if kills != 1 else ''}."
            )
            for n in range(1, kills + 1):
                proc = await _collector(fake.base_url, token, folder)
                await asyncio.sleep(rng.uniform(0.8, 2.5))
                proc.send_signal(signal.SIGKILL)
                await asyncio.wait_for(proc.wait(), _BOUND)
                console.info(f"  kill {n}: {len(_ids(out))} lines written so far")
            await fake.stop_events()
            last = int(fake.data.events[-1].id)
            proc = await _collector(fake.base_url, token, folder)
            started = time.monotonic()
            while last not in set(_ids(out)):
                if proc.returncode is not None or time.monotonic() - started > _BOUND:
                    err = b"" if proc.stderr is None else await proc.stderr.read()
                    raise CliError(
                        f"the last collector did not catch up: {err.decode()[-500:]}",
                        ExitCode.API_ERROR,
                    )
                await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), _BOUND)
            clean = proc.returncode == 0
            produced = sample + source.produced
        ids = _ids(out)
    unique = set(ids)
    summary: dict[str, Any] = {
        "produced": produced,
        "collected": len(unique),
        "missing": len(set(range(1, produced + 1)) - unique),
        "duplicated": len(ids) - len(unique),
        "kills": kills,
        "duplicates_allowed": kills * _PAGE,
        "clean_stop": clean,
    }
    ok = summary["missing"] == 0 and summary["duplicated"] <= kills * _PAGE and clean
    if args.json:
        console.print(json_text({**summary, "ok": ok}))
    else:
        console.print(
            f"produced {produced}, collected {len(unique)}, missing {summary['missing']}, "
            f"duplicated {summary['duplicated']} (at most {_PAGE} per kill: "
            f"{kills * _PAGE}), last stop {'clean' if clean else 'NOT clean'}"
        )
        console.print("OK: no event lost." if ok else "FAILED: see above.")
    return ExitCode.OK if ok else ExitCode.API_ERROR
