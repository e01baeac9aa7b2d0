"""Reading a params file without importing the user's classes.

`legato.load()` rebuilds the task, which imports the modules (or runs the scripts) that
define it. The command line must not run user code, and must work where those modules
are not importable, so it reads the encoded records (see `legato._core._serialize`) directly:
the type names, field values, tags (own, nested and inherited, as `collect_tags` walks
them) and the submitted tasks the params depend on.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import PurePath
from typing import Any

from .._core._params_format import (
    ParamsError,
    ParamsMissing,
    Record,
    config_refs,
    decode,
    depth_first,
)

__all__ = ["Params", "ParamsError", "ParamsMissing"]

_config_refs = config_refs
_CONFLICT: Any = object()
"""A tag that what a configuration holds brings with different values."""


def _agree(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and a == b)


class Params:
    """One decoded params file: the root task and every configuration it refers to."""

    def __init__(self, data: bytes, workdir: str | None = None) -> None:
        """`workdir`: the one the job directory lies in now, under which the paths written
        relative to the workdir are shown (default: where the params were written)."""
        doc = decode(data)
        self.objects = doc.objects
        self.root = doc.root
        self.workdir = workdir or doc.workdir

    def _record(self, index: Any) -> Record:
        if type(index) is not int or not 0 <= index < len(self.objects):
            raise ParamsError(f"corrupt params file: no object {index!r}")
        return self.objects[index]

    @property
    def type_name(self) -> str:
        return self._record(self.root).type

    def tags(self) -> dict[str, Any]:
        """Own tags, those of nested configurations and of dependencies, as
        `legato._core._graph.collect_tags` computes them: a configuration's own tag wins over
        one it inherits, and a name that what it holds brings with different values is
        dropped (unless a configuration above sets it itself). Kept tight: `jobs ls` runs
        it for every job.
        """
        objects = self.objects
        tagged = [r for r in objects if r.tags]
        if not tagged:
            return {}
        if len(tagged) == 1:  # every object is reachable from the root: no conflict
            fields = tagged[0].fields
            return {n: self.builtins(fields[n]) for n in tagged[0].tags if n in fields}
        tags_of: dict[int, dict[str, Any]] = {}

        def held(index: int) -> list[int]:
            record = objects[index]
            found = [] if record.producer is None else [record.producer]
            for value in record.fields.values():
                if type(value) is list:
                    found += _config_refs(value)
            return found

        def merge(index: int) -> None:
            record = objects[index]
            tags: dict[str, Any] = {}
            for child in held(index):
                for name, value in tags_of[child].items():
                    if name not in tags:
                        tags[name] = value
                        continue
                    mine = tags[name]
                    if mine is _CONFLICT or value is _CONFLICT or not _agree(mine, value):
                        tags[name] = _CONFLICT
            fields = record.fields
            for name in record.tags:
                if name in fields:
                    tags[name] = fields[name]
            tags_of[index] = tags

        try:
            stack: list[tuple[int, bool]] = [(self.root, False)]
            while stack:  # post order, on a stack: chains of tasks can be thousands long
                index, expanded = stack.pop()
                if index in tags_of:
                    continue
                if expanded:
                    merge(index)
                    continue
                stack.append((index, True))
                stack += [(c, False) for c in held(index) if c not in tags_of]
        except (IndexError, TypeError, KeyError):
            raise ParamsError("corrupt params file: bad reference between objects") from None
        builtins = self.builtins
        return {
            name: builtins(value) if type(value) in (list, bytes) else value
            for name, value in tags_of[self.root].items()
            if value is not _CONFLICT
        }

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

        # Depth first, in field order, on a stack: the order `legato._core._graph` finds them in.
        stack = [c for v in self._record(self.root).fields.values() for c in _config_refs(v)]
        stack.reverse()
        while stack:
            index = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            record = self._record(index)
            if record.producer is not None:
                add(record.producer)
            elif record.taskdir:
                add(index)
            else:
                children = [c for v in record.fields.values() for c in _config_refs(v)]
                stack.extend(reversed(children))
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
        """A path as `legato._core._serialize` writes it: a string, ["P", path] or
        ["W", relative]."""
        if type(value) is str:
            return value
        if type(value) is list and len(value) == 2 and type(value[1]) is str:
            if value[0] == "P":
                return value[1]
            if value[0] == "W":
                return os.path.join(self.workdir, value[1]) if self.workdir else value[1]
        raise ParamsError(f"corrupt params file: not a path: {value!r}")

    def builtins(self, value: Any) -> Any:
        """A JSON-friendly form of an encoded value; configurations become dicts with a
        "__type__" key (and "__output_of__" for outputs of submitted tasks)."""
        self._open: set[int] = set()
        return depth_first(self._builtins(value), self._builtins)

    def _builtins(self, value: Any) -> Generator[Any, Any, Any]:
        """`builtins` of one value; yields each value it holds, and is sent its form."""
        if type(value) is not list or not value:
            return value.hex() if isinstance(value, bytes) else value
        kind, rest = value[0], value[1:]
        if kind == "C" and rest:
            record = self._enter(rest[0])
            out: dict[str, Any] = {"__type__": record.type}
            if record.producer is not None:
                out["__output_of__"] = self._job_name(record.producer)
            for name, field in record.fields.items():
                out[name] = yield field
            self._open.discard(rest[0])
            return out
        if kind in ("L", "U", "S", "F"):
            items = []
            for v in rest:
                items.append((yield v))
            return items if kind in ("L", "U") else sorted(items, key=repr)
        if kind == "M":
            mapping = {}
            for i in range(0, len(rest) - 1, 2):
                mapping[str(rest[i])] = yield rest[i + 1]
            return mapping
        if kind == "I" and rest:
            return int(rest[0])
        if kind == "E" and len(rest) == 3:
            return f"{rest[1]}.{rest[2]}"
        if kind in ("P", "W"):
            return self._path(value)
        if kind in ("T", "D") and rest:
            return str(rest[0])
        raise ParamsError(f"corrupt params file: unknown value tag {kind!r}")

    def render(self, value: Any) -> str:
        """An encoded value written the way a user would write it in Python."""
        self._open = set()
        return depth_first(self._render(value), self._render)

    def _render(self, value: Any) -> Generator[Any, str, str]:
        """`render` of one value; yields each value it holds, and is sent its text."""
        if type(value) is not list or not value:
            return repr(value)
        kind, rest = value[0], value[1:]
        if kind == "C" and rest:
            record = self._enter(rest[0])
            args = []
            for name, field in record.fields.items():
                args.append(f"{name}={(yield field)}")
            self._open.discard(rest[0])
            return f"{record.type.rsplit('.', 1)[-1]}({', '.join(args)})"
        if kind in ("L", "U", "S", "F"):
            inner = []
            for v in rest:
                inner.append((yield v))
            if kind == "L":
                return f"[{', '.join(inner)}]"
            if kind == "U":
                return f"({', '.join(inner)}{',' if len(inner) == 1 else ''})"
            body = ", ".join(sorted(inner))
            if kind == "F":
                return f"frozenset({{{body}}})" if inner else "frozenset()"
            return f"{{{body}}}" if inner else "set()"
        if kind == "M":
            pairs = []
            for i in range(0, len(rest) - 1, 2):
                pairs.append(f"{rest[i]!r}: {(yield rest[i + 1])}")
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

    def _enter(self, index: Any) -> Record:
        """The record of a configuration a walk enters; an error if the walk is inside it
        already (a corrupt file whose values would hold themselves)."""
        record = self._record(index)
        if index in self._open:
            raise ParamsError(f"corrupt params file: object {index} holds itself")
        self._open.add(index)
        return record

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
