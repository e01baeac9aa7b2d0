"""Property-based identity tests: equal configurations hash equal, any change is seen."""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from legato import Config, Meta, Param, field, tag


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Inner(Config, name="props.Inner"):
    a: Param[int] = 0
    b: Param[str] = ""


class Props(Config, name="props.Props"):
    flag: Param[bool] = False
    count: Param[int] = 0
    rate: Param[float] = 0.0
    label: Param[str] = ""
    raw: Param[bytes] = b""
    color: Param[Color] = Color.RED
    path: Param[Path] = Path()
    day: Param[dt.date] = dt.date(2000, 1, 1)
    xs: Param[list[float]] = field(default_factory=list)
    tup: Param[tuple[int, ...]] = ()
    mapping: Param[dict[str, int]] = field(default_factory=dict)
    words: Param[frozenset[str]] = frozenset()
    inner: Param[Inner] = Inner()
    maybe: Param[int | None] = None
    note: Meta[str] = ""


class Loose(Config, name="props.Loose"):
    value: Param[Any] = None


def floats(nan: bool) -> st.SearchStrategy[float]:
    return st.floats(allow_nan=nan, allow_infinity=True)


text = st.text(max_size=8)
paths = st.lists(st.text("abc.-_ ", min_size=1, max_size=4), max_size=3).map(
    lambda parts: Path(*parts)
) | st.builds(lambda p: Path("/", p), st.text("xyz", min_size=1, max_size=3))


def field_values(nan: bool) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "flag": st.booleans(),
        "count": st.integers() | st.integers(min_value=2**63 - 2, max_value=2**65),
        "rate": floats(nan) | st.integers(-(2**53), 2**53),
        "label": text,
        "raw": st.binary(max_size=8),
        "color": st.sampled_from(Color),
        "path": paths,
        "day": st.dates(),
        "xs": st.lists(floats(nan), max_size=5),
        "tup": st.lists(st.integers(), max_size=5).map(tuple),
        "mapping": st.dictionaries(text, st.integers(), max_size=5),
        "words": st.frozensets(text, max_size=5),
        "inner": st.builds(Inner, a=st.integers(), b=text),
        "maybe": st.none() | st.integers(),
    }


IDENTITY_FIELDS = sorted(field_values(False))


@st.composite
def kwargs(draw: st.DrawFn, nan: bool = False) -> dict[str, Any]:
    strategies = field_values(nan)
    names = draw(st.sets(st.sampled_from(IDENTITY_FIELDS)))
    return {name: draw(strategies[name]) for name in sorted(names)}


def rebuilt(name: str, value: Any) -> Any:
    """An equal value built another way: other insertion order, int for a whole float."""
    if isinstance(value, dict):
        return dict(reversed(list(value.items())))
    if isinstance(value, frozenset):
        return set(reversed(sorted(value)))
    if isinstance(value, Inner):
        return {"b": value.b, "a": value.a}
    if name == "rate" and isinstance(value, float) and value.is_integer():
        return int(value)
    if name == "xs":
        return tuple(value)
    return value


@settings(deadline=None)
@given(kwargs(nan=True), st.text(max_size=4), st.booleans())
def test_equal_configurations_have_equal_identifiers(
    values: dict[str, Any], note: str, tagged: bool
) -> None:
    first = Props(**values)
    other = {k: rebuilt(k, v) for k, v in reversed(list(values.items()))}
    if tagged:
        other = {k: tag(v) for k, v in other.items()}
    second = Props(**other, note=note)
    assert first.__identifier__ == second.__identifier__


@settings(deadline=None)
@given(kwargs(), st.data())
def test_changing_any_identity_field_changes_the_identifier(
    values: dict[str, Any], data: st.DataObject
) -> None:
    before = Props(**values)
    name = data.draw(st.sampled_from(IDENTITY_FIELDS))
    after = Props(**{**values, name: data.draw(field_values(False)[name])})
    assume(getattr(after, name) != getattr(before, name))  # equal here means -0.0 == 0.0 too
    assert after.__identifier__ != before.__identifier__


@settings(deadline=None)
@given(kwargs(), kwargs())
def test_identifiers_differ_exactly_when_identity_fields_do(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    first, second = Props(**a), Props(**b)
    same = all(getattr(first, n) == getattr(second, n) for n in IDENTITY_FIELDS)
    assert (first.__identifier__ == second.__identifier__) is same


def structure(value: Any) -> Any:
    """What identity sees of a value in an `Any` field: its type counts, not just `==`."""
    t = type(value)
    if t is float:
        return ("float", 0.0 if value == 0 else value)
    if t is list or t is tuple:
        return (t.__name__, tuple(structure(v) for v in value))
    if t is dict:
        return ("dict", frozenset((k, structure(v)) for k, v in value.items()))
    return (t.__name__, value)


scalars = (
    st.none() | st.booleans() | st.integers(-3, 3) | floats(False) | st.text(max_size=2)
) | st.binary(max_size=2)
any_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(deadline=None)
@given(any_values, any_values)
def test_in_an_any_field_the_value_type_counts(a: Any, b: Any) -> None:
    same = structure(a) == structure(b)
    assert (Loose(value=a).__identifier__ == Loose(value=b).__identifier__) is same
