"""The default-change guard: finished work is not reused under a default it did not run with.

An identity leaves out the fields left at their defaults, so that adding a field keeps
every finished job valid. The price: changing a default in the code (`epochs = 10` to
`= 20`) keeps the identifier, and the ten-epoch job would answer for twenty epochs. So the
params file records, per configuration, the identity form of each field its identity left
out (`left_out_defaults`); when an experiment is about to reuse a job found DONE on disk,
`changed_defaults` compares that record with the defaults the classes declare now.
Params files written before the record existed have none: they are reused as before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec.structs import astuple

from .._errors import LegatoError
from ._canon import WorkdirDefault, canon, encode
from ._config import registry
from ._identity import SKIP_ENCODED, SKIP_EQUAL, encoded_default

if TYPE_CHECKING:
    from ._config import ConfigBase

__all__ = [
    "DefaultChanged",
    "DefaultChangedWarning",
    "changed_defaults",
    "left_out_defaults",
    "read_params",
]


class DefaultChanged(LegatoError):
    """A job found DONE on disk ran with a default that its class no longer declares.

    Its identifier is the same (defaults are left out of identities), but its results are
    those of the old default. The experiment does not reuse it: the job ends FAILED with
    this error's message as its reason, and the directory is left as it is.

    Attributes:
        field: The field, as `type name.field` (`mylab.Learn.epochs`).
        old: The default when the job ran, as read back from its identity form (a Path as
            its string, say).
        new: The default the class declares now.
    """

    def __init__(self, field: str, old: Any, new: Any, job: str) -> None:
        self.field, self.old, self.new = field, _readable(old), new
        super().__init__(
            f"the default of {field} changed since {job} ran: it ran with {_shown(self.old)}, the "
            f"class now declares {_shown(new)}. To run it with the new default, pin the "
            "default in the identity, `field(default=..., ignore_default=False)` (another "
            "identifier), or remove the old job (`legato jobs rm`); to reuse it anyway, open "
            'the experiment with on_default_change="warn"'
        )


class DefaultChangedWarning(UserWarning):
    """A finished job was reused though a default changed since it ran, as asked by
    `experiment(..., on_default_change="warn")`."""


def left_out_defaults(config: ConfigBase) -> dict[str, Any]:
    """`{field: identity form}` of the identity fields that `config`'s identity leaves out
    because they hold their default: what the params file records for the guard."""
    cls = type(config)
    plan = cls.__legato_get_plan__()
    values = astuple(config)
    left: dict[str, Any] = {}
    for position, name, mode, default, fn, _, errpath in plan.identity:
        value = values[position]
        if mode == SKIP_EQUAL:
            if type(value) is type(default) and value == default:
                left[name] = canon(value, errpath)
        elif mode == SKIP_ENCODED:
            form = fn(value, errpath)
            if encode(form) == encoded_default(default, errpath):
                left[name] = form
    return left


_decoder = msgspec.msgpack.Decoder()


class _Record(msgspec.Struct):
    """What the guard reads of a params file's record; the rest is skipped undecoded."""

    module: str = ""
    qualname: str = ""
    defaults: dict[str, Any] = {}


class _Params(msgspec.Struct):
    objects: list[_Record]


_params_decoder = msgspec.msgpack.Decoder(_Params)


def changed_defaults(params: bytes, job: str) -> DefaultChanged | None:
    """The first default recorded in a params file that its class, as imported now,
    declares otherwise; None when none changed, or the file has no record.

    Classes not imported in this process are not looked at: the task being reused is
    made of imported classes, and a class it does not use changes nothing.
    """
    try:
        objects = _params_decoder.decode(params).objects
    except msgspec.DecodeError:  # not a params file this guard can read: nothing to say
        return None
    for record in objects:
        if not record.defaults:
            continue
        cls = registry.get((record.module, record.qualname))
        if cls is None:
            continue
        for name, old in record.defaults.items():
            if _changed(cls, name, old):
                plan = cls.__legato_get_plan__()
                new = next(f.default for f in plan.checks if f.name == name)
                return DefaultChanged(f"{plan.type_name}.{name}", old, new, job)
    return None


_verdicts: dict[tuple[type, str, bytes], bool] = {}
"""`_changed` by (class, field, recorded form): a sweep's jobs record the same defaults."""


def _changed(cls: type[ConfigBase], name: str, old: Any) -> bool:
    """Whether `cls` now declares for `name` a default other than the recorded `old`."""
    recorded = encode(old)
    key = (cls, name, recorded)
    verdict = _verdicts.get(key)
    if verdict is None:
        plan = cls.__legato_get_plan__()
        field = next((f for f in plan.identity if f.name == name), None)
        if field is None or field.mode not in (SKIP_EQUAL, SKIP_ENCODED):
            return False  # removed, or now always in the identity: not this job's identity
        if field.mode == SKIP_EQUAL:
            now = encode(canon(field.default, field.errpath))
        elif type(field.default) is WorkdirDefault:  # depends on the workdir: not kept
            return recorded != encoded_default(field.default, field.errpath)
        else:
            now = field.default
        verdict = _verdicts[key] = recorded != now
    return verdict


def read_params(path: str) -> bytes | None:
    """A params file's bytes, or None if it cannot be read: with the calls of the OS
    rather than `Path.read_bytes`, three times faster, which counts when a finished sweep
    of ten thousand jobs is resubmitted."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _readable(form: Any) -> Any:
    """A value much like the one whose identity form `form` is (`_canon`), for messages."""
    if type(form) is not list or not form or type(form[0]) is not str:
        return form
    kind, rest = form[0], form[1:]
    if kind == "L":
        return [_readable(v) for v in rest]
    if kind == "U":
        return tuple(_readable(v) for v in rest)
    if kind == "M":
        return {rest[i]: _readable(rest[i + 1]) for i in range(0, len(rest), 2)}
    if kind == "S":
        return {_readable(_decoder.decode(v)) for v in rest}
    if kind == "I":
        return int(rest[0])
    if kind == "E":
        return _Shown(f"{rest[0]}.{rest[1]}")
    if kind in ("P", "T", "D"):
        return rest[0]
    if kind == "C":
        return _Shown(f"<configuration {bytes(rest[0]).hex()[:12]}>")
    return form


class _Shown(str):
    def __repr__(self) -> str:
        return str(self)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
