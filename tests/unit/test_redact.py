"""The redaction helpers, and the leak checker the other tests rely on."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from netrex_async._redact import REDACTED, fingerprint, redact_url, safe_text, scrub

from ._leaks import assert_no_leaks, find_leaks, secret_forms

SECRET = "s3cret+/=&x y-value"


# -- redact_url --------------------------------------------------------------------------


def test_redact_url_hides_secret_params_keeps_others() -> None:
    url = URL("https://h.example/oauth2/token").with_query(
        {
            "client_id": "cid",
            "client_secret": SECRET,
            "grant_type": "refresh_token",
            "refresh_token": "rt-0123456789",
            "code": "code-0123456789",
            "access_token": "at-0123456789",
            "code_verifier": "ver-0123456789",
        }
    )
    text = redact_url(url)
    assert "client_id=cid" in text
    assert "grant_type=refresh_token" in text
    assert text.count(REDACTED) == 5
    assert_no_leaks(
        [SECRET, "rt-0123456789", "code-0123456789", "at-0123456789", "ver-0123456789"],
        objects=[text],
    )
    assert redact_url(str(url)) == text


def test_redact_url_param_names_case_insensitive_and_userinfo() -> None:
    text = redact_url("https://user:pass-word-1@h.example/p?Client_Secret=abcdefgh123")
    assert "pass-word-1" not in text
    assert "abcdefgh123" not in text
    assert redact_url("https://h.example/p") == "https://h.example/p"


# -- safe_text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("line1\nline2", "line1\\nline2"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\rb\tc\x00d", "a\\rb\\tc\\x00d"),
        ("bidi\u202eevil", "bidi\\u202eevil"),
        ("next\u2028line", "next\\u2028line"),
        ("plain text, é ok", "plain text, é ok"),
    ],
)
def test_safe_text_escapes_control_characters(raw: str, shown: str) -> None:
    assert safe_text(raw) == shown


def test_safe_text_limits_length() -> None:
    out = safe_text("x" * 1000, limit=50)
    assert len(out) == 50
    assert out.endswith("…")
    assert safe_text("short", limit=50) == "short"


@given(st.text(max_size=300), st.integers(min_value=1, max_value=250))
def test_safe_text_is_one_clean_line(text: str, limit: int) -> None:
    out = safe_text(text, limit=limit)
    assert len(out) <= limit
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in out)
    assert "\u2028" not in out
    assert "\u2029" not in out
    assert not any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in out)


# -- scrub -------------------------------------------------------------------------------


def test_scrub_replaces_every_occurrence() -> None:
    text = f"a {SECRET} b {SECRET} c"
    assert scrub(text, [SECRET, None, ""]) == f"a {REDACTED} b {REDACTED} c"


@pytest.mark.parametrize("form", sorted(secret_forms(SECRET)))
def test_scrub_replaces_encoded_forms(form: str) -> None:
    """aiohttp's messages quote URLs, where a secret appears percent-encoded."""
    out = scrub(f"POST https://h.example/oauth2/token?client_secret={form}&x=1", [SECRET])
    assert_no_leaks([SECRET], objects=[out])


def test_scrub_copes_with_unencodable_secrets() -> None:
    assert scrub("a \ud800secret b", ["\ud800secret"]) == "a *** b"


_ANY = st.text(st.characters(exclude_categories=()), max_size=40)


@given(st.text(st.characters(exclude_categories=()), min_size=8, max_size=40), _ANY, _ANY)
def test_scrub_property(secret: str, before: str, after: str) -> None:
    out = scrub(before + secret + after, [secret])
    assert secret not in out


# -- fingerprint -------------------------------------------------------------------------


def test_fingerprint_is_short_stable_and_distinct() -> None:
    assert fingerprint("abc") == fingerprint("abc")
    assert fingerprint("abc") != fingerprint("abd")
    assert len(fingerprint("abc")) == 12
    assert "abc" not in fingerprint("abc")
    fingerprint("\udcff lone surrogate")  # does not raise


# -- the leak checker itself: it must be able to fail -------------------------------------


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("netrex_async.test", logging.DEBUG, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_checker_finds_a_secret_in_the_message_args_and_extra() -> None:
    assert find_leaks([SECRET], [_record(f"x {SECRET}")])
    assert find_leaks([SECRET], [_record("x %s", SECRET)])
    assert find_leaks([SECRET], [_record("x %r", [SECRET])])
    assert find_leaks([SECRET], [_record("x", endpoint=f"https://h/?s={SECRET}")])
    assert not find_leaks([SECRET], [_record("x %s", "nothing", endpoint="https://h/")])


def test_checker_finds_a_secret_in_encoded_form() -> None:
    url = URL("https://h.example/t").with_query({"client_secret": SECRET})
    assert SECRET not in str(url)
    leaks = find_leaks({"client_secret": SECRET}, [_record("POST %s", url)])
    assert len(leaks) == 3  # the message, and the argument's str and repr
    assert all(leak.endswith(": client_secret") for leak in leaks)
    assert SECRET not in "".join(leaks)


def test_checker_follows_suppressed_exception_chains() -> None:
    def boom() -> None:
        try:
            raise OSError(f"connect to https://h/?client_secret={SECRET} failed")
        except OSError:
            raise RuntimeError("all clean") from None

    with pytest.raises(RuntimeError) as info:
        boom()
    assert str(info.value) == "all clean"
    assert find_leaks([SECRET], exc=info.value)
    assert find_leaks([SECRET], [_record("failed: %s", info.value)])
    record = _record("failed")
    record.exc_info = (RuntimeError, info.value, None)
    assert find_leaks([SECRET], [record])


def test_checker_looks_at_exception_attributes_and_groups() -> None:
    exc = ValueError("clean")
    exc.detail = SECRET  # type: ignore[attr-defined]
    assert find_leaks([SECRET], exc=exc)
    group = ExceptionGroup("clean", [ValueError(SECRET)])
    assert find_leaks([SECRET], exc=group)


def test_checker_looks_at_reprs() -> None:
    class Leaky:
        def __repr__(self) -> str:
            return f"Leaky({SECRET!r})"

    assert find_leaks([SECRET], objects=[Leaky()])
    with pytest.raises(AssertionError, match="secret #0"):
        assert_no_leaks([SECRET], objects=[Leaky()])


def test_checker_refuses_short_secrets() -> None:
    with pytest.raises(ValueError, match="at least"):
        find_leaks(["abc"])
