"""`dumps`/`loads`: the params file format that lets a job, the CLI and `load()` rebuild a task.

A msgpack map holding every configuration reachable from the root once (shared objects
stay shared), each with its class's module and qualname, its field values (identity and
Meta alike), its tags, resolved path generators and, for outputs of submitted tasks, the
producing task. Classes defined in a script run as `__main__` also record the script's
file, so a job process can import it under its module name; classes that no file
defines (a notebook's, `python -c`'s, a function's) travel pickled by value
(`legato._core._ship`).

Paths inside the workdir are written relative to it, and rebuilt under the workdir of the
reader (the one a job directory lies in, for `load`): a workdir moved or mounted elsewhere
keeps its paths and so its identifiers (docs/configurations.md, "Identity").
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Generator, Mapping
from pathlib import Path, PurePath
from typing import Any

import msgspec
from msgspec.structs import force_setattr

from .._errors import DeserializationError, ValidationError
from .._jobdir._names import PRODUCER_KEY, TAGS_KEY, TASKDIR_KEY
from ._canon import active_workdir
from ._config import ConfigBase, main_module_name, module_name, registry
from ._defaults import left_out_defaults
from ._fields import FieldKind
from ._frozen import FrozenDict, FrozenList, FrozenSet
from ._params_format import FORMAT_VERSION, ClassRecord, ParamsError, decode
from ._params_format import depth_first as _depth_first
from ._ship import needs_shipping, pickled, unship

__all__ = ["FORMAT_VERSION", "dumps", "loads", "resolve_class"]

_encoder = msgspec.msgpack.Encoder()


def _main_task_dir(config: Any, taskdir: Path) -> Path:
    from ._task import main_task_dir

    return main_task_dir(config, taskdir)


class Dumper:
    def __init__(self, workdir: Path | None) -> None:
        self.objects: list[dict[str, Any]] = []
        self.classes: dict[str, bytes] = {}  # shipped by value: "module:qualname" -> pickle
        self.index: dict[int, int] = {}
        self.headers: dict[type, tuple[str, str | None]] = {}  # class -> (module, file)
        self.workdir = workdir
        # Where paths are "/"-separated, a path under the workdir is its string past this
        # prefix: what relative_to says, without its cost (every task has a job directory).
        self.prefix = None
        if workdir is not None and os.sep == "/" and workdir.is_absolute():
            self.prefix = str(workdir).rstrip("/") + "/"

    def path(self, value: PurePath) -> list[str]:
        if self.workdir is not None and value.is_absolute():
            text = str(value)
            if self.prefix is not None:
                if text + "/" == self.prefix or text == self.prefix:
                    return ["W", "."]
                if text.startswith(self.prefix):
                    return ["W", text[len(self.prefix) :]]
                return ["P", text]
            try:
                return ["W", value.relative_to(self.workdir).as_posix()]
            except ValueError:
                pass
        return ["P", str(value)]

    def ship(self, cls: type, module: str) -> None:
        """Carry `cls`, which a job cannot import, by value (see `legato._core._ship`)."""
        key = f"{module}:{cls.__qualname__}"
        if key not in self.classes:
            self.classes[key] = pickled(cls)

    def config(self, config: ConfigBase) -> int:
        """The index of `config`'s record, written with those of every configuration it
        refers to (each once, depth first)."""
        return _depth_first(self._config(config), self._config)

    def value(self, value: Any) -> Any:
        """The encoding of `value`, with the records of the configurations it holds
        written as `config` writes them."""
        return _depth_first(self._value(value), self._config)

    def _config(self, config: ConfigBase) -> Generator[ConfigBase, int, int]:
        key = id(config)
        if key in self.index:
            return self.index[key]
        idx = len(self.objects)
        self.index[key] = idx
        record: dict[str, Any] = {}
        self.objects.append(record)
        cls = type(config)
        plan = cls.__legato_get_plan__()
        header = self.headers.get(cls)
        if header is None:
            header = self.headers[cls] = self._header(cls)
        record["module"], file = header
        record["qualname"] = cls.__qualname__
        record["type"] = plan.type_name
        if file is not None:
            record["file"] = file
        fields: dict[str, Any] = {}
        paths: dict[str, list[str]] = {}
        for name, kind, *_ in plan.checks:
            value = getattr(config, name)
            if kind is FieldKind.PATH:
                if value is not None:
                    paths[name] = self.path(value)
            elif kind is not FieldKind.CONSTANT:
                t = type(value)
                if t is str or t is bool or t is float or value is None:
                    fields[name] = value  # the common case, without a generator
                else:
                    fields[name] = yield from self._value(value)
        record["fields"] = fields
        defaults = left_out_defaults(config)
        if defaults:  # for the default-change guard (`_defaults`)
            record["defaults"] = defaults
        if paths:
            record["paths"] = paths
        d = config.__dict__
        tags = d.get(TAGS_KEY)
        if tags:
            record["tags"] = list(tags)
        producer = d.get(PRODUCER_KEY)
        if producer is not None:
            record["producer"] = yield producer
        taskdir = d.get(TASKDIR_KEY)
        if taskdir is not None:
            record["taskdir"] = self.path(taskdir)
            if plan.subparams:  # for the command line, which cannot compute it
                record["maindir"] = self.path(_main_task_dir(config, taskdir))
        return idx

    def _header(self, cls: type) -> tuple[str, str | None]:
        """(module, script file) of a class's records, once a class per params file: a
        class of the script run as `__main__` is found by its file, whose real path takes
        a system call per directory of it (a chain of a hundred such tasks paid them a
        hundred times in each job's params)."""
        module = module_name(cls)
        file = None
        if cls.__module__ == "__main__":
            main_file = getattr(sys.modules.get("__main__"), "__file__", None)
            if main_file:
                file = str(Path(main_file).resolve())
        if needs_shipping(cls):
            self.ship(cls, module)
        return module, file

    def _value(self, value: Any) -> Generator[ConfigBase, int, Any]:
        """The encoded value; yields each configuration it holds, for its index."""
        t = type(value)
        if t is str or t is bool or t is float or value is None or t is bytes:
            return value
        if t is int:
            return value if -(2**63) <= value < 2**64 else ["I", str(value)]
        if isinstance(value, ConfigBase):
            return ["C", (yield value)]
        tag = _COLLECTIONS.get(t)
        if tag is not None:
            out: list[Any] = [tag]
            if tag == "M":
                for k, v in value.items():
                    out += [k, (yield from self._value(v))]
            else:
                for v in value:
                    out.append((yield from self._value(v)))
            return out
        if isinstance(value, enum.Enum):
            cls = type(value)
            if needs_shipping(cls):
                self.ship(cls, module_name(cls))
            return ["E", module_name(cls), cls.__qualname__, value.name]
        if isinstance(value, PurePath):
            return self.path(value)
        if isinstance(value, dt.datetime):
            return ["T", value.isoformat()]
        if isinstance(value, dt.date):
            return ["D", value.isoformat()]
        raise ValidationError("value", "a configuration value type", value, "cannot serialize")


_COLLECTIONS: dict[type, str] = {
    list: "L",
    tuple: "U",
    dict: "M",
    set: "S",
    frozenset: "F",
    FrozenList: "L",  # what configurations hold (`_frozen`), rebuilt read-only on loading
    FrozenDict: "M",
    FrozenSet: "S",
}


def dumps(config: ConfigBase) -> bytes:
    """Encode a configuration, and every configuration it refers to, for `loads`.

    This is the format of a job's `params.msgpack`. Unlike the identity, it keeps `Meta`
    fields, tags and resolved path generators, so that what `loads` rebuilds in another
    process is the task as it was submitted; paths inside the current workdir are written
    relative to it, so a moved workdir still loads.
    """
    if not isinstance(config, ConfigBase):
        raise TypeError(f"dumps() takes a Config or Task, not {type(config).__name__}")
    workdir = active_workdir()
    dumper = Dumper(workdir)
    root = dumper.config(config)
    doc: dict[str, Any] = {"version": FORMAT_VERSION, "root": root, "objects": dumper.objects}
    if workdir is not None:
        doc["workdir"] = str(workdir)
    if dumper.classes:
        doc["classes"] = dumper.classes
    return _encoder.encode(doc)


def _import_script(module: str, file: str) -> None:
    """Import a `__main__` script under its module name (its `__main__` guard stays off)."""
    if module in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module, file)
    if spec is None or spec.loader is None:
        raise DeserializationError(f"cannot import {module!r} from {file}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[module]
        raise


def import_module_of(module: str, file: str | None = None) -> None:
    """Import a class's module as rebuilding the class would (`resolve_class`), so that a
    warm server holds what its jobs will look up."""
    if module in sys.modules:
        return
    try:
        importlib.import_module(module)
    except ImportError:
        if file is None or not Path(file).exists():
            raise
        _import_script(module, file)


def resolve_class(
    module: str,
    qualname: str,
    file: str | None = None,
    shipped: Mapping[str, bytes] | None = None,
) -> Any:
    """The class for a recorded (module, qualname): one of this process, one `shipped`
    by value with the params (see `legato._core._ship`), or one of its module, imported."""
    cls: Any = registry.get((module, qualname))
    if cls is not None:
        return cls
    if module == main_module_name():
        main = sys.modules.get("__main__")
        cls = _getattr_path(main, qualname)
        if cls is not None:
            return cls
    data = shipped.get(f"{module}:{qualname}") if shipped else None
    if data is not None:
        return unship(module, qualname, data)
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        if file is None or not Path(file).exists():
            raise DeserializationError(
                f"cannot rebuild {module}.{qualname}: module {module!r} is not importable ({exc})"
            ) from exc
        _import_script(module, file)
        mod = sys.modules[module]
    cls = registry.get((module, qualname)) or _getattr_path(mod, qualname)
    if cls is None:
        raise DeserializationError(f"cannot rebuild {module}.{qualname}: no such class")
    return cls


def _getattr_path(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class Loader:
    def __init__(
        self,
        objects: list[ClassRecord],
        workdir: Path | None,
        shipped: Mapping[str, bytes] | None = None,
    ) -> None:
        self.shipped = shipped
        self.objects = objects
        self.built: dict[int, ConfigBase] = {}
        self.building: set[int] = set()
        self.workdir = workdir

    def path(self, value: Any) -> Path:
        if type(value) is str:  # written before paths were tagged
            return Path(value)
        path = self._leaf(value) if type(value) is list and value else None
        if not isinstance(path, Path):
            raise DeserializationError(f"not a path: {value!r}")
        return path

    def config(self, idx: int) -> ConfigBase:
        """The configuration of record `idx`, built after every one it refers to (each
        once, depth first)."""
        return _depth_first(self._config(idx), self._config)

    def _config(self, idx: int) -> Generator[int, ConfigBase, ConfigBase]:
        if idx in self.built:
            return self.built[idx]
        if idx in self.building:
            raise DeserializationError(f"corrupt params file: object {idx} refers to itself")
        self.building.add(idx)
        record = self.objects[idx]
        cls = resolve_class(record.module, record.qualname, record.file, self.shipped)
        if not (isinstance(cls, type) and issubclass(cls, ConfigBase)):
            raise DeserializationError(f"{record.module}.{record.qualname} is not a Config")
        fields = {}
        for k, v in record.fields.items():
            fields[k] = (yield from self._value(v)) if type(v) is list else v
        try:
            config = cls(**fields)
        except (TypeError, ValueError) as exc:
            raise DeserializationError(
                f"cannot rebuild {record.type}: {exc} (did the class change?)"
            ) from exc
        for name, path in record.paths.items():
            force_setattr(config, name, self.path(path))
        d = config.__dict__
        if record.tags:
            d[TAGS_KEY] = {k: getattr(config, k) for k in record.tags if k in fields}
        if record.producer is not None:
            d[PRODUCER_KEY] = yield record.producer
        if record.taskdir:
            d[TASKDIR_KEY] = self.path(record.taskdir)
        self.built[idx] = config
        return config

    def _value(self, value: Any) -> Generator[int, ConfigBase, Any]:
        """The decoded value; yields the index of each configuration it holds."""
        if type(value) is not list:
            return value
        kind = value[0]
        rest = value[1:]
        if kind == "C":
            return (yield rest[0])
        if kind == "M":
            mapping = {}
            for i in range(0, len(rest), 2):
                mapping[rest[i]] = yield from self._value(rest[i + 1])
            return mapping
        build = BUILDERS.get(kind)
        if build is not None:
            items = []
            for v in rest:
                items.append((yield from self._value(v)))
            return build(items)
        return self._leaf(value)

    def _leaf(self, value: list[Any]) -> Any:
        """A tagged value that holds no other value."""
        kind = value[0]
        rest = value[1:]
        if kind == "I":
            return int(rest[0])
        if kind == "E":
            cls = resolve_class(rest[0], rest[1], None, self.shipped)
            return cls[rest[2]]
        if kind == "P":
            return Path(rest[0])
        if kind == "W":
            if self.workdir is None:
                raise DeserializationError(f"path {rest[0]!r} is relative to an unknown workdir")
            return self.workdir / rest[0]
        if kind == "T":
            return dt.datetime.fromisoformat(rest[0])
        if kind == "D":
            return dt.date.fromisoformat(rest[0])
        raise DeserializationError(f"unknown value tag {kind!r}")


BUILDERS: dict[str, Callable[[list[Any]], Any]] = {
    "L": list,
    "U": tuple,
    "S": set,
    "F": frozenset,
}


def loads(data: bytes) -> Any:
    """Rebuild a configuration written by `dumps`, with its tags and identifier.

    Classes are imported by module name (a class of a script run as `__main__` from the
    script's file), so they must still exist. Workdir paths are rebuilt under the current
    workdir if there is one, else under the one recorded by `dumps`.

    Raises:
        DeserializationError: When `data` is not a params file, is of an unknown version,
            or names a class that cannot be imported.
    """
    try:
        doc = decode(data, classes=True)
    except ParamsError as exc:
        raise DeserializationError(str(exc)) from None
    try:
        workdir = active_workdir() or (Path(doc.workdir) if doc.workdir else None)
        return Loader(doc.objects, workdir, doc.classes).config(doc.root)
    except DeserializationError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DeserializationError(f"corrupt params file: {exc!r}") from exc
