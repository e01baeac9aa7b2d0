"""The canonical form of configuration values: what identifiers are the SHA-256 of.

Every non-scalar value becomes a list whose first item is a one-letter tag, so no two kinds
of value can encode alike (a list never looks like a tuple, a Path never looks like a str).
Scalars stay msgpack's own, which already keeps bool, int, float, str and bytes apart.
Changing anything here changes identifiers: bump ENCODING_VERSION, regenerate
tests/data/identifiers.json and write a migration note (SPEC §2 rule 8).

`canon` is the reference: one handler per value type, chosen once per type. `field_canon`
gives, for a declared field type, a canonicaliser that returns what `canon` would, faster.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
import os
import string
import sys
import textwrap
import typing
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import msgspec

from ._errors import ValidationError

if TYPE_CHECKING:
    from ._config import ConfigBase

_encode = msgspec.msgpack.Encoder().encode
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_NAN = float("nan")

current_workdir: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "legato_workdir", default=None
)
"""The workdir that Paths are made relative to: set by an open experiment."""


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


def _enum_name(tp: type) -> str:
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
    return ["S", *sorted(_encode(canon(v, path)) for v in value)]


def _canon_config() -> Canon:
    """A nested configuration is its identifier."""
    from ._identity import identifier_digest  # which needs this module: import once per type

    def config(value: ConfigBase, path: str) -> Any:
        return ["C", identifier_digest(value)]

    return config


def _canon_enum(value: enum.Enum, path: str) -> Any:
    return ["E", _enum_name(type(value)), value._name_]


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


# --- canonicalisers specialised by declared type, for the per-class plan ----------------
#
# They are optimistic about ints: an int is taken as it is, and one beyond msgpack's 64 bits
# makes the encoder raise OverflowError, upon which `identifier_digest` encodes again with
# `canon` alone. Otherwise each takes its fast path only for values of exactly the types it
# expects and hands any other value to `canon`, so the encoding is always `canon`'s.


class Inline(typing.NamedTuple):
    """A canonicaliser's fast path as Python statements, which the plan writes into the code
    it generates per class (saving a call per field, and letting loops run inline).

    In `source`, `{x}` is a variable that holds the value and must end up holding its
    identity form; `{slow}` is `slow(value, path)`, for values the fast path does not
    take; any other `{name}` is `names[name]` or, if not there, a local variable.
    """

    source: str
    names: dict[str, Any]
    slow: Canon


class FieldCanon(typing.NamedTuple):
    """How the values of a field of some declared type are canonicalised."""

    plain: type | None
    """A value of exactly this type is its own identity form."""
    canon: Canon
    """Any value: what `canon` returns for it, faster for values of the declared type."""
    inline: Inline | None
    """`canon`'s fast path as source, where it has one."""


def field_canon(tp: Any) -> FieldCanon:
    """How to canonicalise the values of a field declared `tp`."""
    from ._config import ConfigBase

    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if tp is None:
        tp = type(None)
    if tp in (str, bool, bytes, type(None), int):
        return FieldCanon(tp, canon, Inline(_PLAIN, {"t": tp}, canon))
    if tp is float:
        return FieldCanon(None, _field_float, Inline(_FLOAT, {}, canon))
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and origin is None:  # (3.10 takes `list[int]` for a type)
        if issubclass(tp, ConfigBase):
            return _field_config(tp)
        if issubclass(tp, enum.Enum):
            return _field_enum(tp)
        return FieldCanon(None, canon, None)
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is ...):
        return _field_sequence(origin, "L" if origin is list else "U", args[0])
    if origin is dict and len(args) == 2 and args[0] is str:
        return _field_dict(args[1])
    return FieldCanon(None, canon, None)


_PLAIN = """
if type({x}) is not {t}:
    {x} = {slow}
"""

# -0.0 and NaN have one identity form each: a float that is neither is its own.
_FLOAT = """
if type({x}) is not float or {x} != {x} or {x} == 0.0:
    {x} = {slow}
"""

_INSTANCE = """
if type({x}) is {t}:
    {x} = {form}
else:
    {x} = {slow}
"""

# A loop rather than a test in C (`list(map(type, x)).count(t) == len(x)`): as fast per
# item, and much faster for the few items a configuration's lists usually hold.
_SEQUENCE = """
if type({x}) is {out}:
    for {v} in {x}:
        if {other}:
            {x} = {slow}
            break
    else:
        {x} = [{letter}, *{x}]
else:
    {x} = {slow}
"""

_DICT = """
if type({x}) is dict:
    {items} = ["M"]
    for {k} in sorted({x}):
        {v} = {x}[{k}]
        if type({k}) is not str or type({v}) is not {plain}:
            {items} = {slow}
            break
        {items}.append({k})
        {items}.append({v})
    {x} = {items}
else:
    {x} = {slow}
"""


def _field_float(value: Any, path: str) -> Any:
    if type(value) is float and value == value and value != 0.0:
        return value
    return canon(value, path)


def _field_config(tp: Any) -> FieldCanon:
    from ._identity import identifier_digest

    source = _INSTANCE.replace("{form}", '["C", {digest}({x})]')
    inline = Inline(source, {"t": tp, "digest": identifier_digest}, canon)
    return FieldCanon(None, _inline_function(inline), inline)


def _field_enum(tp: type[enum.Enum]) -> FieldCanon:
    source = _INSTANCE.replace("{form}", '["E", {name}, {x}._name_]')
    inline = Inline(source, {"t": tp, "name": _enum_name(tp)}, canon)
    return FieldCanon(None, _inline_function(inline), inline)


def _field_sequence(out: Any, letter: str, item_tp: Any) -> FieldCanon:
    plain, item, _ = field_canon(item_tp)

    def field(value: Any, path: str) -> Any:
        if type(value) is not out:
            return canon(value, path)
        return [letter, *[v if type(v) is plain else item(v, path) for v in value]]

    # Where every item is its own identity form, the items are taken as they are.
    if item_tp is float:
        other = "type({v}) is not float or {v} != {v} or {v} == 0.0"
    elif plain is not None:
        other = "type({v}) is not {plain}"
    else:
        return FieldCanon(None, field, None)
    source = _SEQUENCE.replace("{other}", other)
    inline = Inline(source, {"out": out, "letter": letter, "plain": plain}, field)
    return FieldCanon(None, _inline_function(inline), inline)


def _field_dict(value_tp: Any) -> FieldCanon:
    plain, item, _ = field_canon(value_tp)

    def field(value: Any, path: str) -> Any:
        if type(value) is not dict:
            return canon(value, path)
        items: list[Any] = ["M"]
        append = items.append
        for k in sorted(value):
            if type(k) is not str:
                return canon(value, path)
            v = value[k]
            append(k)
            append(v if type(v) is plain else item(v, path))
        return items

    if plain is None:
        return FieldCanon(None, field, None)
    inline = Inline(_DICT, {"plain": plain}, field)
    return FieldCanon(None, _inline_function(inline), inline)


def inline_source(inline: Inline, x: str, path: str, prefix: str) -> tuple[str, dict[str, Any]]:
    """`inline`'s statements for the value in variable `x` (its path in variable `path`),
    and the names they use; all but `x` and `path` begin with `prefix`."""
    fields = {name for _, name, _, _ in string.Formatter().parse(inline.source) if name}
    fmt = {name: prefix + name for name in fields}
    fmt["x"] = x
    fmt["slow"] = f"{prefix}slow({x}, {path})"
    names = {prefix + k: v for k, v in inline.names.items()}
    names[prefix + "slow"] = inline.slow
    return inline.source.format(**fmt), names


def _inline_function(inline: Inline) -> Canon:
    """The canonicaliser that `inline` describes."""
    source, ns = inline_source(inline, "x", "path", "_")
    body = textwrap.indent(source.strip("\n"), "    ")
    code = f"def fast(x, path):\n{body}\n    return x\n"
    exec(compile(code, "<legato canon>", "exec"), ns)  # noqa: S102 - fixed source
    fast: Canon = ns["fast"]
    return fast


def _path(value: PurePath) -> str:
    workdir = current_workdir.get()
    if workdir is None:
        env = os.environ.get("LEGATO_WORKDIR")  # set for job processes
        workdir = Path(env) if env else None
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
    t = type(value)
    if t is list or t is tuple or t is set or t is frozenset:
        return any(_holds_absolute_path(v) for v in value)
    if t is dict:
        return any(_holds_absolute_path(v) for v in value.values())
    return False


def encode_default(value: Any) -> bytes | WorkdirDefault:
    """The encoded identity form of a default, compared against field values."""
    if _holds_absolute_path(value):
        return WorkdirDefault(value)
    return _encode(canon(value, "default"))
