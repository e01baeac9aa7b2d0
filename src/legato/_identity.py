"""The canonical encoding of a configuration's identity and its SHA-256 identifier.

Every non-scalar value is encoded as a msgpack array whose first item is a one-letter tag,
so no two kinds of value can encode alike (a list never looks like a tuple, a Path never
looks like a str). Scalars are msgpack's own, which already keeps bool, int, float, str and
bytes apart. Changing anything here changes identifiers: bump ENCODING_VERSION, regenerate
tests/data/identifiers.json and write a migration note (SPEC §2 rule 8).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
import hashlib
import math
import os
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import msgspec

from ._errors import ValidationError

if TYPE_CHECKING:
    from ._config import ConfigBase

ENCODING_VERSION = 1

_encode = msgspec.msgpack.Encoder().encode
_sha256 = hashlib.sha256
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


def _type_name(tp: type) -> str:
    from ._config import module_name

    return f"{module_name(tp)}.{tp.__qualname__}"


def canon(value: Any, path: str = "value") -> Any:
    """The identity form of a value: msgpack-encodable, equal exactly when identities are."""
    t = type(value)
    if t is str or t is bool or value is None or t is bytes:
        return value
    if t is int:
        return _int(value)
    if t is float:
        return _float(value)
    from ._config import ConfigBase

    if isinstance(value, ConfigBase):
        return ["C", identifier_digest(value)]
    if t is list:
        return ["L", *[canon(v, path) for v in value]]
    if t is tuple:
        return ["U", *[canon(v, path) for v in value]]
    if t is dict:
        items: list[Any] = ["M"]
        for k in sorted(value):
            if type(k) is not str:
                raise ValidationError(f"{path} key", str, k, "dict keys must be str")
            items.append(k)
            items.append(canon(value[k], path))
        return items
    if t is set or t is frozenset:
        encoded = sorted(_encode(canon(v, path)) for v in value)
        return ["S", *encoded]
    if isinstance(value, enum.Enum):
        return ["E", _type_name(type(value)), value.name]
    if isinstance(value, PurePath):
        return ["P", _path(value)]
    if isinstance(value, dt.datetime):
        return ["T", value.isoformat()]
    if isinstance(value, dt.date):
        return ["D", value.isoformat()]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, str):
        return str(value)
    raise ValidationError(path, "a configuration value type", value, "unsupported type")


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


def identifier_digest(config: ConfigBase) -> bytes:
    """The raw 32-byte digest, computed once per configuration and kept on it."""
    d = config.__dict__
    digest: bytes | None = d.get("__legato_digest__")
    if digest is not None:
        return digest
    plan = type(config).__legato_plan__
    if plan is None:
        plan = type(config)._legato_compile()
    name = plan.type_name
    fields: list[Any] = []
    for fname, always, fast_default, default_bytes, errpath in plan.identity:
        value = getattr(config, fname)
        if not always:
            if fast_default is not _NO_FAST:
                if type(value) is type(fast_default) and value == fast_default:
                    continue
            elif default_bytes is not None:
                c = canon(value, errpath)
                if type(default_bytes) is WorkdirDefault:
                    default_bytes = _encode(canon(default_bytes.value, errpath))
                if _encode(c) != default_bytes:
                    fields.append(fname)
                    fields.append(c)
                continue
        fields.append(fname)
        fields.append(canon(value, errpath))
    payload: list[Any] = [ENCODING_VERSION, name, fields]
    producer = d.get("__legato_producer__")
    if producer is not None:
        payload.append(["O", identifier_digest(producer)])
    digest = _sha256(_encode(payload)).digest()
    d["__legato_digest__"] = digest
    return digest


class _NoFast:
    __slots__ = ()


_NO_FAST: Any = _NoFast()
FAST_DEFAULT_TYPES = (bool, int, str, bytes, type(None))


def fast_default(value: Any) -> Any:
    """The default itself when `==` with the same type decides equality, else a sentinel."""
    if type(value) in FAST_DEFAULT_TYPES:
        return value
    if type(value) is float and not math.isnan(value):
        return value
    return _NO_FAST
