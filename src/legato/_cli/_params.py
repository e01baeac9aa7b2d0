"""Reading a params file without importing the user's classes.

`legato.load()` rebuilds the task, which imports the modules (or runs the scripts) that
define it. The command line must not run user code, and must work where those modules
are not importable, so it reads the encoded records (see `legato._serialize`) directly:
the type names, field values, tags (own, nested and inherited, as `collect_tags` walks
them) and the submitted tasks the params depend on.
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any

import msgspec

from .._serialize import FORMAT_VERSION

__all__ = ["Params", "ParamsError", "ParamsMissing"]


class _Record(msgspec.Struct):
    """One configuration as `legato._serialize` encodes it (other keys are skipped)."""

    type: str
    fields: dict[str, Any]
    tags: list[str] = []
    producer: int | None = None
    taskdir: str | list[str] | None = None
    maindir: str | list[str] | None = None
    paths: dict[str, str | list[str]] = {}


class _Document(msgspec.Struct):
    version: int
    root: int
    objects: list[_Record]
    workdir: str | None = None


_decode = msgspec.msgpack.Decoder(_Document).decode
_decode_any = msgspec.msgpack.Decoder().decode
_CONTAINERS = frozenset(("L", "U", "S", "F", "M"))


class ParamsError(ValueError):
    """The params file is not a legato params file this version can read."""


class ParamsMissing(ParamsError):
    """The job directory has no params file (yet: it is written when the job starts)."""


def _explain(data: bytes, exc: msgspec.DecodeError) -> str:
    try:
        doc = _decode_any(data)
    except msgspec.DecodeError:
        return f"not a legato params file ({exc})"
    version = doc.get("version") if isinstance(doc, dict) else None
    if isinstance(version, int) and version != FORMAT_VERSION:
        return f"params format {version} is not supported"
    return f"corrupt params file ({exc})"


class Params:
    """One decoded params file: the root task and every configuration it refers to."""

    def __init__(self, data: bytes, workdir: str | None = None) -> None:
        """`workdir`: the one the job directory lies in now, under which the paths written
        relative to the workdir are shown (default: where the params were written)."""
        try:
            doc = _decode(data)
        except msgspec.DecodeError as exc:
            raise ParamsError(_explain(data, exc)) from None
        if doc.version != FORMAT_VERSION:
            raise ParamsError(f"params format {doc.version!r} is not supported")
        self.objects = doc.objects
        self.root = doc.root
        self.workdir = workdir or doc.workdir
        self._record(doc.root)

    def _record(self, index: Any) -> _Record:
        if type(index) is not int or not 0 <= index < len(self.objects):
            raise ParamsError(f"corrupt params file: no object {index!r}")
        return self.objects[index]

    @property
    def type_name(self) -> str:
        return self._record(self.root).type

    def tags(self) -> dict[str, Any]:
        """Own tags, those of nested configurations and of dependencies; nearer ones win.

        The walk of `legato._graph.collect_tags` (producer first, then fields in order,
        then the configuration's own tags), kept tight: `jobs ls` runs it for every job.
        """
        objects = self.objects
        tagged = [r for r in objects if r.tags]
        if not tagged:
            return {}
        if len(tagged) == 1:  # every object is reachable from the root: no walk needed
            fields = tagged[0].fields
            return {n: self.builtins(fields[n]) for n in tagged[0].tags if n in fields}
        tags: dict[str, Any] = {}
        seen: set[int] = set()
        builtins = self.builtins

        def visit(index: int) -> None:
            seen.add(index)
            record = objects[index]
            producer = record.producer
            if producer is not None and producer not in seen:
                visit(producer)
            fields = record.fields
            for value in fields.values():
                if type(value) is list:
                    for child in _config_refs(value):
                        if child not in seen:
                            visit(child)
            for name in record.tags:
                if name in fields:
                    value = fields[name]
                    tags[name] = builtins(value) if type(value) in (list, bytes) else value

        try:
            visit(self.root)
        except (IndexError, TypeError, RecursionError):
            raise ParamsError("corrupt params file: bad reference between objects") from None
        return tags

    def dependencies(self) -> list[tuple[str, str]]:
        """(type name, identifier) of each submitted task whose output the params hold.

        A value stands for a submitted task when it records the task that produced it
        (`config()` outputs), or when it is itself a task with a job directory.
        """
        found: dict[int, tuple[str, str]] = {}
        seen: set[int] = {self.root}

        def add(index: int) -> None:
            type_name, _, identifier = self._job_name(index).partition("/")
            found.setdefault(index, (type_name, identifier))

        def visit(index: int) -> None:
            if index in seen:
                return
            seen.add(index)
            record = self._record(index)
            if record.producer is not None:
                add(record.producer)
            elif record.taskdir:
                add(index)
            else:
                for value in record.fields.values():
                    for child in _config_refs(value):
                        visit(child)

        for value in self._record(self.root).fields.values():
            for child in _config_refs(value):
                visit(child)
        return list(found.values())

    def fields(self) -> dict[str, Any]:
        """The root's encoded field values (identity and Meta fields; not path generators)."""
        return dict(self._record(self.root).fields)

    def paths(self) -> dict[str, str]:
        """The root's path generators, as resolved when the job was submitted."""
        return {k: self._path(v) for k, v in self._record(self.root).paths.items()}

    def main_dir(self) -> str | None:
        """The root task's main task directory when its class has sub-parameters."""
        maindir = self._record(self.root).maindir
        return self._path(maindir) if maindir else None

    def _path(self, value: Any) -> str:
        """A path as `legato._serialize` writes it: a string, ["P", path] or ["W", relative]."""
        if type(value) is str:
            return value
        if type(value) is list and len(value) == 2 and type(value[1]) is str:
            if value[0] == "P":
                return value[1]
            if value[0] == "W":
                return os.path.join(self.workdir, value[1]) if self.workdir else value[1]
        raise ParamsError(f"corrupt params file: not a path: {value!r}")

    def builtins(self, value: Any, _depth: int = 0) -> Any:
        """A JSON-friendly form of an encoded value; configurations become dicts with a
        "__type__" key (and "__output_of__" for outputs of submitted tasks)."""
        if type(value) is not list or not value:
            return value.hex() if isinstance(value, bytes) else value
        if _depth > 100:
            raise ParamsError("corrupt params file: values nested too deeply")
        kind, rest = value[0], value[1:]
        if kind == "C" and rest:
            record = self._record(rest[0])
            out: dict[str, Any] = {"__type__": record.type}
            if record.producer is not None:
                out["__output_of__"] = self._job_name(record.producer)
            for name, field in record.fields.items():
                out[name] = self.builtins(field, _depth + 1)
            return out
        if kind in ("L", "U"):
            return [self.builtins(v, _depth + 1) for v in rest]
        if kind in ("S", "F"):
            return sorted((self.builtins(v, _depth + 1) for v in rest), key=repr)
        if kind == "M":
            return {
                str(rest[i]): self.builtins(rest[i + 1], _depth + 1)
                for i in range(0, len(rest) - 1, 2)
            }
        if kind == "I" and rest:
            return int(rest[0])
        if kind == "E" and len(rest) == 3:
            return f"{rest[1]}.{rest[2]}"
        if kind in ("P", "W"):
            return self._path(value)
        if kind in ("T", "D") and rest:
            return str(rest[0])
        raise ParamsError(f"corrupt params file: unknown value tag {kind!r}")

    def render(self, value: Any, _depth: int = 0) -> str:
        """An encoded value written the way a user would write it in Python."""
        if type(value) is not list or not value:
            return repr(value)
        if _depth > 100:
            raise ParamsError("corrupt params file: values nested too deeply")
        kind, rest = value[0], value[1:]
        if kind == "C" and rest:
            record = self._record(rest[0])
            args = ", ".join(
                f"{name}={self.render(field, _depth + 1)}" for name, field in record.fields.items()
            )
            return f"{record.type.rsplit('.', 1)[-1]}({args})"
        if kind in ("L", "U", "S", "F"):
            inner = [self.render(v, _depth + 1) for v in rest]
            if kind == "L":
                return f"[{', '.join(inner)}]"
            if kind == "U":
                return f"({', '.join(inner)}{',' if len(inner) == 1 else ''})"
            body = ", ".join(sorted(inner))
            if kind == "F":
                return f"frozenset({{{body}}})" if inner else "frozenset()"
            return f"{{{body}}}" if inner else "set()"
        if kind == "M":
            pairs = [
                f"{rest[i]!r}: {self.render(rest[i + 1], _depth + 1)}"
                for i in range(0, len(rest) - 1, 2)
            ]
            return "{" + ", ".join(pairs) + "}"
        if kind == "I" and rest:
            return str(rest[0])
        if kind == "E" and len(rest) == 3:
            return f"{rest[1]}.{rest[2]}"
        if kind in ("P", "W"):
            return f"Path({self._path(value)!r})"
        if kind == "T" and rest:
            return f"datetime.fromisoformat({rest[0]!r})"
        if kind == "D" and rest:
            return f"date.fromisoformat({rest[0]!r})"
        raise ParamsError(f"corrupt params file: unknown value tag {kind!r}")

    def output_of(self, value: Any) -> str | None:
        """For a value holding a submitted task's output: that job's "type/identifier"."""
        if type(value) is list and len(value) == 2 and value[0] == "C":
            record = self._record(value[1])
            if record.producer is not None:
                return self._job_name(record.producer)
            if record.taskdir:
                return self._job_name(value[1])
        return None

    def _job_name(self, index: int) -> str:
        record = self._record(index)
        identifier = PurePath(self._path(record.taskdir)).name if record.taskdir else "?"
        return f"{record.type}/{identifier}"


def _config_refs(value: Any) -> list[int]:
    """Indices of the configurations an encoded value holds, at any depth of containers."""
    if type(value) is not list or not value:
        return []
    kind = value[0]
    if kind == "C":
        return value[1:2]
    if type(kind) is str and kind in _CONTAINERS:
        values = value[2::2] if kind == "M" else value[1:]
        return [i for v in values for i in _config_refs(v)]
    return []
