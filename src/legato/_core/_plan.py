"""The per-class plan: what construction and identity need to know of a class, made once.

A plan is compiled on a class's first construction rather than at class creation, so field
types may name classes declared later in the module. Besides the field tables that other
modules read (`checks`, `pathgens`), it holds two functions generated for the
class (`check`, `digest`): straight-line code with one short step per field, which
is what makes construction and identifiers cheap. The generated source holds nothing but
field positions and fixed names; every value it uses is passed in its namespace.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import astuple, force_setattr

from .._errors import ConfigError
from .._jobdir._names import TAGS_KEY
from ._codegen import run_source
from ._fields import FieldKind, PathGenerator, Tagged
from ._frozen import FrozenDict, FrozenList, freeze
from ._identity import Digest, IdentityField, compile_identity, identity_fields
from ._validate import Coercer, compile_coercer, exact_type

if TYPE_CHECKING:
    from ._config import ConfigBase

__all__ = ["FieldPlan", "Plan"]


class FieldPlan(typing.NamedTuple):
    name: str
    kind: FieldKind
    coerce: Coercer
    default: Any
    errpath: str
    exact: type
    """Values of exactly this type are valid as they are: construction checks nothing more."""
    container: type | None
    """For a list, tuple, set or dict field, that class: a value of exactly that class needs
    no unwrapping of a tag, only the coercer (which copies it)."""
    items: type | None
    """For a list or dict field, the type its items (a dict's values) have when they need no
    conversion: a list or dict of such items (and str keys) is only copied."""


_FAST_CONTAINER_KINDS = (FieldKind.PARAM, FieldKind.SUBPARAM)
"""The kinds of fields whose lists and dicts of exact items take the inline fast path; a
`Meta` container always goes through the full check, which also rejects what no identity
would catch later (a lone surrogate in a string)."""
_IDENTITY_KINDS = (FieldKind.PARAM, FieldKind.SUBPARAM, FieldKind.CONSTANT)


class _Never:
    """No value has this type: fields declared so are always checked in full."""


class Plan:
    """What construction and identity need to know of a class, computed once."""

    __slots__ = (
        "check",
        "checks",
        "digest",
        "identity",
        "main_digest",
        "pathgens",
        "subparams",
        "type_name",
    )

    def __init__(self, cls: type[ConfigBase]) -> None:
        self.type_name: str = cls.__legato_type_name__
        opts = cls.__legato_field_options__
        checks: list[FieldPlan] = []
        identity: list[tuple[IdentityField, IdentityField]] = []
        subparams: list[str] = []
        self.pathgens: dict[str, PathGenerator] = {}
        for position, info in enumerate(msgspec.structs.fields(cls)):
            tp = info.type
            kind = FieldKind.PARAM
            if typing.get_origin(tp) is typing.Annotated:
                for meta in typing.get_args(tp)[1:]:
                    if isinstance(meta, FieldKind):
                        kind = meta
                    elif isinstance(meta, PathGenerator):
                        kind = FieldKind.PATH
                        self.pathgens[info.name] = meta
            if info.name in cls.__legato_pathgens__:  # `name: Path = pathgenerator(...)`
                kind = FieldKind.PATH
                self.pathgens[info.name] = cls.__legato_pathgens__[info.name]
            errpath = f"{cls.__name__}.{info.name}"
            coerce = compile_coercer(tp, errpath)
            default = info.default
            has_factory = info.default_factory is not msgspec.NODEFAULT
            if default is not msgspec.NODEFAULT and kind is not FieldKind.PATH:
                default = coerce(default, errpath)
            if kind is FieldKind.CONSTANT and default is msgspec.NODEFAULT:
                raise ConfigError(f"{errpath}: a Constant needs a default value")
            if kind is FieldKind.PATH:
                exact: type = type(None)  # a path generator is None until submission
            elif kind is FieldKind.CONSTANT:
                exact = _Never
            elif kind is FieldKind.META:
                # No identity checks a Meta value later: only a value of a type that holds
                # nothing else (an ASCII str, say) skips the full check.
                exact = exact_type(tp) or _Never
            else:
                exact = exact_type(tp) or _Never
            container = _container(tp) if kind in _FAST_CONTAINER_KINDS else None
            items = _items(tp) if container in (list, dict) else None
            checks.append(
                FieldPlan(info.name, kind, coerce, default, errpath, exact, container, items)
            )
            if kind is FieldKind.SUBPARAM:
                subparams.append(info.name)
            if kind in _IDENTITY_KINDS:
                always = kind is FieldKind.CONSTANT or has_factory or not opts.get(info.name, True)
                identity.append(identity_fields(position, info.name, tp, default, always, errpath))
        identity.sort(key=lambda pair: pair[0].name)
        self.checks = tuple(checks)
        self.check: Callable[[ConfigBase], None] = _compile_check(self.checks, self.type_name)
        """Validates and converts a new configuration's fields (its `__post_init__`)."""
        self.identity = tuple(generic for _, generic in identity)
        """The identity fields by name, each encoded with `canon` alone."""
        self.digest: Digest = compile_identity(self.type_name, tuple(f for f, _ in identity))
        """`digest(config, config.__dict__)`, specialised to the field types: what
        `identifier_digest` computes once per configuration."""
        self.subparams: tuple[str, ...] = tuple(subparams)
        """The `SubParam` fields, which the main identifier leaves out."""
        self.main_digest: Digest | None = None
        """The digest of the identity without the sub-parameters (what `main_identifier`
        computes), or None for a class without any: its main identifier is its identifier."""
        if subparams:
            main = tuple(f for f, _ in identity if f.name not in subparams)
            self.main_digest = compile_identity(self.type_name, main)


def _compile_check(
    checks: tuple[FieldPlan, ...], owner: str | None = None
) -> Callable[[ConfigBase], None]:
    """`check(config)`: a type test per field; a value that fails it gets `check_field`."""
    ns: dict[str, Any] = {
        "astuple": astuple,
        "check_field": check_field,
        "force_setattr": force_setattr,
        "FrozenList": FrozenList,
        "FrozenDict": FrozenDict,
    }
    lines = ["def check(self):", "    values = astuple(self)"]
    for i, field in enumerate(checks):
        ns[f"f{i}"] = field
        if field.container is not None:
            ns.update({f"k{i}": field.container, f"n{i}": field.name})
            ns.update({f"c{i}": field.coerce, f"e{i}": field.errpath, f"t{i}": field.items})
            x = f"x{i}"
            lines += [f"    {x} = values[{i}]", f"    if type({x}) is k{i}:"]
            if field.items is not None:
                # The coercer's fast path, inline: items that need no conversion are copied.
                # (A loop: for the few items a configuration's lists usually hold, much
                # faster than a test in C such as `list(map(type, x)).count(t) == len(x)`.)
                if field.container is list:
                    loop = [f"for v in {x}:", f"    if type(v) is not t{i}:"]
                else:
                    loop = [f"for k, v in {x}.items():"]
                    loop.append(f"    if type(k) is not str or type(v) is not t{i}:")
                frozen = "FrozenList" if field.container is list else "FrozenDict"
                loop += [
                    f"        force_setattr(self, n{i}, c{i}({x}, e{i}))",
                    "        break",
                    "else:",
                    f"    force_setattr(self, n{i}, {frozen}({x}))",
                ]
                lines += ["        " + line for line in loop]
            else:
                lines.append(f"        force_setattr(self, n{i}, c{i}({x}, e{i}))")
            lines += ["    else:", f"        check_field(self, f{i}, {x})"]
        elif field.exact is _Never:
            lines.append(f"    check_field(self, f{i}, values[{i}])")
        else:
            ns[f"t{i}"] = field.exact
            test = f"type(values[{i}]) is not t{i}"
            if field.kind is FieldKind.META and field.exact is str:
                test += f" or not values[{i}].isascii()"  # else UTF-8 may not encode it
            elif field.kind is FieldKind.META and issubclass(field.exact, PurePath):
                test += f" or not str(values[{i}]).isascii()"
            lines += [f"    if {test}:", f"        check_field(self, f{i}, values[{i}])"]
    run_source("\n".join(lines), "check", owner, ns)
    check: Callable[[ConfigBase], None] = ns["check"]
    return check


def _container(tp: Any) -> type | None:
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp) or tp
    return origin if origin in (list, tuple, set, frozenset, dict) else None


def _items(tp: Any) -> type | None:
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list and len(args) == 1:
        return exact_type(args[0])
    if typing.get_origin(tp) is dict and len(args) == 2 and args[0] is str:
        return exact_type(args[1])
    return None


def check_field(config: ConfigBase, field: FieldPlan, value: Any) -> None:
    """Validate one field's value, convert it to the declared type and record its tag."""
    name, kind, coerce, default, errpath, _, _, _ = field
    original = value
    if type(value) is Tagged:
        value = value.value
    if kind is FieldKind.PATH:
        if value is not None:
            raise ConfigError(f"{errpath} is a path generator: legato sets it at submission")
        return
    new = coerce(value, errpath)
    if kind is FieldKind.META:
        new = freeze(new, errpath)  # what no identity checks must still be written to disk
    if kind is FieldKind.CONSTANT and not (type(new) is type(default) and new == default):
        raise ConfigError(f"{errpath} is a Constant ({default!r}) and cannot be set")
    if new is not original:
        force_setattr(config, name, new)
        if original is not value:
            config.__dict__.setdefault(TAGS_KEY, {})[name] = new
