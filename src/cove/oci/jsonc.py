"""JSON for the hot path: CPython's C scanner and a small encoder, without `json`.

`import json` costs more than the rest of a `cove-runtime run` (it imports `re` and
`enum`). The C scanner behind `json` lives in `_json` and needs only a settings object;
the documents we write are small dicts of str, int, bool, list and None. Anything unusual,
and every error message, goes through the real `json` module, imported then.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # another Python implementation: json does it all
    _json = None  # type: ignore[assignment]


class _ScannerSettings:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name)  # NaN, Infinity, -Infinity, as json does


_WHITESPACE = " \t\n\r"
_scan = None if _json is None else _json.make_scanner(_ScannerSettings())  # type: ignore[arg-type]


def loads(text: str | bytes) -> Any:
    """Decode JSON; raises ValueError (json.JSONDecodeError) with the position on errors."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if _scan is not None:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration:
            pass  # malformed: let json produce its precise message below
        else:
            if not text[end:].strip(_WHITESPACE):
                return value
    import json

    return json.loads(text)


def _quote(text: str) -> str:
    if _json is not None:
        return _json.encode_basestring_ascii(text)
    import json

    return json.dumps(text)


def dumps(value: Any) -> str:
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    return str(key)


def _encode(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(_quote(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(str(int(value)))
    elif isinstance(value, dict):
        parts.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                parts.append(", ")
            parts.append(_quote(_key(key)))
            parts.append(": ")
            _encode(item, parts)
        parts.append("}")
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(", ")
            _encode(item, parts)
        parts.append("]")
    else:
        import json

        parts.append(json.dumps(value))
