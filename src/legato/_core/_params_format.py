"""The params file format, read: one decoder and the walks over encoded values, shared by
`legato.loads` (which rebuilds the classes) and the command line (which must not import
them). See docs/architecture.md, "The params file".

A document is a msgpack map: the format version, the index of the root, the records of
every configuration reachable from it (each once) and the workdir its paths are relative
to. An encoded value is a msgpack scalar, or a list whose first item is a tag:
"C" a configuration (its record's index), "L"/"U"/"S"/"F" a list, tuple, set or
frozenset of values, "M" a dict (keys and values alternating), "I" a big int (its
digits), "E" an enum (module, qualname, member name), "P"/"W" a path (absolute, or
relative to the workdir), "T"/"D" a datetime or date (ISO format).

Every walk here runs on an explicit stack: a chain of tasks thousands long (each holding
the one before) reads as easily as a short one.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Literal, TypeVar, overload

import msgspec

__all__ = [
    "FORMAT_VERSION",
    "ClassDocument",
    "ClassRecord",
    "Document",
    "ParamsError",
    "ParamsMissing",
    "Record",
    "config_refs",
    "decode",
    "depth_first",
]

FORMAT_VERSION = 1

CONTAINERS = frozenset(("L", "U", "S", "F", "M"))
"""Tags of encoded values that hold other values."""


class ParamsError(ValueError):
    """The data is not a params file this version of legato can read."""


class ParamsMissing(ParamsError):
    """The job directory has no params file (yet: it is written when the job starts)."""


class Record(msgspec.Struct):
    """One configuration as `dumps` encodes it, as the command line reads it: without the
    class's module, which it does not import (decoding those strings for every record of
    every job would slow `jobs ls` by a third)."""

    type: str
    fields: dict[str, Any]
    tags: list[str] = []
    producer: int | None = None
    taskdir: Any = None
    maindir: Any = None
    paths: dict[str, Any] = {}


class ClassRecord(Record):
    """A record with where its class is: what `loads` needs to rebuild it."""

    module: str = ""
    qualname: str = ""
    file: str | None = None


class Document(msgspec.Struct):
    version: int
    root: int
    objects: list[Record]
    workdir: str | None = None


class ClassDocument(Document):
    objects: list[ClassRecord]  # type: ignore[assignment]
    classes: dict[str, bytes] | None = None  # shipped by value (`legato._core._ship`)


_decode = msgspec.msgpack.Decoder(Document).decode
_decode_classes = msgspec.msgpack.Decoder(ClassDocument).decode
_decode_any = msgspec.msgpack.Decoder().decode


@overload
def decode(data: bytes, classes: Literal[False] = ...) -> Document: ...
@overload
def decode(data: bytes, classes: Literal[True]) -> ClassDocument: ...


def decode(data: bytes, classes: bool = False) -> Document:
    """The document of a params file (with each record's class if `classes`);
    ParamsError saying what is wrong with it."""
    try:
        doc = _decode_classes(data) if classes else _decode(data)
    except msgspec.DecodeError as exc:
        raise ParamsError(_explain(data, exc)) from None
    if doc.version != FORMAT_VERSION:
        raise ParamsError(f"params format {doc.version!r} is not supported")
    if not 0 <= doc.root < len(doc.objects):
        raise ParamsError(f"corrupt params file: no object {doc.root!r}")
    return doc


def _explain(data: bytes, exc: msgspec.DecodeError) -> str:
    try:
        doc = _decode_any(data)
    except msgspec.DecodeError:
        return f"not a legato params file ({exc})"
    version = doc.get("version") if isinstance(doc, dict) else None
    if isinstance(version, int) and version != FORMAT_VERSION:
        return f"params format {version} is not supported"
    return f"corrupt params file ({exc})"


def config_refs(value: Any) -> list[int]:
    """Indices of the configurations an encoded value holds, at any depth of containers."""
    found: list[int] = []
    stack = [value]
    while stack:
        value = stack.pop()
        if type(value) is not list or not value:
            continue
        kind = value[0]
        if kind == "C":
            found.extend(value[1:2])
        elif type(kind) is str and kind in CONTAINERS:
            values = value[2::2] if kind == "M" else value[1:]
            stack.extend(reversed(values))
    return found


K = TypeVar("K")
R = TypeVar("R")


def depth_first(root: Generator[K, Any, R], step: Callable[[K], Generator[K, Any, Any]]) -> R:
    """Run `root`, a generator that yields what it needs done first and is sent the
    result, with `step` doing each such thing the same way: depth first, like recursion,
    but on a list rather than the call stack."""
    stack: list[Generator[K, Any, Any]] = [root]
    sent: Any = None
    while True:
        try:
            need = stack[-1].send(sent)
        except StopIteration as done:
            stack.pop()
            if not stack:
                return done.value  # type: ignore[no-any-return]
            sent = done.value
        else:
            stack.append(step(need))
            sent = None
