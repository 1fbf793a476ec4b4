"""The JSON codec of the API path: msgspec when installed (the ``speed`` extra), else json.

Answers decode to exactly what :func:`json.loads` gives: msgspec is tried first, and
whatever it refuses (NaN literals, numbers out of float range, lone surrogates, a byte
order mark, a UTF-16 document, deep nesting...) is decoded by the standard library
instead, so the result, or the failure, is the standard library's. (orjson, a little
faster on large answers, was not taken: it decodes integers beyond 64 bits as floats,
so its answers would differ.) Request bodies are encoded by msgspec only when they hold
nothing but strings (a query without variables), where both codecs mean the same; any
other body goes through the standard library, whose handling of floats, NaN, big
integers and non-string keys callers may rely on.

Failures are a plain :class:`ValueError` made here, with no context: a
:class:`json.JSONDecodeError` keeps the whole document in ``.doc``, and the document may
quote a token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["CODEC", "dumps", "dumps_strings", "loads"]

_std_loads = json.loads
# json.loads(bytes) first runs json.detect_encoding(), a Python function, on every call.
# A document that starts with "{" and a second non-NUL byte is UTF-8 by that very
# function's rules (no byte order mark, not UTF-16 or UTF-32), so it is decoded here
# as json.loads would decode it, and handed to the decoder json.loads uses.
_std_decode = json.JSONDecoder().decode
# One encoder for every call: json.dumps() with any non-default argument builds a new
# JSONEncoder each time, which costs about a microsecond per call on the hot path.
_std_encode = json.JSONEncoder(separators=(",", ":")).encode

_fast_loads: Callable[[bytes], Any] | None
_fast_dumps: Callable[[Any], bytes] | None
try:
    import msgspec
except ImportError:  # pragma: no cover - depends on the installed extras
    _fast_loads = _fast_dumps = None
    CODEC = "json"
else:
    _fast_loads, _fast_dumps = msgspec.json.Decoder().decode, msgspec.json.Encoder().encode
    CODEC = "msgspec"


def loads(raw: bytes) -> Any:
    """``raw`` decoded as JSON, exactly as :func:`json.loads` would decode it.

    Raises:
        ValueError: Not JSON, or nested too deeply to decode (never RecursionError);
            the message names the problem, never the content.
    """
    if _fast_loads is not None:
        try:
            return _fast_loads(raw)
        except (ValueError, RecursionError):
            pass  # let the standard library decide: same answer, same failure
    try:
        if raw[:1] == b"{" and raw[1:2] not in (b"\x00", b""):
            return _std_decode(raw.decode("utf-8", "surrogatepass"))
        return _std_loads(raw)
    except RecursionError:
        problem = "nested too deeply"
    except json.JSONDecodeError as e:
        problem = f"{e.msg} at line {e.lineno} column {e.colno}"
    except ValueError as e:  # UnicodeDecodeError and friends: no content in the text
        problem = type(e).__name__
    # Raised out here, not in an except block: no JSONDecodeError (holding the document)
    # and no RecursionError stays attached as context.
    raise ValueError(f"not JSON: {problem}")


def dumps(obj: Any) -> bytes:
    """``obj`` as compact JSON in UTF-8, by the standard library (see module docstring)."""
    return _std_encode(obj).encode()


def dumps_strings(obj: dict[str, str]) -> bytes:
    """A flat object of string values as compact JSON: by msgspec when installed.

    Both codecs give the same JSON value for strings (the standard library escapes
    non-ASCII characters, msgspec writes them as UTF-8). A string msgspec refuses (a lone
    surrogate) goes to the standard library, which escapes it as before.
    """
    if _fast_dumps is not None:
        try:
            return _fast_dumps(obj)
        except (TypeError, ValueError):  # UnicodeEncodeError
            pass
    return _std_encode(obj).encode()
