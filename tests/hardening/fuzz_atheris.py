"""Coverage-guided fuzzing of the token-answer and callback parsers with atheris.

Not collected by pytest (``test_fuzz.py`` runs it briefly, marked ``slow``). Run it for
a few minutes by hand::

    .venv/bin/pip install atheris
    .venv/bin/python tests/hardening/fuzz_atheris.py -max_total_time=300

Any libFuzzer option works (``-runs=N``, ``-seed=N``, a corpus folder). A property
violation (see ``_fuzz_props``) stops the run with the input that broke it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The parsers and the libraries they parse with; instrumenting every import (aiohttp...)
# costs seconds of start-up for nothing.
with atheris.instrument_imports(include=["netrex_async", "yarl", "multidict", "json"]):
    from hardening._fuzz_props import (
        ACCESS_TOKEN,
        CLIENT_SECRET,
        CODE,
        NOW,
        REFRESH_TOKEN,
        STATE,
        check_callback,
        check_token_response,
    )

SECRETS = (CLIENT_SECRET, CODE, REFRESH_TOKEN, ACCESS_TOKEN, STATE)
STATUSES = (200, 201, 400, 401, 429, 500, 502, 503, 302)


def _text(fdp: atheris.FuzzedDataProvider, size: int) -> str:
    text = fdp.ConsumeUnicodeNoSurrogates(size)
    if fdp.ConsumeBool():  # now and then, a secret in the middle
        cut = len(text) // 2
        text = text[:cut] + SECRETS[fdp.ConsumeIntInRange(0, len(SECRETS) - 1)] + text[cut:]
    return text


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        status = STATUSES[fdp.ConsumeIntInRange(0, len(STATUSES) - 1)]
        headers = {"Content-Type": _text(fdp, 20), "Retry-After": _text(fdp, 8)}
        as_text = fdp.ConsumeBool()
        body = _text(fdp, 300).encode("utf-8") if as_text else fdp.ConsumeBytes(300)
        check_token_response(status, headers, body, refresh=fdp.ConsumeBool())
    else:
        url = "http://127.0.0.1:8765/callback?" + _text(fdp, 300)
        if fdp.ConsumeBool():
            url += f"&state={STATE}"
        check_callback(url, now=NOW + fdp.ConsumeIntInRange(-10, 1000))


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
