"""Canonicalisers specialised to a field's declared type, for the per-class plan.

They are optimistic about ints: an int is taken as it is, and one beyond msgpack's 64 bits
makes the encoder raise OverflowError, upon which `identifier_digest` encodes again with
`canon` alone. Otherwise each takes its fast path only for values of exactly the types it
expects and hands any other value to `canon` (`_canon.py`), so the encoding is always
`canon`'s: tests/test_plan.py checks them against it value by value.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable
from typing import Any

from ._canon import Canon, canon, enum_name
from ._codegen import run_source
from ._frozen import FrozenDict, FrozenList

__all__ = ["FieldCanon", "Inline", "field_canon", "inline_source"]


Lines = Callable[[str, Callable[[str], str], str], list[str]]
"""A fast path's statements: given the variable `x` that holds the value (and must end
up holding its identity form), `n(name)`, the generated name of any other variable it
uses (a name of `Inline.names` or a local), and `slow`, the expression that
canonicalises values the fast path does not take. The f-string lines of every code
generator (`_plan`, `_identity`, `_validate`)."""


class Inline(typing.NamedTuple):
    """A canonicaliser's fast path as Python statements, which the plan writes into the code
    it generates per class (saving a call per field, and letting loops run inline)."""

    lines: Lines
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
        return FieldCanon(tp, canon, Inline(_plain, {"t": tp}, canon))
    if tp is float:
        return FieldCanon(None, _field_float, Inline(_float, {}, canon))
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and origin is None:  # (3.10 takes `list[int]` for a type)
        if issubclass(tp, ConfigBase):
            return _field_config(tp)
        if issubclass(tp, enum.Enum):
            return _field_enum(tp)
        return FieldCanon(None, canon, None)
    if origin is list:  # a configuration holds its lists read-only (`_frozen`)
        return _field_sequence(FrozenList, "L", args[0])
    if origin is tuple and len(args) == 2 and args[1] is ...:
        return _field_sequence(tuple, "U", args[0])
    if origin is dict and len(args) == 2 and args[0] is str:
        return _field_dict(args[1])
    return FieldCanon(None, canon, None)


def _plain(x: str, n: Callable[[str], str], slow: str) -> list[str]:
    return [f"if type({x}) is not {n('t')}:", f"    {x} = {slow}"]


def _float(x: str, n: Callable[[str], str], slow: str) -> list[str]:
    # -0.0 and NaN have one identity form each: a float that is neither is its own.
    return [f"if type({x}) is not float or {x} != {x} or {x} == 0.0:", f"    {x} = {slow}"]


def _exact_type(form: Callable[[str, Callable[[str], str]], str]) -> Lines:
    """The fast path of a type whose values, of exactly that type (`t`), have the identity
    form `form(x, n)` (an expression)."""

    def lines(x: str, n: Callable[[str], str], slow: str) -> list[str]:
        return [
            f"if type({x}) is {n('t')}:",
            f"    {x} = {form(x, n)}",
            "else:",
            f"    {x} = {slow}",
        ]

    return lines


_config = _exact_type(lambda x, n: f'["C", {n("digest")}({x})]')
_enum = _exact_type(lambda x, n: f'["E", {n("name")}, {x}._name_]')


def _sequence_lines(rejects: Callable[[str, Callable[[str], str]], str]) -> Lines:
    """The fast path of a list or tuple whose items are their own identity form, those
    that `rejects(v, n)` (an expression) does not reject.

    A loop rather than a test in C (`list(map(type, x)).count(t) == len(x)`, or
    `set(map(type, x)) <= {t}`): fewer instructions for the few items a configuration's
    lists usually hold, on CPython 3.11 (benchmarks/bench_identity.py)."""

    def lines(x: str, n: Callable[[str], str], slow: str) -> list[str]:
        v = n("v")
        return [
            f"if type({x}) is {n('out')}:",
            f"    for {v} in {x}:",
            f"        if {rejects(v, n)}:",
            f"            {x} = {slow}",
            "            break",
            "    else:",
            f"        {x} = [{n('letter')}, *{x}]",
            "else:",
            f"    {x} = {slow}",
        ]

    return lines


_sequence = _sequence_lines(lambda v, n: f"type({v}) is not {n('plain')}")
# Floats are their own identity form but for -0.0 and NaN.
_float_sequence = _sequence_lines(
    lambda v, n: f"type({v}) is not float or {v} != {v} or {v} == 0.0"
)


def _dict(x: str, n: Callable[[str], str], slow: str) -> list[str]:
    k, v, items = n("k"), n("v"), n("items")
    return [
        f"if type({x}) is {n('frozen')}:",
        f'    {items} = ["M"]',
        f"    for {k} in sorted({x}):",
        f"        {v} = {x}[{k}]",
        f"        if type({k}) is not str or type({v}) is not {n('plain')}:",
        f"            {items} = {slow}",
        "            break",
        f"        {items}.append({k})",
        f"        {items}.append({v})",
        f"    {x} = {items}",
        "else:",
        f"    {x} = {slow}",
    ]


def _field_float(value: Any, path: str) -> Any:
    if type(value) is float and value == value and value != 0.0:
        return value
    return canon(value, path)


def _field_config(tp: Any) -> FieldCanon:
    from ._identity import identifier_digest

    inline = Inline(_config, {"t": tp, "digest": identifier_digest}, canon)
    return FieldCanon(None, _inline_function(inline), inline)


def _field_enum(tp: type[enum.Enum]) -> FieldCanon:
    inline = Inline(_enum, {"t": tp, "name": enum_name(tp)}, canon)
    return FieldCanon(None, _inline_function(inline), inline)


def _field_sequence(out: Any, letter: str, item_tp: Any) -> FieldCanon:
    plain, item, _ = field_canon(item_tp)

    def field(value: Any, path: str) -> Any:
        if type(value) is not out:
            return canon(value, path)
        return [letter, *[v if type(v) is plain else item(v, path) for v in value]]

    # Where every item is its own identity form, the items are taken as they are.
    if item_tp is float:
        lines = _float_sequence
    elif plain is not None:
        lines = _sequence
    else:
        return FieldCanon(None, field, None)
    inline = Inline(lines, {"out": out, "letter": letter, "plain": plain}, field)
    return FieldCanon(None, _inline_function(inline), inline)


def _field_dict(value_tp: Any) -> FieldCanon:
    plain, item, _ = field_canon(value_tp)

    def field(value: Any, path: str) -> Any:
        if type(value) is not FrozenDict:
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
    inline = Inline(_dict, {"plain": plain, "frozen": FrozenDict}, field)
    return FieldCanon(None, _inline_function(inline), inline)


def inline_source(
    inline: Inline, x: str, path: str, prefix: str
) -> tuple[list[str], dict[str, Any]]:
    """`inline`'s statements for the value in variable `x` (its path in variable `path`),
    and the names they use; all but `x` and `path` begin with `prefix`."""
    lines = inline.lines(x, lambda name: prefix + name, f"{prefix}slow({x}, {path})")
    names = {prefix + k: v for k, v in inline.names.items()}
    names[prefix + "slow"] = inline.slow
    return lines, names


def _inline_function(inline: Inline) -> Canon:
    """The canonicaliser that `inline` describes."""
    lines, ns = inline_source(inline, "x", "path", "_")
    code = "\n".join(["def fast(x, path):", *("    " + line for line in lines), "    return x", ""])
    run_source(code, "canon", None, ns)
    fast: Canon = ns["fast"]
    return fast
