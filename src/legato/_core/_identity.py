"""A configuration's identifier: the SHA-256 of its identity fields' canonical form.

The canonical form is `_canon`'s. Per class, the plan holds one `IdentityField` per identity
field and a digest function generated from them (`compile_identity`) that encodes all of
them in one pass and hashes the result; `identifier_digest` runs it once per configuration
and keeps the digest.
"""

from __future__ import annotations

import hashlib
import math
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import astuple

from .._jobdir._names import DIGEST_KEY, IDENTIFIER_KEY, MAIN_IDENTIFIER_KEY, PRODUCER_KEY
from ._canon import (
    Canon,
    WorkdirDefault,
    canon,
    current_workdir,
    encode,
    encode_default,
    main_module_name,
    module_name,
)
from ._canon_field import Inline, field_canon, inline_source
from ._codegen import run_source

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
    "identity_fields",
    "main_identifier",
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
    canon: Canon
    inline: Inline | None
    """`canon`'s fast path as source, for `compile_identity`."""
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
    _, fn, inline = field_canon(tp)
    return (
        IdentityField(position, name, mode, default, fn, inline, errpath),
        IdentityField(position, name, mode, default, canon, None, errpath),
    )


_EQUAL_DEFAULT_TYPES = (bool, int, str, bytes, type(None))


def identifier_digest(config: ConfigBase) -> bytes:
    """The raw 32-byte digest, computed once per configuration and kept on it."""
    d = config.__dict__
    digest: bytes | None = d.get(DIGEST_KEY)
    if digest is None:
        plan = type(config).__legato_get_plan__()
        try:
            digest = plan.digest(config, d)
        except RecursionError:
            _digest_bottom_up(config)
            digest = plan.digest(config, d)
        except UnicodeEncodeError:
            raise _unencodable(config, plan.identity) from None
        d[DIGEST_KEY] = digest
    return digest


def main_identifier(config: ConfigBase) -> str:
    """The identifier without the `SubParam` fields: what names the main task directory
    that tasks differing only in their sub-parameters share. For a class without
    sub-parameters, the identifier itself."""
    plan = type(config).__legato_get_plan__()
    if plan.main_digest is None:
        return config.__identifier__
    d = config.__dict__
    ident: str | None = d.get(MAIN_IDENTIFIER_KEY)
    if ident is None:
        identifier_digest(config)  # what it holds is digested, however deep
        ident = d[MAIN_IDENTIFIER_KEY] = plan.main_digest(config, d).hex()
    return ident


def _unencodable(config: ConfigBase, plan: tuple[IdentityField, ...]) -> Exception:
    """The error naming the identity field whose string UTF-8 cannot encode (a lone
    surrogate, as `os.fsdecode` makes of undecodable file names)."""
    from .._errors import ValidationError

    values = astuple(config)
    for field in plan:
        try:
            encode(field.canon(values[field.position], field.errpath))
        except UnicodeEncodeError:
            value = values[field.position]
            return ValidationError(
                field.errpath, str, value, "holds a lone surrogate, which UTF-8 cannot encode"
            )
    return ValidationError(type(config).__name__, str, None, "a string UTF-8 cannot encode")


def _digest_bottom_up(config: ConfigBase) -> None:
    """Digest what `config` holds from the innermost out, so that each digest finds those
    it needs kept: a chain deeper than the recursion limit (a thousand tasks, each holding
    the one before, loaded from a params file) then costs no deeper a call stack."""
    from ._graph import postorder

    for inner in postorder(config, skip=lambda c: DIGEST_KEY in c.__dict__):
        if inner is not config:
            identifier_digest(inner)


def _output_digest(head: bytes, fields: bytes, producer: ConfigBase) -> bytes:
    """The digest of a task's output: `[version, type name, fields, ["O", task digest]]`."""
    output = encode(["O", identifier_digest(producer)])
    return _sha256(b"\x94" + head + fields + output).digest()


def _fields(plan: tuple[IdentityField, ...], values: tuple[Any, ...]) -> list[Any]:
    """`[name, identity form, ...]` of the fields not left out, in the plan's (name) order:
    what `compile_identity`'s function returns, the slow way."""
    fields: list[Any] = []
    for position, name, mode, default, fn, _, errpath in plan:
        value = values[position]
        if mode == SKIP_EQUAL and type(value) is type(default) and value == default:
            continue
        c = fn(value, errpath)
        if mode == SKIP_ENCODED and encode(c) == encoded_default(default, errpath):
            continue
        fields.append(name)
        fields.append(c)
    return fields


def encoded_default(default: bytes | WorkdirDefault, errpath: str) -> bytes:
    if type(default) is WorkdirDefault:
        return encode(canon(default.value, errpath))
    return default  # type: ignore[return-value]


Digest = Callable[["ConfigBase", dict[str, Any]], bytes]
"""`digest(config, config.__dict__)`: what `identifier_digest` keeps."""


def compile_identity(type_name: str, plan: tuple[IdentityField, ...]) -> Digest:
    """The digest function of a class: straight-line code made once per class.

    It encodes `[ENCODING_VERSION, type name, [name, identity form, ...]]` with the fields
    that `_fields` keeps, in the same order, and hashes it with a SHA-256 that has already
    taken in the part common to the class (msgpack writes an array as its header, then its
    items one by one). Each field takes one short step: its canonicaliser's fast path
    written inline (`Inline`), else a call of its canonicaliser. The source holds only
    positions and fixed names; every value it uses is in its namespace.
    """
    head = encode(ENCODING_VERSION) + encode(type_name)
    ns: dict[str, Any] = {
        "_astuple": astuple,
        "encode": encode,
        "encoded_default": encoded_default,
        "_fields": _fields,
        "_generic": tuple(field._replace(canon=canon, inline=None) for field in plan),
        "_hasher": _sha256(b"\x93" + head),
        "_head": head,
        "_output_digest": _output_digest,
    }
    lines = ["values = _astuple(self)"]
    everyone = all(field.mode == ALWAYS for field in plan)
    if not everyone:
        lines += ["fields = []", "append = fields.append"]
    for i, (position, name, mode, default, fn, inline, errpath) in enumerate(plan):
        ns.update({f"n{i}": name, f"e{i}": errpath, f"d{i}": default, f"dt{i}": type(default)})
        x = f"x{i}"
        lines.append(f"{x} = values[{position}]")
        if inline is None:
            ns[f"c{i}"] = fn
            step = [f"{x} = c{i}({x}, e{i})"]
        else:
            step, names = inline_source(inline, x, f"e{i}", f"i{i}_")
            ns.update(names)
        if mode == SKIP_ENCODED:
            step.append(f"if encode({x}) != encoded_default(d{i}, e{i}):")
            step += [f"    append(n{i})", f"    append({x})"]
        elif not everyone:
            step += [f"append(n{i})", f"append({x})"]
        if mode == SKIP_EQUAL:
            lines.append(f"if type({x}) is not dt{i} or not {x} == d{i}:")
            step = ["    " + line for line in step]
        lines += step
    if everyone:
        lines.append("fields = [" + ", ".join(f"n{i}, x{i}" for i in range(len(plan))) + "]")
    source = [
        "def digest(self, d):",
        "    try:",
        *["        " + line for line in lines],
        "        data = encode(fields)",
        "    except OverflowError:  # an int beyond 64 bits, taken as it is above",
        "        data = encode(_fields(_generic, _astuple(self)))",
        f"    if {PRODUCER_KEY!r} in d:",
        f"        return _output_digest(_head, data, d[{PRODUCER_KEY!r}])",
        "    h = _hasher.copy()",
        "    h.update(data)",
        "    return h.digest()",
    ]
    run_source("\n".join(source), "identity", type_name, ns)
    digest: Digest = ns["digest"]
    return digest


def forget_identifier(config: ConfigBase) -> None:
    """Drop a kept identifier: for the output of a task, which depends on the task."""
    d = config.__dict__
    d.pop(DIGEST_KEY, None)
    d.pop(IDENTIFIER_KEY, None)
    d.pop(MAIN_IDENTIFIER_KEY, None)
