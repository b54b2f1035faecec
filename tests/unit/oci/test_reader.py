"""cove.oci.reader: the typed JSON reader behind parse_spec."""

from __future__ import annotations

from typing import Any

import pytest

from cove.errors import InvalidSpec
from cove.oci.reader import Field, opt_bool, opt_int, opt_str, opt_strs


def test_child_paths_are_dotted_and_indexed() -> None:
    root = Field({"a": {"b": [{"c": 1}]}}, "")
    c = next(root.need("a").need("b").items()).need("c")
    assert c.path == "a.b[0].c"
    assert c.as_int() == 1


def test_get_treats_null_as_absent_and_need_names_missing_path() -> None:
    node = Field({"present": 0, "null": None}, "linux")
    assert node.get("absent") is None
    assert node.get("null") is None
    present = node.get("present")
    assert present is not None
    assert present.value == 0  # a falsy value is still present
    with pytest.raises(InvalidSpec, match=r"^linux\.null: required field is missing$"):
        node.need("null")


@pytest.mark.parametrize(
    ("value", "kind"),
    [(None, "null"), (True, "a boolean"), (1, "a number"), (1.5, "a number"), ("s", "a string"),
     ([], "an array"), ({}, "an object")],
)  # fmt: skip
def test_type_errors_say_what_was_found(value: Any, kind: str) -> None:
    node = Field(value, "x")
    checks = [node.as_str, node.as_int, node.as_bool, node.obj, lambda: list(node.items())]
    failures = 0
    for check in checks:
        try:
            check()
        except InvalidSpec as exc:
            failures += 1
            assert str(exc).startswith("x: expected ")
            assert str(exc).endswith(f"got {kind}")
    assert failures >= 4  # every value has at most one matching accessor


def test_as_int_rejects_booleans() -> None:
    with pytest.raises(InvalidSpec, match=r"got a boolean"):
        Field(False, "n").as_int()
    assert Field(0, "n").as_int() == 0


def test_collections() -> None:
    assert Field(["a", "b"], "l").strs() == ("a", "b")
    assert Field([1, 2], "l").ints() == (1, 2)
    assert Field({"k": "v"}, "m").str_map() == {"k": "v"}
    with pytest.raises(InvalidSpec, match=r"^l\[1\]: expected an integer"):
        Field([1, "2"], "l").ints()
    with pytest.raises(InvalidSpec, match=r"^m\.k: expected a string"):
        Field({"k": None}, "m").str_map()


def test_optional_helpers() -> None:
    node = Field({"s": "v", "i": 3, "b": True, "l": ["x"]}, "")
    assert opt_str(node, "s") == "v"
    assert opt_str(node, "missing", "dflt") == "dflt"
    assert opt_int(node, "i") == 3
    assert opt_int(node, "missing") is None
    assert opt_int(node, "missing", 7) == 7
    assert opt_bool(node, "b") is True
    assert opt_bool(node, "missing") is False
    assert opt_strs(node, "l") == ("x",)
    assert opt_strs(node, "missing") == ()
    with pytest.raises(InvalidSpec, match=r"^s: expected an integer"):
        opt_int(node, "s")
