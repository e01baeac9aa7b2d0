"""Per-type coercers, compiled once per field, that convert values to the declared type.

Converting at construction is what makes `Float(value=1)` and `Float(value=1.0)` one
configuration (docs/configurations.md, identity rule 2). Each coercer takes `(value, path)` and
returns the converted
value or raises `ValidationError` naming `path` (`Learn.model.hidden`, `Sweep.lrs[2]`).
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from .._errors import ConfigError, ValidationError
from ._frozen import FrozenDict, FrozenList, FrozenSet, check_str, freeze, from_numpy

Coercer = Callable[[Any, str], Any]

_SCALARS: tuple[type, ...] = (bool, int, float, str, bytes, type(None))


def _any(value: Any, path: str) -> Any:
    # The declared type says nothing: check what can be written, and make it read-only.
    return freeze(value, path)


def _numpy(value: Any) -> Any:
    """A numpy value as the equal Python one (numpy sweeps, `np.linspace`), else `value`."""
    return from_numpy(value) if type(value).__module__ == "numpy" else value


def _exact(tp: type) -> Coercer:
    def coerce(value: Any, path: str) -> Any:
        if type(value) is tp:
            return check_str(value, path) if type(value) is str else value
        if tp is not bool and isinstance(value, tp) and not isinstance(value, bool):
            # str.__str__ keeps the characters; str() of a (str, Enum) member is "Cls.NAME".
            return check_str(str.__str__(value), path) if tp is str else tp(value)
        converted = _numpy(value)
        if converted is not value and type(converted) is tp:
            return converted
        raise ValidationError(path, tp, value)

    return coerce


def _float(value: Any, path: str) -> Any:
    if type(value) is float:
        return value
    value = _numpy(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ValidationError(path, float, value, "too large for a float") from None
    raise ValidationError(path, float, value)


def _bytes(value: Any, path: str) -> Any:
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ValidationError(path, bytes, value)


def _none(value: Any, path: str) -> Any:
    if value is None:
        return None
    raise ValidationError(path, None, value)


def _path(value: Any, path: str) -> Any:
    if isinstance(value, Path):
        return value
    if isinstance(value, (str, PurePath, os.PathLike)):
        return Path(value)
    raise ValidationError(path, Path, value)


def _instance(tp: type) -> Coercer:
    def coerce(value: Any, path: str) -> Any:
        if isinstance(value, tp):
            return value
        raise ValidationError(path, tp, value)

    return coerce


def _enum(tp: type[enum.Enum]) -> Coercer:
    def coerce(value: Any, path: str) -> Any:
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except (ValueError, TypeError):
            raise ValidationError(path, tp, value) from None

    return coerce


def _config(tp: type) -> Coercer:
    def coerce(value: Any, path: str) -> Any:
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            # A plain mapping builds the nested config, with errors named from the outer path.
            try:
                return tp(**value)
            except ValidationError as exc:
                inner = exc.path.partition(".")[2]
                raise ValidationError(f"{path}.{inner}", exc.expected, exc.value) from None
        raise ValidationError(path, tp, value)

    return coerce


def _all_of(tp: type | None) -> Callable[[Any], bool] | None:
    """A check that every item of a collection has exactly type `tp` (which needs no
    conversion): the fast path of collections of scalars, enums or configs. (A loop: for
    the few items a configuration's lists usually hold, much faster than a test in C such
    as `list(map(type, items)).count(tp) == len(items)`, and as fast per item.)"""
    if tp is None:
        return None

    def check(items: Any) -> bool:
        for item in items:  # noqa: SIM110 - faster than all() over a generator
            if type(item) is not tp:
                return False
        return True

    return check


def _sequence(item: Coercer, out: type, expected: Any, item_type: type | None) -> Coercer:
    all_exact = _all_of(item_type)

    frozen = FrozenList if out is list else tuple

    def coerce(value: Any, path: str) -> Any:
        if not isinstance(value, (list, tuple)):
            converted = _numpy(value)
            if not isinstance(converted, list):  # a 1-D array
                raise ValidationError(path, expected, value)
            value = converted
        if all_exact is not None and all_exact(value):
            return value if type(value) is frozen else frozen(value)
        try:
            items = [item(v, path) for v in value]
        except ValidationError:
            for i, v in enumerate(value):  # again, to name the failing index
                item(v, f"{path}[{i}]")
            raise
        return frozen(items)

    return coerce


def _fixed_tuple(items: list[Coercer], expected: Any) -> Coercer:
    def coerce(value: Any, path: str) -> Any:
        value = _numpy(value)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise ValidationError(path, expected, value, f"needs {len(items)} items")
        return tuple(
            c(v, f"{path}[{i}]") for i, (c, v) in enumerate(zip(items, value, strict=True))
        )

    return coerce


def _set(item: Coercer, out: type, expected: Any) -> Coercer:
    frozen = FrozenSet if out is set else frozenset

    def coerce(value: Any, path: str) -> Any:
        value = _numpy(value)
        if not isinstance(value, (set, frozenset, list, tuple)):
            raise ValidationError(path, expected, value)
        return frozen(item(v, f"{path} item") for v in value)

    return coerce


def _str_keys(value: dict[Any, Any]) -> bool:
    for k in value:  # noqa: SIM110 - faster than all() over a generator
        if type(k) is not str:
            return False
    return True


def _dict(value_coercer: Coercer, expected: Any, value_type: type | None) -> Coercer:
    all_exact = _all_of(value_type)

    def coerce(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(path, expected, value)
        if all_exact is not None and _str_keys(value) and all_exact(value.values()):
            return value if type(value) is FrozenDict else FrozenDict(value)
        result = FrozenDict()
        for k, v in value.items():
            if type(k) is not str:
                raise ValidationError(f"{path} key", str, k, "dict keys must be str")
            try:
                dict.__setitem__(result, k, value_coercer(v, path))
            except ValidationError:
                value_coercer(v, f"{path}[{k!r}]")
                raise
        return result

    return coerce


def _union(members: list[Any], coercers: list[Coercer], expected: Any) -> Coercer:
    # Containers are never taken as they are: they are copied read-only.
    exact = tuple(m for m in members if isinstance(m, type) and m not in _CONTAINERS)

    def coerce(value: Any, path: str) -> Any:
        # The value's own type counts first (rule 2: True, 1 and 1.0 stay apart).
        if type(value) in exact:
            return value
        for c in coercers:
            try:
                return c(value, path)
            except ValidationError:
                continue
        raise ValidationError(path, expected, value)

    return coerce


def _literal(values: tuple[Any, ...], expected: Any) -> Coercer:
    def coerce(value: Any, path: str) -> Any:
        for v in values:
            if type(v) is type(value) and v == value:
                return value
        raise ValidationError(path, expected, value)

    return coerce


def compile_coercer(tp: Any, where: str) -> Coercer:
    """Build the coercer of type `tp`; `where` names the field in class-declaration errors."""
    from ._config import ConfigBase

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return compile_coercer(args[0], where)
    if tp is Any or tp is object:
        return _any
    if tp is float:
        return _float
    if tp is bytes:
        return _bytes
    if tp is None or tp is type(None):
        return _none
    if tp in (bool, int, str):
        return _exact(tp)
    if isinstance(tp, type):
        if issubclass(tp, ConfigBase):
            return _config(tp)
        if issubclass(tp, enum.Enum):
            return _enum(tp)
        if issubclass(tp, PurePath):
            return _path
        if issubclass(tp, (dt.date, dt.datetime)):
            return _instance(tp)
        if tp in (list, tuple, set, frozenset, dict):
            return compile_coercer(tp[Any] if tp is not dict else dict[str, Any], where)
    if origin in (list, tuple) and (origin is list or (len(args) == 2 and args[1] is ...)):
        item = args[0] if args else Any
        return _sequence(compile_coercer(item, where), origin, tp, exact_type(item))
    if origin is tuple:
        return _fixed_tuple([compile_coercer(a, where) for a in args], tp)
    if origin in (set, frozenset):
        return _set(compile_coercer(args[0] if args else Any, where), origin, tp)
    if origin is dict:
        if args and args[0] is not str:
            raise ConfigError(f"{where}: dict keys must be str, not {args[0]!r}")
        value_tp = args[1] if args else Any
        return _dict(compile_coercer(value_tp, where), tp, exact_type(value_tp))
    if origin is typing.Union or origin is types.UnionType:
        return _union(list(args), [compile_coercer(a, where) for a in args], tp)
    if origin is typing.Literal:
        return _literal(args, tp)
    raise ConfigError(f"{where}: type {tp!r} is not a supported configuration value type")


_PATH_TYPE = type(Path())


def exact_type(tp: Any) -> type | None:
    """The type whose exact instances the coercer of `tp` returns unchanged, if there is one."""
    from ._config import ConfigBase

    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if tp is None:
        return type(None)
    if tp in _SCALARS:
        return tp  # type: ignore[no-any-return]
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        if issubclass(tp, (ConfigBase, enum.Enum, dt.date)):
            return tp
        if issubclass(tp, PurePath):
            return _PATH_TYPE
    return None


_CONTAINERS = (list, tuple, set, frozenset, dict)

SUPPORTED_SCALARS = _SCALARS
