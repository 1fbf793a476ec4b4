"""The codec of the ``speed`` extra gives exactly the stdlib's answers."""

from __future__ import annotations

import importlib
import json
import math
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netrex_async import _json as codec

# -- the codec: byte-identical answers, whichever codec runs --------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def same(a: object, b: object) -> bool:
    """Equal, and of the same types all the way down (1 == 1.0 == True does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))  # type: ignore[arg-type]
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)  # type: ignore[index]
    return a == b


@pytest.fixture(params=["installed", "stdlib only"])
def codecs(request, monkeypatch):
    """Both paths of codec.loads(): msgspec first (if installed), and the stdlib alone."""
    if request.param == "stdlib only":
        monkeypatch.setattr(codec, "_fast_loads", None)
    return request.param


# The fixture only sets which codec runs, the same for every generated input.
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values, st.sampled_from([{}, {"ensure_ascii": False}, {"indent": 1}]))
def test_decoding_gives_the_stdlib_answer(codecs, value, style):
    raw = json.dumps(value, **style).encode()
    assert same(codec.loads(raw), json.loads(raw))
    wrapped = json.dumps({"data": value}, **style).encode()  # an object: the "{" fast path
    assert same(codec.loads(wrapped), json.loads(wrapped))


ODD_DOCUMENTS = [
    b"NaN",
    b"[Infinity, -Infinity]",
    b"123456789012345678901234567890",
    b"-0",
    b"-0.0",
    b"1e400",
    b"1E-400",
    b'"\\ud800"',
    b'{"a":1,"a":2}',
    b"\xef\xbb\xbf[1]",  # UTF-8 byte order mark
    '["é"]'.encode("utf-16"),
    b"[" * 2000 + b"]" * 2000,
    b" [1] ",
    b"[1,]",
    b"\xff",
    b"",
    b'"\x01"',
    # Objects: the stdlib-only path decodes "{" and a non-NUL byte as UTF-8 itself.
    b"{",
    b"{}",
    b'{"a":1} x',
    b'{"a":"\xed\xa0\x80"}',  # a UTF-8-encoded surrogate: json.loads passes it through
    b'{"a":"\xff"}',
    b"{\x00}",
    '{"é":1}'.encode("utf-16-le"),
    '{"é":1}'.encode("utf-32-le"),
    b"\xef\xbb\xbf{}",
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
]


@pytest.mark.parametrize("raw", ODD_DOCUMENTS)
def test_odd_documents_decode_or_fail_as_in_the_stdlib(codecs, raw):
    try:
        expected: object = json.loads(raw)
    except (ValueError, RecursionError):
        with pytest.raises(ValueError, match="not JSON"):
            codec.loads(raw)
    else:
        assert same(codec.loads(raw), expected)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["query", "operationName"]), st.text()))
def test_string_bodies_encode_to_the_same_json_value(payload):
    assert json.loads(codec.dumps_strings(payload)) == payload
    assert json.loads(codec.dumps(payload)) == payload


def test_a_lone_surrogate_in_a_query_is_escaped_as_before():
    payload = {"query": '{a(x: "\ud800")}'}
    assert codec.dumps_strings(payload) == json.dumps(payload, separators=(",", ":")).encode()


def test_variables_keep_the_stdlib_encoding():
    # Floats, big integers, NaN and non-string keys mean what they meant before.
    payload = {"query": "q", "variables": {"f": 1e16, "big": 2**70, 1: "x", "n": float("nan")}}
    assert codec.dumps(payload) == json.dumps(payload, separators=(",", ":")).encode()


def test_the_speed_codec_is_used_when_installed():
    pytest.importorskip("msgspec")
    assert codec.CODEC == "msgspec"


def test_without_the_extra_the_stdlib_does_everything(monkeypatch):
    monkeypatch.setitem(sys.modules, "msgspec", None)  # import msgspec -> ImportError
    try:
        plain = importlib.reload(codec)
        assert plain.CODEC == "json"
        assert plain.loads(b'{"a":[1,2.5]}') == {"a": [1, 2.5]}
        assert plain.dumps_strings({"query": "é"}) == b'{"query":"\\u00e9"}'
        with pytest.raises(ValueError, match="nested too deeply"):
            plain.loads(b"[" * 100_000 + b"]" * 100_000)
    finally:
        monkeypatch.undo()
        importlib.reload(codec)
    assert codec.CODEC in ("json", "msgspec")
