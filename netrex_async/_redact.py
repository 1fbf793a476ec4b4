"""Keeping secrets out of logs, exception texts and reprs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from yarl import URL

REDACTED = "***"

#: Query and form parameters whose values are secrets at this provider.
SECRET_PARAMS = frozenset(
    {
        "client_secret",
        "code",
        "code_verifier",
        "access_token",
        "refresh_token",
        "token",
        "password",
        "state",
    }
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a secret (12 hex digits of SHA-256).

    Lets logs and events tell grants apart without showing any part of a token.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def redact_url(url: URL | str) -> str:
    """The URL with every secret query value and any userinfo replaced by ``***``."""
    u = URL(url) if isinstance(url, str) else url
    if u.user is not None or u.password is not None:
        u = u.with_user(None)
    if not u.query_string:
        return str(u)
    query = [(k, REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in u.query.items()]
    return str(u.with_query(query))


def safe_text(text: object, *, limit: int = 200) -> str:
    """Untrusted text made fit for one log line or exception message.

    Control characters (terminal escapes, newlines, bidi overrides) are shown escaped, and
    the text is cut to ``limit`` characters.
    """
    s = str(text)
    s = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), s)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s


def _encoded_forms(secret: str) -> set[str]:
    # A secret quoted in a URL (aiohttp's messages quote the request URL, query string
    # and all) or a form body is percent-encoded, with "+" or "%20" for a space.
    try:
        return {
            secret,
            quote(secret, safe=""),
            quote(secret, safe="/"),
            quote_plus(secret),
            quote_plus(secret, safe="/"),
            URL.build(query={"k": secret}).raw_query_string[2:],
        }
    except (UnicodeError, ValueError):
        # Lone surrogates cannot be encoded, so cannot be in a URL either.
        return {secret}


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each known secret replaced by ``***``.

    The percent-encoded forms a secret takes in a URL or a form body are replaced too.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret and len(secret) >= 4:
            forms |= _encoded_forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text
