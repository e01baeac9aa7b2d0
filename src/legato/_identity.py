"""A configuration's identifier: the SHA-256 of its identity fields' canonical form.

The canonical form is `_canon`'s. Per class, the plan holds one `IdentityField` per identity
field and a function generated from them (`compile_identity`) that encodes all of them in
one pass; `identifier_digest` runs it once per configuration and keeps the digest.
"""

from __future__ import annotations

import hashlib
import math
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import astuple

from ._canon import (
    Canon,
    WorkdirDefault,
    _encode,
    _field_float,
    canon,
    current_workdir,
    encode_default,
    field_canon,
    main_module_name,
    module_name,
)

if TYPE_CHECKING:
    from ._config import ConfigBase

__all__ = [
    "ENCODING_VERSION",
    "IdentityField",
    "canon",
    "compile_identity",
    "current_workdir",
    "forget_identifier",
    "identifier_digest",
    "identifier_hex",
    "identity_fields",
    "main_module_name",
    "module_name",
]

ENCODING_VERSION = 1

_sha256 = hashlib.sha256


class IdentityField(typing.NamedTuple):
    """How one identity field enters the encoding; `Plan.identity` holds them by name."""

    position: int
    """The field's position in `msgspec.structs.astuple(config)`."""
    name: str
    mode: int
    """ALWAYS, SKIP_EQUAL (left out when `==` to `default`, of the same type) or
    SKIP_ENCODED (left out when its encoding is `default`'s)."""
    default: Any
    plain: type | None
    canon: Canon
    errpath: str


ALWAYS, SKIP_EQUAL, SKIP_ENCODED = 0, 1, 2


def identity_fields(
    position: int, name: str, tp: Any, default: Any, always: bool, errpath: str
) -> tuple[IdentityField, IdentityField]:
    """The plan of one identity field: specialised to its type, and with `canon` alone for
    a value that the first cannot encode (`default` is msgspec.NODEFAULT when required)."""
    if always or default is msgspec.NODEFAULT:
        mode, default = ALWAYS, None
    elif type(default) in _EQUAL_DEFAULT_TYPES or (
        type(default) is float and not math.isnan(default)
    ):
        mode = SKIP_EQUAL  # `==` with the same type decides it (-0.0 == 0.0 too)
    else:
        mode, default = SKIP_ENCODED, encode_default(default)
    plain, fn = field_canon(tp)
    return (
        IdentityField(position, name, mode, default, plain, fn, errpath),
        IdentityField(position, name, mode, default, None, canon, errpath),
    )


_EQUAL_DEFAULT_TYPES = (bool, int, str, bytes, type(None))


def identifier_digest(config: ConfigBase) -> bytes:
    """The raw 32-byte digest, computed once per configuration and kept on it."""
    d = config.__dict__
    digest: bytes | None = d.get("__legato_digest__")
    if digest is not None:
        return digest
    plan = type(config).__legato_plan__ or type(config)._legato_compile()
    values = astuple(config)
    payload: list[Any] = [ENCODING_VERSION, plan.type_name, None]
    producer = d.get("__legato_producer__")
    if producer is not None:
        payload.append(["O", identifier_digest(producer)])
    try:
        payload[2] = plan.identity_fields(values)
        data = _encode(payload)
    except OverflowError:  # an int beyond 64 bits, taken as it is by the fast path
        payload[2] = _fields(plan.identity, values)
        data = _encode(payload)
    digest = d["__legato_digest__"] = _sha256(data).digest()
    return digest


def _fields(plan: tuple[IdentityField, ...], values: tuple[Any, ...]) -> list[Any]:
    """`[name, identity form, ...]` of the fields not left out, in the plan's (name) order:
    what `compile_identity`'s function returns, the slow way."""
    fields: list[Any] = []
    for position, name, mode, default, _, fn, errpath in plan:
        value = values[position]
        if mode == SKIP_EQUAL and type(value) is type(default) and value == default:
            continue
        c = fn(value, errpath)
        if mode == SKIP_ENCODED and _encode(c) == _encoded_default(default, errpath):
            continue
        fields.append(name)
        fields.append(c)
    return fields


def _encoded_default(default: bytes | WorkdirDefault, errpath: str) -> bytes:
    if type(default) is WorkdirDefault:
        return _encode(canon(default.value, errpath))
    return default  # type: ignore[return-value]


def compile_identity(
    plan: tuple[IdentityField, ...],
) -> Callable[[tuple[Any, ...]], list[Any]]:
    """Straight-line code doing what `_fields` does for one class, made once per class.

    Each field takes one short step: a type test where its value is its own identity form
    (the value of a float field also checked for -0.0 and NaN), else a call of its
    specialised canonicaliser. The source holds only positions and fixed names.
    """
    ns: dict[str, Any] = {"_encode": _encode, "_encoded_default": _encoded_default}
    lines = ["def identity_fields(values):"]
    everyone = all(field.mode == ALWAYS for field in plan)
    if not everyone:
        lines += ["    fields = []", "    append = fields.append"]
    for i, (position, name, mode, default, plain, fn, errpath) in enumerate(plan):
        ns.update({f"n{i}": name, f"c{i}": fn, f"e{i}": errpath, f"p{i}": plain})
        ns.update({f"d{i}": default, f"dt{i}": type(default)})
        x = f"x{i}"
        step = [f"{x} = values[{position}]"]
        if mode == SKIP_EQUAL:
            step.append(f"if type({x}) is not dt{i} or not {x} == d{i}:")
        body = []
        if fn is _field_float:
            body.append(f"if type({x}) is not float or {x} != {x} or {x} == 0.0:")
            body.append(f"    {x} = c{i}({x}, e{i})")
        elif plain is not None:
            body.append(f"if type({x}) is not p{i}:")
            body.append(f"    {x} = c{i}({x}, e{i})")
        else:
            body.append(f"{x} = c{i}({x}, e{i})")
        if mode == SKIP_ENCODED:
            body.append(f"if _encode({x}) != _encoded_default(d{i}, e{i}):")
            body += [f"    append(n{i})", f"    append({x})"]
        elif not everyone:
            body += [f"append(n{i})", f"append({x})"]
        indent = "    " if mode == SKIP_EQUAL else ""
        lines += ["    " + line for line in step + [indent + line for line in body]]
    if everyone:
        lines.append("    return [" + ", ".join(f"n{i}, x{i}" for i in range(len(plan))) + "]")
    else:
        lines.append("    return fields")
    exec(compile("\n".join(lines), "<legato identity>", "exec"), ns)  # noqa: S102
    identity_fields: Callable[[tuple[Any, ...]], list[Any]] = ns["identity_fields"]
    return identity_fields


def identifier_hex(config: ConfigBase) -> str:
    """`config.__identifier__`: the digest as 64 hex digits, also kept on the config."""
    d = config.__dict__
    ident: str | None = d.get("__legato_identifier__")
    if ident is None:
        ident = d["__legato_identifier__"] = identifier_digest(config).hex()
    return ident


def forget_identifier(config: ConfigBase) -> None:
    """Drop a kept identifier: for the output of a task, which depends on the task."""
    d = config.__dict__
    d.pop("__legato_digest__", None)
    d.pop("__legato_identifier__", None)
