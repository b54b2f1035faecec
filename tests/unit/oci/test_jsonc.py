"""cove.oci.jsonc: the hot-path JSON codec must agree with the json module."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from cove.oci import jsonc

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # optional: the property test is skipped without hypothesis
    given = None

SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    7,
    2**64 + 1,
    -(2**70),
    10**300,
    "",
    "plain",
    "ünïcödé ✓ 中文 😀",
    'quote " backslash \\ slash / end',
    "\n\t\r\b\f\x00\x1f\x7f",
    "\ud800 lone surrogate",
    [],
    {},
    [1, [2, [3, [4, [5, []]]]]],
    {"a": {"b": {"c": [None, True, False, "x", -3]}}},
    {"ociVersion": "1.2.0", "id": "ct-1", "pid": 4242, "annotations": {"k": "v"}},
    {"ünï": "key", "": "empty key", 'with "quote"': 1},
    [{"x": [{}]}, [[]], ""],
]


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_dumps_matches_json(value: Any) -> None:
    assert jsonc.dumps(value) == json.dumps(value)


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_round_trip(value: Any) -> None:
    assert jsonc.loads(jsonc.dumps(value)) == value
    assert jsonc.loads(json.dumps(value, indent=2)) == value
    assert jsonc.loads(json.dumps(value).encode()) == value


@pytest.mark.parametrize(
    "text",
    ["1.5", "-0.25", "1e10", "2.5E-3", "-0.0", "[1.0, 2, 3e2]", '{"f": 6.02e23}', "1E400"],
)
def test_loads_floats_like_json(text: str) -> None:
    assert jsonc.loads(text) == json.loads(text)
    assert type(jsonc.loads(text)) is type(json.loads(text))


def test_loads_constants_like_json() -> None:
    assert math.isnan(jsonc.loads("NaN"))
    assert jsonc.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]


def test_dumps_delegates_floats_and_tuples() -> None:
    assert jsonc.dumps(1.5) == "1.5"
    assert jsonc.dumps({"f": [0.1, -2.5e-8]}) == json.dumps({"f": [0.1, -2.5e-8]})
    assert jsonc.dumps((1, "a", (None,))) == '[1, "a", [null]]'
    assert jsonc.dumps({1: "int key"}) == json.dumps({1: "int key"})


def test_dumps_unserializable_raises_type_error() -> None:
    with pytest.raises(TypeError):
        jsonc.dumps({"s": {1, 2}})


def test_dumps_special_keys_like_json() -> None:
    value = {True: 1, None: 2}
    assert jsonc.dumps(value) == json.dumps(value)


def test_surrounding_whitespace_is_allowed() -> None:
    assert jsonc.loads(' \n\t{"a": [1, 2]}\r\n ') == {"a": [1, 2]}
    assert jsonc.loads(b"  [] \n") == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "{",
        "[1,]",
        "{'a': 1}",
        '{"a" 1}',
        '{"a": 1,}',
        "tru",
        '"unterminated',
        '"control \x01 char"',
        "\x0c1",  # form feed is not JSON whitespace
        "01",
    ],
)
def test_malformed_raises_value_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # the reference agrees it is malformed
    with pytest.raises(ValueError):
        jsonc.loads(text)


@pytest.mark.parametrize("text", ["1 2", "{} x", "[] []", '"a" "b"', "null,"])
def test_trailing_data_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"Extra data"):
        jsonc.loads(text)


def test_error_carries_position() -> None:
    with pytest.raises(json.JSONDecodeError) as info:
        jsonc.loads('{"a": 1, "b": }')
    assert info.value.pos == 14


def test_invalid_utf8_bytes_raise_value_error() -> None:
    with pytest.raises(ValueError):
        jsonc.loads(b'{"a": "\xff"}')


if given is not None:
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
        ),
        max_leaves=25,
    )

    @settings(max_examples=150, deadline=None, database=None)
    @given(json_values)
    def test_property_round_trip(value: Any) -> None:
        assert jsonc.dumps(value) == json.dumps(value)
        assert jsonc.loads(jsonc.dumps(value)) == value
        assert jsonc.loads(json.dumps(value, indent=1, ensure_ascii=False)) == value

else:

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_property_round_trip() -> None:
        pass
