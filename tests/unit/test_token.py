"""Token: validation, lifetime, redacted repr, and the dict form stores keep."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrex_async import Scope, Token
from netrex_async._token import FORMAT_VERSION

from ._leaks import assert_no_leaks

AT = "at-secret-access-0123456789"
RT = "rt-secret-refresh-9876543210"


def test_repr_hides_both_tokens() -> None:
    token = Token(AT, RT, issued_at=1000.0, expires_at=4600.0, scopes=("read",))
    text = repr(token)
    assert "***" in text
    assert "4600.000" in text
    assert token.fingerprint in text
    assert_no_leaks({"access": AT, "refresh": RT}, objects=[token, token.to_dict().keys()])
    temporary = Token(AT, None, issued_at=1000.0)
    assert "refresh_token=None" in repr(temporary)
    assert "expires_at=unknown" in repr(temporary)
    assert_no_leaks({"access": AT}, objects=[temporary])


def test_lifetime_and_expiry() -> None:
    token = Token(AT, RT, issued_at=1000.0, expires_at=4600.0)
    assert token.lifetime == 3600.0
    assert token.expires_in(now=1600.0) == 3000.0
    assert token.expires_in(now=5000.0) == -400.0
    assert token.can_refresh
    unknown = Token(AT, issued_at=1000.0)
    assert unknown.expires_at is None
    assert unknown.lifetime is None
    assert unknown.expires_in(now=1e12) is None
    assert not unknown.can_refresh


def test_fingerprints_name_the_grant_not_the_access_token() -> None:
    a = Token(AT, RT, issued_at=1.0)
    b = Token("at-another-access-token", RT, issued_at=2.0)
    assert a.fingerprint == b.fingerprint
    assert a.access_fingerprint != b.access_fingerprint
    assert len(a.fingerprint) == 12
    assert Token(AT, issued_at=1.0).fingerprint == a.access_fingerprint


@pytest.mark.parametrize(
    "kwargs",
    [
        {"access_token": ""},
        {"access_token": None},
        {"access_token": 123},
        {"refresh_token": ""},
        {"refresh_token": 5},
        {"issued_at": math.nan},
        {"issued_at": math.inf},
        {"issued_at": True},
        {"issued_at": "1000"},
        {"issued_at": None},
        {"expires_at": math.nan},
        {"expires_at": -math.inf},
        {"expires_at": False},
        {"expires_at": 999.0},  # before issued_at
        {"scopes": ["bad scope!"]},
    ],
)
def test_invalid_values_refused(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"access_token": AT, "refresh_token": RT, "issued_at": 1000.0}
    with pytest.raises(ValueError):
        Token(**{**base, **kwargs})


def test_frozen() -> None:
    token = Token(AT, issued_at=1.0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        token.access_token = "x"  # type: ignore[misc]


def test_scopes_normalised() -> None:
    token = Token(AT, issued_at=1.0, scopes="read,EVENTS,read,future_right")
    assert token.scopes == ("read", "events", "future_right")


def test_to_dict_shape() -> None:
    token = Token(AT, RT, issued_at=1000.5, expires_at=4600.5, scopes=(Scope.READ,))
    data = token.to_dict()
    assert data == {
        "version": FORMAT_VERSION,
        "access_token": AT,
        "refresh_token": RT,
        "issued_at": 1000.5,
        "expires_at": 4600.5,
        "scopes": ["read"],
        "token_type": "Bearer",
    }
    assert json.loads(json.dumps(data)) == data


_SECRET = st.text(min_size=1, max_size=60).filter(lambda s: "\x00" not in s)
_TIME = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)
_SCOPES = st.lists(
    st.one_of(
        st.sampled_from([s.value for s in Scope]),
        st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True),
    ),
    unique=True,
    max_size=5,
)


@st.composite
def tokens(draw: st.DrawFn) -> Token:
    issued = draw(_TIME)
    life = draw(st.one_of(st.none(), st.floats(min_value=0, max_value=1e8)))
    return Token(
        access_token=draw(_SECRET),
        refresh_token=draw(st.one_of(st.none(), _SECRET)),
        issued_at=issued,
        expires_at=None if life is None else issued + life,
        scopes=tuple(draw(_SCOPES)),
    )


@given(tokens())
def test_dict_round_trip_through_json(token: Token) -> None:
    data = json.loads(json.dumps(token.to_dict()))
    back = Token.from_dict(data)
    assert back == token
    assert back.lifetime == token.lifetime
    assert back.to_dict() == token.to_dict()


@given(tokens())
def test_repr_never_shows_a_token(token: Token) -> None:
    text = repr(token)
    # Short or common tokens could occur by chance ("1" in a timestamp): only check
    # the ones that could not.
    for secret in (token.access_token, token.refresh_token):
        if secret and len(secret) >= 8:
            assert secret not in text


def test_from_dict_without_version_or_optional_fields() -> None:
    token = Token.from_dict({"access_token": AT, "issued_at": 5.0})
    assert token == Token(AT, issued_at=5.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"access_token": None}, "access_token"),
        ({"access_token": ""}, "access_token"),
        ({"refresh_token": 42}, "refresh_token"),
        ({"issued_at": "yesterday"}, "issued_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"scopes": "read"}, "scopes"),
        ({"scopes": [1]}, "scopes"),
        ({"token_type": 3}, "token_type"),
        ({"version": 99}, "version"),
    ],
)
def test_from_dict_errors_name_the_field_not_the_value(change: dict[str, Any], field: str) -> None:
    data = {**Token(AT, RT, issued_at=1.0, expires_at=2.0).to_dict(), **change}
    with pytest.raises(ValueError) as info:
        Token.from_dict(data)
    assert field in str(info.value)
    assert_no_leaks({"access": AT, "refresh": RT}, exc=info.value)


@pytest.mark.parametrize("field", ["access_token", "issued_at"])
def test_from_dict_missing_required(field: str) -> None:
    data = Token(AT, RT, issued_at=1.0).to_dict()
    del data[field]
    with pytest.raises(ValueError, match=field):
        Token.from_dict(data)


@pytest.mark.parametrize("value", [None, [], "token", 42])
def test_from_dict_not_a_mapping(value: Any) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        Token.from_dict(value)
