"""Fuzzing the token-answer and callback parsers (properties in ``_fuzz_props``).

CI runs a short hypothesis run (200 examples per test). For minutes of fuzzing::

    HYPOTHESIS_PROFILE=fuzz .venv/bin/pytest tests/hardening/test_fuzz.py

and, with atheris installed (``pip install atheris``), a coverage-guided run::

    .venv/bin/python tests/hardening/fuzz_atheris.py -max_total_time=300
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from ._fuzz_props import (
    ACCESS_TOKEN,
    APP,
    CLIENT_SECRET,
    CODE,
    NOW,
    REFRESH_TOKEN,
    STATE,
    VERIFIER,
    check_callback,
    check_token_response,
)

settings.register_profile(
    "fuzz",
    max_examples=50_000,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PROFILE = (
    settings.get_profile("fuzz")
    if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
    else settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
)

SECRETS = (CLIENT_SECRET, CODE, REFRESH_TOKEN, ACCESS_TOKEN, VERIFIER, STATE)

# -- building blocks --------------------------------------------------------------------

nasty_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(list("\x00\x1b\r\n\t\u202e\u2028<>&\"'%+=;,")),
    max_size=40,
)
with_secret = st.builds(
    lambda a, secret, b: a + secret + b, nasty_text, st.sampled_from(SECRETS), nasty_text
)
some_text = nasty_text | with_secret | st.sampled_from(["", " ", "Bearer", "bearer", "MAC"])
json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | some_text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(some_text, inner, max_size=4),
    max_leaves=12,
)
error_codes = st.sampled_from(
    [
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "invalid_request",
        "server_error",
        "Refresh token is invalid",
        "client secret is wrong",
        "",
    ]
)

token_answer = st.fixed_dictionaries(
    {},
    optional={
        "access_token": json_scalar | st.just(ACCESS_TOKEN) | st.just("fresh-access-token-1"),
        "refresh_token": json_scalar | st.just("fresh-refresh-token-1"),
        "expires_in": json_scalar | st.sampled_from([3600, "3600", 0, -1, 1e308, "NaN"]),
        "token_type": json_scalar | st.sampled_from(["Bearer", "bearer", " Bearer "]),
        "scope": json_scalar | st.lists(some_text, max_size=3) | st.just("read,write"),
        "error": json_scalar | error_codes | with_secret,
        "error_description": json_scalar | with_secret,
        "extra": json_value,
    },
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = (
    token_answer.map(_encode)
    | json_value.map(_encode)
    | st.binary(max_size=200)
    | some_text.map(lambda t: t.encode("utf-8", "surrogatepass"))
    | token_answer.map(_encode).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
)
statuses = st.sampled_from([200, 201, 204, 301, 302, 400, 401, 403, 404, 429, 500, 502, 503]) | (
    st.integers(min_value=100, max_value=599)
)
header_maps = st.dictionaries(
    st.sampled_from(["Content-Type", "content-type", "Retry-After", "retry-after"]),
    some_text | st.sampled_from(["5", "-3", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT", "nan"]),
    max_size=3,
)


# -- the token endpoint answer ----------------------------------------------------------


@PROFILE
@given(status=statuses, headers=header_maps, body=bodies, refresh=st.booleans())
@example(status=200, headers={}, body=b'{"access_token": " "}', refresh=True)
@example(status=200, headers={}, body=b'{"access_token": "x", "expires_in": NaN}', refresh=True)
@example(
    status=200,
    headers={},
    body=b'{"access_token": "xxxxxxxxx", "expires_in": 1e999}',
    refresh=False,
)
@example(status=503, headers={"Retry-After": "nan"}, body=b"<html>", refresh=True)
# Found by fuzzing: a 1xx status gave a token; so did a lifetime too small to add to now.
@example(status=100, headers={}, body=b'{"access_token": "0"}', refresh=False)
@example(status=200, headers={}, body=b'{"access_token": "ab", "expires_in": 4e-292}', refresh=True)
@example(
    status=200, headers={}, body=b'{"error": false, "access_token": "abcdefghij"}', refresh=True
)
@example(
    status=200,
    headers={},
    body=b'{"access_token": "abcdefghij", "token_type": "' + CLIENT_SECRET.encode() + b'"}',
    refresh=True,
)
@example(
    status=200,
    headers={"Content-Type": "text/" + REFRESH_TOKEN},
    body=b"<html>",
    refresh=True,
)
def test_token_response_parser(status, headers, body, refresh):
    check_token_response(status, headers, body, refresh=refresh)


@PROFILE
@given(answer=token_answer)
def test_token_answer_with_a_usable_access_token_gives_that_token(answer):
    token = check_token_response(200, {}, _encode(answer))
    if token is not None:
        assert token.access_token == answer["access_token"]


# -- the callback -----------------------------------------------------------------------

param_names = st.sampled_from(
    ["state", "code", "error", "error_description", "error_uri", "scope", "other", "STATE"]
)
param_values = (
    some_text | st.sampled_from([STATE, CODE, "access_denied", "", " "]) | st.text(max_size=5)
)
callbacks = st.builds(
    lambda base, pairs, fragment: (
        base
        + ("?" + "&".join(pairs) if pairs else "")
        + ("#" + fragment if fragment is not None else "")
    ),
    st.sampled_from(
        [
            APP.redirect_uri,
            "http://127.0.0.1:8765/other",
            "https://evil.example/callback",
            "not a url",
            "",
        ]
    ),
    st.lists(
        st.builds(
            lambda k, v, raw: f"{k}={v}" if raw else str(URL.build(query={k: v}).query_string),
            param_names,
            param_values,
            st.booleans(),
        ),
        max_size=6,
    ),
    st.none() | st.builds(lambda k, v: f"{k}={v}", param_names, param_values),
)


@PROFILE
@given(url=callbacks, age=st.sampled_from([0.0, 10.0, 599.0, 10_000.0, -10.0]))
@example(url=f"{APP.redirect_uri}?state={STATE}&code={CODE}", age=0.0)
@example(url=f"{APP.redirect_uri}#state={STATE}&code={CODE}", age=0.0)
@example(url=f"{APP.redirect_uri}?state={STATE}&code=%20", age=0.0)
@example(url=f"{APP.redirect_uri}?state={STATE}&error=x&error_description={CODE}", age=0.0)
@example(url=f"{APP.redirect_uri}?state={STATE}&state={STATE}&code={CODE}", age=0.0)
@example(url=f"{APP.redirect_uri}?state={STATE}&code={CODE}&" + "x" * 9000, age=0.0)
def test_callback_parser(url, age):
    code = check_callback(url, now=NOW + age)
    if code is not None:
        assert STATE in url


@PROFILE
@given(code=some_text.filter(lambda c: c.strip()), extra=st.lists(param_names, max_size=3))
def test_valid_callback_gives_its_code(code, extra):
    pairs = [("state", STATE), ("code", code)] + [
        (k, "v") for k in extra if k not in ("state", "code", "error")
    ]
    url = str(URL(APP.redirect_uri).with_query(pairs))
    if len(url) <= 8192:
        assert check_callback(url) == code


# -- atheris ----------------------------------------------------------------------------


@pytest.mark.slow
def test_atheris_harness_runs():
    pytest.importorskip("atheris")
    harness = Path(__file__).with_name("fuzz_atheris.py")
    done = subprocess.run(
        [sys.executable, str(harness), "-runs=20000", "-seed=1"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
