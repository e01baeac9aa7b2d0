"""Read-only containers, and the check that a free-form value can be written to disk.

A configuration's identifier is computed once and kept, and its job directory is named
after it: a list changed inside a configuration after that would make the directory hold
other work than its name says. So construction copies every list, dict and set a
configuration holds into these read-only subclasses. They are still a `list`, a `dict`
and a `set` (`isinstance`, indexing, iteration, `json`, msgspec and pickle all work);
only the methods that change them in place raise. `.copy()` gives a plain, mutable one.

`freeze` does the same for a value whose declared type says nothing (`Any`), and checks on
the way what the params file and the identity need: only supported value types, no
container that contains itself, no string that UTF-8 cannot encode.
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import PurePath
from typing import Any, NoReturn

from .._errors import ConfigError, ValidationError

__all__ = ["FrozenDict", "FrozenList", "FrozenSet", "check_str", "freeze", "from_numpy"]


def _immutable(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    kind = type(self).__mro__[1].__name__
    raise ConfigError(
        f"this {kind} belongs to a configuration, and configurations are immutable (their "
        f"identifier names their job directory): change a copy, `{kind}(value)`, and build "
        "a new configuration with it"
    )


class FrozenList(list):  # type: ignore[type-arg]
    """A list held by a configuration: reads as a list, refuses changes."""

    __slots__ = ()
    append = extend = insert = pop = remove = clear = sort = reverse = _immutable
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _immutable

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict held by a configuration: reads as a dict, refuses changes."""

    __slots__ = ()
    pop = popitem = clear = update = setdefault = _immutable
    __setitem__ = __delitem__ = __ior__ = _immutable

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class FrozenSet(set):  # type: ignore[type-arg]
    """A set held by a configuration: reads as a set, refuses changes."""

    __slots__ = ()
    add = discard = remove = pop = clear = update = _immutable
    difference_update = intersection_update = symmetric_difference_update = _immutable
    __ior__ = __iand__ = __isub__ = __ixor__ = _immutable

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenSet, (set(self),))


def check_str(value: str, path: str) -> str:
    """`value`, if UTF-8 can encode it (the params file and the identity are UTF-8)."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValidationError(
                path, str, value, "holds a lone surrogate, which UTF-8 cannot encode"
            ) from None
    return value


def from_numpy(value: Any) -> Any:
    """A numpy scalar as the equal Python value, an array as (nested) lists; any other
    value unchanged. Only looks at numpy values, so numpy is never imported here."""
    if type(value).__module__ != "numpy":
        return value
    if hasattr(value, "ndim") and value.ndim > 0 and hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


_PLAIN = (bool, int, float, bytes, type(None))
_LEAVES: tuple[type, ...] = (enum.Enum, PurePath, dt.date, int, float, str)


def freeze(value: Any, path: str) -> Any:
    """`value` with its containers made read-only, after checking it can be written.

    Returns `value` itself when it holds nothing to convert. Raises `ValidationError`
    naming `path` for a value of an unsupported type, a container that contains itself, a
    dict with a key that is not a str, or a string with a lone surrogate.
    """
    return _freeze(value, path, set())


def _freeze(value: Any, path: str, active: set[int]) -> Any:
    t = type(value)
    if t is str:
        return check_str(value, path)
    if t in _PLAIN:
        return value
    if t is list or t is tuple or t is FrozenList or t is dict or t is FrozenDict:
        key = id(value)
        if key in active:
            raise ValidationError(path, "a value that can be written", value, "contains itself")
        active.add(key)
        try:
            if t is dict or t is FrozenDict:
                items: dict[str, Any] = {}
                for k, v in value.items():
                    if type(k) is not str:
                        raise ValidationError(f"{path} key", str, k, "dict keys must be str")
                    items[check_str(k, f"{path} key")] = _freeze(v, f"{path}[{k!r}]", active)
                return (
                    value
                    if t is FrozenDict and _same(items.values(), value.values())
                    else (FrozenDict(items))
                )
            new = [_freeze(v, f"{path}[{i}]", active) for i, v in enumerate(value)]
        finally:
            active.discard(key)
        if t is tuple:
            return value if _same(new, value) else tuple(new)
        return value if t is FrozenList and _same(new, value) else FrozenList(new)
    if t is set or t is frozenset or t is FrozenSet:
        new = [_freeze(v, f"{path} item", active) for v in value]
        if t is frozenset:
            return value if _same(new, value) else frozenset(new)
        return value if t is FrozenSet and _same(new, value) else FrozenSet(new)
    from ._config import ConfigBase

    if isinstance(value, ConfigBase):
        return value  # checked when it was built
    if t.__module__ == "numpy":
        converted = from_numpy(value)
        if converted is not value:
            return _freeze(converted, path, active)
    if isinstance(value, _LEAVES):
        if isinstance(value, (str, PurePath)):  # (a Path made by os.fsdecode, say)
            check_str(str(value), path)
        return value
    raise ValidationError(path, "a configuration value type", value, "unsupported type")


def _same(new: Any, old: Any) -> bool:
    """Whether `new` holds the very objects `old` does, in order."""
    return all(a is b for a, b in zip(new, old, strict=True))
