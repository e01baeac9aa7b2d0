"""The canonical form of configuration values: what identifiers are the SHA-256 of.

Every non-scalar value becomes a list whose first item is a one-letter tag, so no two kinds
of value can encode alike (a list never looks like a tuple, a Path never looks like a str).
Scalars stay msgpack's own, which already keeps bool, int, float, str and bytes apart.
Changing anything here changes identifiers: bump ENCODING_VERSION, regenerate
tests/data/identifiers.json and write a migration note (docs/configurations.md, identity rule 8).

`canon` is the reference: one handler per value type, chosen once per type. `field_canon`
(`_canon_field.py`) gives, for a declared field type, a canonicaliser that returns what
`canon` would, faster.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
import os
import sys
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import msgspec

from .._errors import ValidationError
from .._jobdir._names import WORKDIR_ENV
from ._frozen import FrozenDict, FrozenList, FrozenSet

if TYPE_CHECKING:
    from ._config import ConfigBase

encode = msgspec.msgpack.Encoder().encode
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_NAN = float("nan")

current_workdir: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "legato_workdir", default=None
)
"""The workdir that Paths are made relative to: set by an open experiment."""

_env_workdir: tuple[str, Path] = ("", Path())


def active_workdir() -> Path | None:
    """The workdir of the moment: the open experiment's (`current_workdir`), else the one
    a job's process was given (`$LEGATO_WORKDIR`, also set by users for `@cache`), else
    None. Paths inside it are kept relative to it; `@cache` keys its directories there."""
    global _env_workdir
    workdir = current_workdir.get()
    if workdir is not None:
        return workdir
    env = os.environ.get(WORKDIR_ENV)
    if not env:
        return None
    if _env_workdir[0] != env:  # a cache hit must not build a Path each time
        _env_workdir = (env, Path(env))
    return _env_workdir[1]


def _float(value: float) -> float:
    if value == 0.0:
        return 0.0  # -0.0 == 0.0
    if value != value:
        return _NAN  # one NaN, whatever its payload
    return value


def _int(value: int) -> Any:
    if _INT_MIN <= value <= _INT_MAX:
        return value
    return ["I", str(value)]


def main_module_name() -> str:
    """The name `__main__` stands for: `pkg.mod` under `-m`, else the script's file stem."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)
    file = getattr(main, "__file__", None)
    return Path(file).stem if file else "__main__"


def module_name(cls: type) -> str:
    """A class's module, with `__main__` replaced so identities do not depend on how a
    script was started."""
    module: str = cls.__module__
    return main_module_name() if module == "__main__" else module


_enum_names: dict[type, str] = {}


def enum_name(tp: type) -> str:
    """An Enum's type name, worked out once per class (as a Config's is, at class creation)."""
    name = _enum_names.get(tp)
    if name is None:
        name = _enum_names[tp] = f"{module_name(tp)}.{tp.__qualname__}"
    return name


# --- the generic canonical form: one handler per value type, chosen once per type --------


def canon(value: Any, path: str = "value") -> Any:
    """The identity form of a value: msgpack-encodable, equal exactly when identities are."""
    handler = _handlers.get(type(value))
    if handler is None:
        handler = _handler(type(value), value, path)
    return handler(value, path)


def _same(value: Any, path: str) -> Any:
    return value


def _canon_int(value: int, path: str) -> Any:
    return _int(value)


def _canon_float(value: float, path: str) -> Any:
    return _float(value)


def _canon_list(value: list[Any], path: str) -> Any:
    return ["L", *[canon(v, path) for v in value]]


def _canon_tuple(value: tuple[Any, ...], path: str) -> Any:
    return ["U", *[canon(v, path) for v in value]]


def _canon_dict(value: dict[Any, Any], path: str) -> Any:
    items: list[Any] = ["M"]
    for k in sorted(value):
        if type(k) is not str:
            raise ValidationError(f"{path} key", str, k, "dict keys must be str")
        items.append(k)
        items.append(canon(value[k], path))
    return items


def _canon_set(value: set[Any] | frozenset[Any], path: str) -> Any:
    return ["S", *sorted(encode(canon(v, path)) for v in value)]


def _canon_config() -> Canon:
    """A nested configuration is its identifier."""
    from ._identity import identifier_digest  # which needs this module: import once per type

    def config(value: ConfigBase, path: str) -> Any:
        return ["C", identifier_digest(value)]

    return config


def _canon_enum(value: enum.Enum, path: str) -> Any:
    return ["E", enum_name(type(value)), value._name_]


def _canon_path(value: PurePath, path: str) -> Any:
    return ["P", _path(value)]


def _canon_datetime(value: dt.date, path: str) -> Any:
    return ["T", value.isoformat()]


def _canon_date(value: dt.date, path: str) -> Any:
    return ["D", value.isoformat()]


def _canon_int_subclass(value: int, path: str) -> Any:
    return _int(int(value))


def _canon_float_subclass(value: float, path: str) -> Any:
    return _float(float(value))


def _canon_str_subclass(value: str, path: str) -> Any:
    return str(value)


Canon = Callable[[Any, str], Any]

_handlers: dict[type, Canon] = {
    str: _same,
    bool: _same,
    bytes: _same,
    type(None): _same,
    int: _canon_int,
    float: _canon_float,
    list: _canon_list,
    tuple: _canon_tuple,
    dict: _canon_dict,
    set: _canon_set,
    frozenset: _canon_set,
    FrozenList: _canon_list,  # what configurations hold: the same forms as list, dict, set
    FrozenDict: _canon_dict,
    FrozenSet: _canon_set,
}
"""Handlers by exact value type; other types are added on first sight by `_handler`."""


def _handler(t: type, value: Any, path: str) -> Canon:
    from ._config import ConfigBase

    handler: Canon
    if issubclass(t, ConfigBase):
        handler = _canon_config()
    elif issubclass(t, enum.Enum):
        handler = _canon_enum
    elif issubclass(t, PurePath):
        handler = _canon_path
    elif issubclass(t, dt.datetime):
        handler = _canon_datetime
    elif issubclass(t, dt.date):
        handler = _canon_date
    elif issubclass(t, int):  # bool cannot be subclassed: an int subclass
        handler = _canon_int_subclass
    elif issubclass(t, float):
        handler = _canon_float_subclass
    elif issubclass(t, str):
        handler = _canon_str_subclass
    else:
        raise ValidationError(path, "a configuration value type", value, "unsupported type")
    _handlers[t] = handler
    return handler


def _path(value: PurePath) -> str:
    workdir = active_workdir()
    if workdir is not None and value.is_absolute():
        try:
            return value.relative_to(workdir).as_posix()
        except ValueError:
            pass
    return value.as_posix()


class WorkdirDefault:
    """A default holding an absolute Path: its identity form depends on the workdir current
    when an identifier is computed, so it is encoded then rather than once per class."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _holds_absolute_path(value: Any) -> bool:
    if isinstance(value, PurePath):
        return value.is_absolute()
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_holds_absolute_path(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_absolute_path(v) for v in value.values())
    return False


def encode_default(value: Any) -> bytes | WorkdirDefault:
    """The encoded identity form of a default, compared against field values."""
    if _holds_absolute_path(value):
        return WorkdirDefault(value)
    return encode(canon(value, "default"))
