"""The sans-I/O bearer flow, driven by hand: no network, no event loop."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from netrex_async import ApiError
from netrex_async._auth_flow import (
    MAX_REDIRECTS,
    TOKEN,
    Answer,
    FlowConfig,
    Invalidate,
    Send,
    auth_flow,
    default_token_rejected,
    json_type,
)

HOME = URL("https://cloud.example.com/api/graphql.php")


def answer(status: int, body: bytes = b"", **headers: str) -> Answer:
    return Answer(status, CIMultiDictProxy(CIMultiDict(headers)), body, None)


def config() -> FlowConfig:
    return FlowConfig(HOME.origin(), default_token_rejected, lambda b: "")


def run(script: list[Any], *, method: str = "POST", follow: bool = True) -> tuple[list, Any]:
    """Drive a flow: each step is answered from ``script`` (tokens, answers, None)."""
    flow = auth_flow(config(), method, HOME, follow=follow)
    steps = [next(flow)]
    try:
        for value in script:
            steps.append(flow.send(value))
    except StopIteration as stop:
        return steps, stop.value
    raise AssertionError(f"the flow wants more: {steps[-1]!r}")


def sends(steps: list) -> list[tuple[str, str, str, bool]]:
    return [(s.token, s.method, str(s.url), s.body) for s in steps if isinstance(s, Send)]


def test_a_good_answer_takes_one_token_and_one_send():
    ok = answer(200)
    steps, final = run(["t1", ok])
    assert steps[0] is TOKEN
    assert sends(steps) == [("t1", "POST", str(HOME), True)]
    assert final is ok


def test_a_401_invalidates_refreshes_and_sends_once_more():
    ok = answer(200)
    steps, final = run(["t1", answer(401), None, "t2", ok])
    assert isinstance(steps[2], Invalidate) and steps[2].token == "t1"
    assert steps[3] is TOKEN
    assert sends(steps) == [("t1", "POST", str(HOME), True), ("t2", "POST", str(HOME), True)]
    assert final is ok


def test_a_second_rejection_is_the_answer():
    again = answer(401)
    steps, final = run(["t1", answer(401), None, "t2", again])
    assert len(sends(steps)) == 2
    assert final is again


def test_no_new_token_means_no_second_send():
    first = answer(401)
    steps, final = run(["t1", first, None, "t1"])
    assert len(sends(steps)) == 1
    assert final is first


def test_unauthenticated_is_a_rejection():
    body = b'{"errors":[{"message":"x","extensions":{"code":"UNAUTHENTICATED"}}]}'
    steps, _ = run(["t1", answer(200, body), None, "t2", answer(200)])
    assert len(sends(steps)) == 2


@pytest.mark.parametrize(
    ("status", "method", "expect_method", "body"),
    [
        (307, "POST", "POST", True),
        (308, "POST", "POST", True),
        (302, "POST", "GET", False),
        (301, "POST", "GET", False),
        (303, "POST", "GET", False),
        (302, "GET", "GET", True),
    ],
)
def test_same_origin_redirects_are_followed(status, method, expect_method, body):
    moved = answer(status, Location="/api/v2/graphql.php?x=1")
    steps, _ = run(["t1", moved, answer(200)], method=method)
    target = "https://cloud.example.com/api/v2/graphql.php?x=1"
    assert sends(steps)[1] == ("t1", expect_method, target, body)


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example.com/api/graphql.php",
        "http://cloud.example.com/api/graphql.php",  # https -> http
        "https://cloud.example.com:8443/api/graphql.php",
        "//evil.example.com/x",
    ],
)
@pytest.mark.parametrize("follow", [True, False])
def test_a_redirect_away_from_the_origin_is_refused(location, follow):
    flow = auth_flow(config(), "POST", HOME, follow=follow)
    next(flow)
    flow.send("t1")
    with pytest.raises(ApiError, match="another origin") as e:
        flow.send(answer(307, Location=location))
    assert e.value.status == 307
    target = URL("https:" + location if location.startswith("//") else location)
    assert str(target.origin()) in str(e.value)


def test_without_follow_a_same_origin_redirect_is_returned_to_aiohttp():
    moved = answer(302, Location="/elsewhere")
    steps, final = run(["t1", moved], follow=False)
    assert final is moved
    assert len(sends(steps)) == 1


def test_a_redirect_loop_ends():
    flow = auth_flow(config(), "GET", HOME, follow=True)
    next(flow)
    flow.send("t1")
    with pytest.raises(ApiError, match="more than"):
        for _ in range(MAX_REDIRECTS + 1):
            flow.send(answer(302, Location="/again"))


def test_a_redirect_without_location_is_the_answer():
    moved = answer(302)
    _, final = run(["t1", moved])
    assert final is moved


def test_steps_show_no_token():
    step = Send("very-secret-token", "POST", HOME, True)
    assert "very-secret-token" not in repr(step)
    assert "very-secret-token" not in repr(Invalidate("very-secret-token"))


def test_json_type():
    assert json_type("application/json; charset=utf-8")
    assert json_type("application/graphql-response+json")
    assert not json_type("text/html")
    assert not json_type(None)
