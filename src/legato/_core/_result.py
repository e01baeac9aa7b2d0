"""A job's result: what `execute()` returned, kept in `result.msgpack` beside its `done`.

The value is encoded as the params file encodes field values (see `legato._core._serialize`):
builtins, containers, paths, dates, enums and configurations, with paths inside the
workdir kept relative to it, so that a moved workdir reads back its results. Other
msgspec Structs are kept with their class. Anything else, and anything above
`MAX_RESULT_BYTES` once encoded, fails the job: a result is a summary (scores, a few
numbers, the paths of what the job wrote), and large arrays belong in files of the job
directory, whose paths the result can hold.

The worker writes `result.msgpack` before the `done` marker, and the marker names it
(`"result": "result.msgpack"`): a job is never DONE without its result, a result written
by a run that died before its marker is never read, and a marker without the key means
`execute()` returned None (see `legato._jobdir._layout`).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import msgspec

from .._errors import DeserializationError, ResultError, ValidationError
from .._jobdir._job import JobDir
from .._jobdir._layout import DONE, RESULT
from ._config import ConfigBase, module_name
from ._params_format import ClassRecord
from ._params_format import depth_first as _depth_first
from ._serialize import BUILDERS, Dumper, Loader, resolve_class

__all__ = [
    "MAX_RESULT_BYTES",
    "decode_result",
    "encode_result",
    "load_result",
    "read_result",
    "store_result",
]

MAX_RESULT_BYTES = 16 * 1024 * 1024
"""The largest encoded result a job may return (16 MiB); above it the job fails."""

_VERSION = 1
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class _ResultDumper(Dumper):
    """The params encoding of values, plus msgspec Structs and numpy scalars."""

    def _value(self, value: Any) -> Generator[ConfigBase, int, Any]:
        if isinstance(value, msgspec.Struct) and not isinstance(value, ConfigBase):
            cls = type(value)
            fields: dict[str, Any] = {}
            for name in cls.__struct_fields__:
                fields[name] = yield from self._value(getattr(value, name))
            return ["R", module_name(cls), cls.__qualname__, fields]
        t = type(value)
        if t.__module__ == "numpy" and getattr(value, "ndim", None) == 0:
            value = value.item()  # a numpy scalar (np.float64(0.9)): the Python number
        elif t.__module__ == "numpy":
            raise _unsupported(value, "numpy arrays belong in files of the job directory")
        try:
            return (yield from super()._value(value))
        except ValidationError:
            raise _unsupported(value) from None


class _ResultLoader(Loader):
    """Rebuilds the value; with `plain`, without importing any class: configurations and
    Structs become dicts (with a "__type__" key for configurations), enums their names."""

    def __init__(self, objects: list[dict[str, Any]], workdir: Path | None, plain: bool) -> None:
        super().__init__(msgspec.convert(objects, list[ClassRecord]), workdir)
        self.plain = plain

    def _value(self, value: Any) -> Generator[int, ConfigBase, Any]:
        if type(value) is list and value and value[0] == "R":
            _, module, qualname, fields = value
            decoded = {}
            for name, field in fields.items():
                decoded[name] = yield from self._value(field)
            return decoded if self.plain else resolve_class(module, qualname)(**decoded)
        return (yield from super()._value(value))

    def _leaf(self, value: list[Any]) -> Any:
        if self.plain and value[0] == "E":
            return f"{value[2]}.{value[3]}"
        return super()._leaf(value)

    def direct(self, value: Any) -> Any:
        """`_value` without generators, for results that hold no configuration (the
        usual dict of scores): a third of the time, over thousands of results."""
        if type(value) is not list:
            return value
        kind = value[0]
        if kind == "M":
            direct = self.direct
            return {value[i]: direct(value[i + 1]) for i in range(1, len(value), 2)}
        build = BUILDERS.get(kind)
        if build is not None:
            return build([self.direct(v) for v in value[1:]])
        if kind == "R":
            _, module, qualname, fields = value
            decoded = {name: self.direct(field) for name, field in fields.items()}
            return decoded if self.plain else resolve_class(module, qualname)(**decoded)
        return self._leaf(value)

    def step(self, idx: int) -> Generator[int, Any, Any]:
        return self._plain_config(idx) if self.plain else self._config(idx)

    def _plain_config(self, idx: int) -> Generator[int, Any, Any]:
        if idx in self.building:
            raise DeserializationError(f"corrupt result file: object {idx} refers to itself")
        self.building.add(idx)
        record = self.objects[idx]
        out: dict[str, Any] = {"__type__": record.type}
        for name, field in record.fields.items():
            out[name] = yield from self._value(field)
        for name, path in record.paths.items():
            out[name] = self.path(path)
        self.building.discard(idx)
        return out


def _unsupported(value: Any, hint: str = "") -> ResultError:
    t = type(value)
    name = t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
    return ResultError(
        f"execute() returned a value holding a {name}, which a result cannot hold: return "
        "builtins (numbers, strings, lists, dicts), msgspec Structs or configurations; "
        + (hint or "write anything else to a file in the job directory and return its path")
    )


def encode_result(value: Any, workdir: Path | None) -> bytes:
    """The bytes of `result.msgpack` for `value`; `ResultError` when it cannot be stored."""
    dumper = _ResultDumper(workdir)
    try:
        encoded = dumper.value(value)
    except RecursionError:
        raise ResultError("execute() returned a value nested too deeply to store") from None
    doc: dict[str, Any] = {"version": _VERSION, "value": encoded}
    if dumper.objects:
        doc["objects"] = dumper.objects
    if workdir is not None:
        doc["workdir"] = str(workdir)
    data = _encoder.encode(doc)
    if len(data) > MAX_RESULT_BYTES:
        raise ResultError(
            f"execute() returned a result of {len(data) / 2**20:.1f} MiB, above the "
            f"{MAX_RESULT_BYTES // 2**20} MiB a result may take: write large data to a file "
            "in the job directory and return its path"
        )
    return data


def decode_result(data: bytes, workdir: Path | None, *, plain: bool = False) -> Any:
    """The value `encode_result` encoded; paths relative to the workdir are rebuilt
    under `workdir` (the one the job directory lies in now). `plain` imports no class
    (for the command line, which runs no user code)."""
    try:
        doc = _decoder.decode(data)
        if doc["version"] != _VERSION:
            raise ResultError(f"result format {doc['version']!r} is not supported")
        recorded = doc.get("workdir")
        if workdir is None and recorded:
            workdir = Path(recorded)
        objects = doc.get("objects")
        loader = _ResultLoader(objects or [], workdir, plain)
        if not objects:
            return loader.direct(doc["value"])
        return _depth_first(loader._value(doc["value"]), loader.step)
    except (ResultError, DeserializationError):
        raise
    except (
        msgspec.DecodeError,
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        RecursionError,
    ) as exc:
        raise ResultError(f"corrupt result file: {exc!r}") from exc


def store_result(job_dir: Path, value: Any) -> str:
    """Write `value` to the job's result file (durably, whole); the name the `done`
    marker records. Called by the job's process before it writes `done`."""
    data = encode_result(value, _workdir_of(job_dir))
    return JobDir(job_dir).write_result(data)


def _workdir_of(job_dir: Path) -> Path:
    return job_dir.parent.parent.parent  # <workdir>/jobs/<type name>/<identifier>


def _marker(job_dir: Path) -> dict[str, Any] | None:
    """The done marker's content ({} when unreadable), or None when the job is not DONE."""
    return JobDir(job_dir).done_record()


def load_result(job_dir: str | os.PathLike[str], *, plain: bool = False) -> Any:
    """What `execute()` returned in the job of `job_dir`, or None if it returned nothing.

    Reads the job directory alone, with no experiment: in a notebook, a script, or
    another process. Paths inside the workdir are under its current location, wherever
    it has moved since the job ran. `plain` (for tools that must not import the
    user's code) gives configurations and Structs as dicts and enums as names.

    Raises:
        ResultError: When the job is not DONE, or its `done` marker names a result file
            that is missing (deleted by hand) or corrupt.
    """
    path = Path(job_dir).absolute()
    marker = _marker(path)
    if marker is None:
        raise ResultError(f"job {path} is not DONE (it has no {DONE} marker): no result yet")
    name = marker.get("result")
    if name is None and marker:
        return None
    if not isinstance(name, str):  # an unreadable marker: whatever result file there is
        if not (path / RESULT).exists():
            return None
        name = RESULT
    return read_result(str(path), name, _workdir_of(path), plain=plain)


def read_result(job_dir: str, name: str, workdir: Path | None, *, plain: bool = False) -> Any:
    """The result in file `name` of a DONE job whose marker names it (`load_result`
    without reading the marker: `legato.results()` has read it already)."""
    file = os.path.join(job_dir, name)
    try:
        with open(file, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ResultError(
            f"job {job_dir} is DONE but its result file {file} is missing; delete "
            f"{os.path.join(job_dir, DONE)} and submit the task again to recompute it"
        ) from None
    return decode_result(data, workdir, plain=plain)
