"""cove.oci.data.Data: equality, repr and replace from __slots__."""

from __future__ import annotations

import pytest

from cove.oci.data import Data
from cove.oci.runtime_spec import Root


class Point(Data):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: object = None) -> None:
        self.x = x
        self.y = y


class OtherPoint(Data):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: object = None) -> None:
        self.x = x
        self.y = y


class SubPoint(Point):
    __slots__ = ()


def test_equality_compares_every_slot() -> None:
    assert Point(1, "a") == Point(1, "a")
    assert Point(1, [1, 2]) == Point(1, [1, 2])
    assert Point(1, "a") != Point(1, "b")
    assert Point(1, "a") != Point(2, "a")


def test_equality_needs_the_same_type() -> None:
    assert Point(1, 2) != OtherPoint(1, 2)
    assert Point(1, 2) != SubPoint(1, 2)
    assert Point(1, 2) != (1, 2)
    assert Point(1, 2).__eq__((1, 2)) is NotImplemented


def test_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Point(1))


def test_repr_lists_fields_in_slot_order() -> None:
    assert repr(Point(1, "a")) == "Point(x=1, y='a')"
    assert repr(Root("rootfs")) == "Root(path='rootfs', readonly=False)"


def test_replace_returns_a_changed_copy() -> None:
    original = Point(1, "a")
    changed = original.replace(y="b")
    assert changed == Point(1, "b")
    assert type(changed) is Point
    assert original == Point(1, "a")
    same = original.replace()
    assert same == original
    assert same is not original


class Base(Data):
    __slots__ = ()


class Leaf(Base):
    """Fields on the leaf class only, as cove.runtime.process.protocol's messages do."""

    __slots__ = ("v",)

    def __init__(self, v: int) -> None:
        self.v = v


def test_leaf_of_a_fieldless_base() -> None:
    assert Leaf(1) == Leaf(1)
    assert Leaf(1) != Leaf(2)
    assert repr(Leaf(1)) == "Leaf(v=1)"
    changed = Leaf(1).replace(v=2)
    assert type(changed) is Leaf
    assert changed == Leaf(2)


def test_subclass_sees_inherited_fields() -> None:
    assert SubPoint(1, 2) != SubPoint(3, 4)
    assert repr(SubPoint(1, 2)) == "SubPoint(x=1, y=2)"
    assert SubPoint(1, 2).replace(x=3).x == 3


def test_replace_unknown_field_raises_type_error() -> None:
    with pytest.raises(TypeError, match=r"Point has no field.*z"):
        Point(1).replace(z=3)
    with pytest.raises(TypeError, match=r"readOnly"):
        Root("r").replace(path="p", readOnly=True)
