"""The per-class plan (`_plan.py`): the code it generates for a class does exactly what the
slow, generic way does.

Construction checks each field with a type test and hands any other value to `check_field`;
identifiers encode each field with a canonicaliser specialised to its declared type. Both are
compared here, value by value, with the reference: `check_field` on every field, and `canon`
on every identity field (`_identity._fields`). Values are set after construction as well, so
that the specialised encoders meet values of every type, not only converted ones.
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import astuple, force_setattr

from legato import Config, Constant, Meta, Param, ValidationError, field, tag
from legato._core._identity import ENCODING_VERSION, _fields, _sha256, encode, identifier_digest
from legato._core._plan import Plan, check_field


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Letter(str, enum.Enum):
    A = "a"
    B = "b"


class Inner(Config, name="plan.Inner"):
    a: Param[int] = 0
    b: Param[float] = 0.5


class Many(Config, name="plan.Many"):
    i: Param[int] = 0
    f: Param[float] = 0.0
    s: Param[str] = ""
    b: Param[bool] = False
    raw: Param[bytes] = b""
    none: Param[None] = None
    floats: Param[list[float]] = field(default_factory=list)
    ints: Param[list[int]] = field(default=[])
    words: Param[list[str]] = field(default=[], ignore_default=False)
    nums: Param[tuple[float, ...]] = ()
    pair: Param[tuple[int, str]] = (0, "")
    counts: Param[dict[str, int]] = field(default_factory=dict)
    rates: Param[dict[str, float]] = field(default={})
    nested: Param[dict[str, list[float]]] = field(default={})
    tags: Param[frozenset[str]] = frozenset()
    color: Param[Color] = Color.RED
    level: Param[Level] = Level.LOW
    letter: Param[Letter | None] = None
    inner: Param[Inner] = Inner()
    inners: Param[list[Inner]] = field(default=[])
    anything: Param[Any] = None
    maybe: Param[int | None] = None
    lit: Param[Literal["a", "b", 1]] = "a"
    path: Param[Path | None] = None
    when: Param[dt.datetime | None] = None
    note: Meta[str] = ""
    version: Constant[int] = 3
    needed: Param[int]


def plan() -> Plan:
    return Many.__legato_plan__ or Many._legato_compile()


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**65)
    | st.integers(min_value=-(2**64), max_value=-(2**63) + 2)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, float("nan"), float("inf"), -float("inf")])
    | st.text(max_size=4)
    | st.binary(max_size=4)
    | st.sampled_from([*Color, *Level, *Letter])
    | st.builds(Inner, a=st.integers(-3, 3))
    | st.sampled_from([Path("/w/x"), PurePosixPath("rel/y"), dt.date(2020, 1, 2)])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=3), inner, max_size=4)
        | st.dictionaries(st.integers(-3, 3) | st.none(), inner, max_size=2)
        | st.frozensets(st.integers(-5, 5) | st.text(max_size=2), max_size=4)
    ),
    max_leaves=8,
)
"""Anything: the values a field of each declared type usually holds, and the others."""

NAMES = [f.name for f in plan().checks if f.name not in ("note", "version")]
typed = {
    "floats": st.lists(st.floats(allow_nan=True) | st.integers(-9, 9), max_size=12),
    "ints": st.lists(st.integers() | st.booleans(), max_size=6),
    "words": st.lists(st.text(max_size=3), max_size=6),
    "nums": st.lists(st.floats(allow_nan=True), max_size=6).map(tuple),
    "counts": st.dictionaries(st.text(max_size=3), st.integers(), max_size=6),
    "rates": st.dictionaries(st.text(max_size=3), st.floats(allow_nan=True), max_size=6),
    "inners": st.lists(st.builds(Inner, a=st.integers(-3, 3)), max_size=3),
    "f": st.floats(allow_nan=True) | st.integers(),
    "i": st.integers(),
}
fields = st.fixed_dictionaries(
    {}, optional={name: typed[name] | values if name in typed else values for name in NAMES}
)


def reference_digest(config: Many) -> bytes | type[Exception]:
    """The identifier the slow way: every identity field through `canon`."""
    p = plan()
    try:
        payload = [ENCODING_VERSION, p.type_name, _fields(p.identity, astuple(config))]
        return _sha256(encode(payload)).digest()
    except (ValidationError, TypeError) as exc:
        return type(exc)


def fast_digest(config: Many) -> bytes | type[Exception]:
    try:
        return identifier_digest(config)
    except (ValidationError, TypeError) as exc:
        return type(exc)


@settings(deadline=None, max_examples=300)
@given(fields)
def test_generated_identity_is_the_generic_one_for_any_value(kw: dict[str, Any]) -> None:
    config = Many(needed=1)
    for name, value in kw.items():  # no conversion: whatever the field holds
        force_setattr(config, name, value)
    assert fast_digest(config) == reference_digest(config)


@settings(deadline=None, max_examples=300)
@given(fields)
def test_generated_identity_is_the_generic_one_after_construction(kw: dict[str, Any]) -> None:
    try:
        config = Many(needed=1, **kw)
    except (ValidationError, TypeError):
        return
    assert fast_digest(config) == reference_digest(config)


def construct_slowly(kw: dict[str, Any]) -> Many | tuple[type[Exception], str]:
    """What construction must do: `check_field` on every field, in order."""
    config = Many(needed=1)
    for name, value in kw.items():
        force_setattr(config, name, value)
    try:
        for f, value in zip(plan().checks, astuple(config), strict=True):
            check_field(config, f, value)
    except (ValidationError, TypeError) as exc:
        return type(exc), str(exc)
    return config


@settings(deadline=None, max_examples=300)
@given(fields, st.sets(st.sampled_from(NAMES)))
def test_generated_check_is_check_field_on_every_field(
    kw: dict[str, Any], tagged: set[str]
) -> None:
    kw = {k: tag(v) if k in tagged else v for k, v in kw.items()}
    expected = construct_slowly(kw)
    try:
        config: Many | tuple[type[Exception], str] = Many(needed=kw.pop("needed", 1), **kw)
    except (ValidationError, TypeError) as exc:
        config = (type(exc), str(exc))
    if isinstance(expected, tuple) or isinstance(config, tuple):
        assert config == expected
        return
    assert astuple(config) == astuple(expected)
    assert [type(v) for v in astuple(config)] == [type(v) for v in astuple(expected)]
    assert config.__dict__.get("__legato_tags__") == expected.__dict__.get("__legato_tags__")
    assert fast_digest(config) == reference_digest(expected)  # the same values, deep down


def test_huge_ints_anywhere_take_the_generic_encoding() -> None:
    """Ints beyond 64 bits are taken as they are, make msgpack refuse, and are encoded again
    the slow way: in a field, a list and a dict."""
    for kw in ({"i": 2**64}, {"ints": [1, -(2**63) - 1]}, {"counts": {"a": 2**70}}):
        config = Many(needed=1, **kw)
        assert fast_digest(config) == reference_digest(config)


@pytest.mark.parametrize("name", ["floats", "nums", "rates", "f"])
def test_negative_zero_and_nan_in_float_fields(name: str) -> None:
    box = {"floats": list, "nums": tuple, "rates": lambda xs: dict(zip("abc", xs))}
    make = box.get(name, lambda xs: xs[0])
    for a, b in [(0.0, -0.0), (float("nan"), -float("nan"))]:
        one = Many(needed=1, **{name: make([a, 1.5])})
        other = Many(needed=1, **{name: make([b, 1.5])})
        assert one.__identifier__ == other.__identifier__
        assert fast_digest(one) == reference_digest(one)


def test_identifier_and_its_hex_are_computed_once() -> None:
    config = Many(needed=1, floats=[1.0])
    first = config.__identifier__
    assert config.__identifier__ is first  # the same string object: kept, not remade
    assert identifier_digest(config) is identifier_digest(config)
