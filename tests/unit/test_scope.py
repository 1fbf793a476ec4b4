"""Scope: the ten documented rights and their comma-separated form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrex_async import Scope

DOCUMENTED = (
    "read, write, liveview, audiotransmit, liveview_ptz, liveview_light, "
    "liveview_audioclip, recordings, recordings_delete, events"
)


def test_exactly_the_ten_documented_rights() -> None:
    assert [s.value for s in Scope] == DOCUMENTED.split(", ")
    assert len(Scope) == 10


def test_parse_the_documented_list() -> None:
    assert Scope.parse(DOCUMENTED) == tuple(Scope)


def test_parse_and_format_comma_separated() -> None:
    parsed = Scope.parse("read,events")
    assert parsed == (Scope.READ, Scope.EVENTS)
    assert all(isinstance(s, Scope) for s in parsed)
    assert Scope.to_param(parsed) == "read,events"
    assert Scope.to_param([Scope.READ, "write"]) == "read,write"


@pytest.mark.parametrize(
    "text",
    [
        "read,events",
        " read , events ",
        "read events",
        "read,,events,",
        "READ,Events",
        "read\tevents",
    ],
)
def test_parse_is_lenient_about_blanks_and_case(text: str) -> None:
    assert Scope.parse(text) == (Scope.READ, Scope.EVENTS)


@pytest.mark.parametrize("value", ["", " ", ",", [], ()])
def test_empty_is_allowed(value: str | list[str]) -> None:
    assert Scope.parse(value) == ()
    assert Scope.to_param(()) == ""


def test_duplicates_dropped_keeping_the_first() -> None:
    assert Scope.parse("events,read,events,READ") == (Scope.EVENTS, Scope.READ)
    assert Scope.parse(["write", "write"]) == (Scope.WRITE,)
    assert Scope.to_param([Scope.READ, "read", Scope.EVENTS, Scope.READ]) == "read,events"


def test_iterable_of_names() -> None:
    assert Scope.parse([Scope.LIVEVIEW_PTZ, "recordings_delete"]) == (
        Scope.LIVEVIEW_PTZ,
        Scope.RECORDINGS_DELETE,
    )


def test_unknown_refused_naming_it_and_the_way_out() -> None:
    with pytest.raises(ValueError) as info:
        Scope.parse("read,teleport")
    text = str(info.value)
    assert "'teleport'" in text
    assert "allow_unknown" in text
    assert "liveview_audioclip" in text  # the known rights are listed


def test_unknown_kept_when_allowed() -> None:
    parsed = Scope.parse("read,teleport,teleport", allow_unknown=True)
    assert parsed == (Scope.READ, "teleport")
    assert not isinstance(parsed[1], Scope)
    assert Scope.to_param(parsed) == "read,teleport"


@pytest.mark.parametrize("name", ["bad/name", "x" * 65, "a<b>", "drop;table", "é"])
def test_malformed_refused_even_when_unknown_allowed(name: str) -> None:
    with pytest.raises(ValueError, match="malformed"):
        Scope.parse([name], allow_unknown=True)


_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


@given(st.lists(st.sampled_from(list(Scope))))
def test_round_trip_known(scopes: list[Scope]) -> None:
    unique = tuple(dict.fromkeys(scopes))
    text = Scope.to_param(scopes)
    assert Scope.parse(text) == unique
    assert Scope.to_param(Scope.parse(text)) == text
    assert " " not in text


@given(st.lists(st.one_of(st.sampled_from(list(Scope)), _NAMES)))
def test_round_trip_with_unknown_names(scopes: list[str]) -> None:
    parsed = Scope.parse(scopes, allow_unknown=True)
    text = Scope.to_param(parsed)
    assert Scope.parse(text, allow_unknown=True) == parsed
    assert len(set(parsed)) == len(parsed)
    assert text.split(",") == ([str(s) for s in parsed] if parsed else [""])


@given(st.text(max_size=80))
def test_parse_never_crashes_otherwise(text: str) -> None:
    try:
        parsed = Scope.parse(text, allow_unknown=True)
    except ValueError:
        return
    assert len(set(parsed)) == len(parsed)
    assert all(s and "," not in s and s == s.strip() for s in parsed)
