"""Shipping classes that a job's process cannot import: by value, with cloudpickle.

A job rebuilds its task by importing each class's module (see `legato._core._serialize`); a
class of a script run as `__main__` is imported from the script's file. A class defined
in a notebook, in `python -c`, in a script read from standard input, or in a function's
body has no module or file to import: the params file then carries it pickled by value
(cloudpickle pickles its methods, and the functions and classes they use, with it), and
the job rebuilds it from there. Its type name, and so every identifier, stays the one it
has where it was defined.

A Config class cannot go through cloudpickle's own way of rebuilding classes (msgspec
Structs refuse the `__slots__` it passes), so it is pickled as what the class statement
would have received: name, bases, annotations, field defaults and the pinned type name;
its methods and other attributes are set on the rebuilt class afterwards (they may refer
to the class itself, through `super()`). A class already rebuilt in this process, found
by a token that travels with it, is reused: two classes shipped together share their
bases.

Whether a class can be shipped is checked at `submit()` (`check`), so that a class
that cannot be pickled fails there, not later in its job.
"""

from __future__ import annotations

import inspect
import io
import os
import sys
import typing
import uuid
import weakref
from types import MemberDescriptorType
from typing import Any

import msgspec

from .._errors import ShippingError
from .._jobdir._names import JOB_KEY
from ._config import ConfigBase, ConfigMeta, module_name, registry

__all__ = ["check", "needs_shipping", "pickled", "unship"]

_needs: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()
_pickled: weakref.WeakKeyDictionary[type, bytes] = weakref.WeakKeyDictionary()
_tokens: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()
_rebuilt: dict[str, type] = {}
_registry_size = -1
_any_unimportable = False
_STRUCT_OPTIONS = ("array_like", "eq", "forbid_unknown_fields", "omit_defaults", "order")
_NOT_STATE = frozenset(
    (
        "__module__",
        "__qualname__",
        "__annotations__",
        "__doc__",
        "__dict__",
        "__weakref__",
        "__slots__",
        "__legato_plan__",
        "__legato_check__",
        "__legato_type_name__",
    )
)


def _main_file_missing() -> bool:
    file = getattr(sys.modules.get("__main__"), "__file__", None)
    return not file or not os.path.isfile(file)


def needs_shipping(cls: type) -> bool:
    """Whether a job's process cannot import `cls` by its module and qualname."""
    needed = _needs.get(cls)
    if needed is None:
        needed = _needs[cls] = "<locals>" in cls.__qualname__ or (
            cls.__module__ == "__main__" and _main_file_missing()
        )
    return needed


def _where(cls: type) -> str:
    if "<locals>" in cls.__qualname__:
        return "inside a function"
    file = getattr(sys.modules.get("__main__"), "__file__", None)
    if file == "<stdin>":
        return "in a script read from standard input"
    return "in a notebook or `python -c` (module __main__, which has no file)"


def _name(cls: type) -> str:
    return str(getattr(cls, "__legato_type_name__", f"{module_name(cls)}.{cls.__qualname__}"))


def pickled(cls: type) -> bytes:
    """`cls` pickled by value, for a job's process to rebuild (computed once a class).

    Raises:
        ShippingError: When cloudpickle is not installed, or `cls` refers to something
            that cannot be pickled.
    """
    data = _pickled.get(cls)
    if data is not None:
        return data
    try:
        pickler = _pickler_class()
    except ImportError:
        raise ShippingError(
            f"{_name(cls)} is defined {_where(cls)}, where its jobs cannot import it: "
            "install cloudpickle (pip install 'legato[notebook]') so that legato ships the "
            "class with its jobs, or define the class in a module"
        ) from None
    buffer = io.BytesIO()
    try:
        pickler(buffer, protocol=5).dump(cls)
    except ShippingError:
        raise
    except Exception as exc:
        raise ShippingError(
            f"{_name(cls)} is defined {_where(cls)}, so legato ships it with its jobs, but "
            f"it cannot be pickled: {type(exc).__name__}: {exc}. Define it in a module the "
            "jobs can import, or remove what cannot be pickled from what its methods use"
        ) from exc
    data = _pickled[cls] = buffer.getvalue()
    return data


_PICKLER: Any = None


def _pickler_class() -> Any:
    global _PICKLER
    if _PICKLER is None:
        import cloudpickle  # type: ignore[import-untyped]

        class Pickler(cloudpickle.CloudPickler):  # type: ignore[misc, name-defined]
            def reducer_override(self, obj: Any) -> Any:
                if isinstance(obj, ConfigMeta) and needs_shipping(obj):
                    return _reduce_config_class(obj)
                return super().reducer_override(obj)

        _PICKLER = Pickler
    return _PICKLER


def _reduce_config_class(cls: type) -> tuple[Any, ...]:
    token = _tokens.get(cls)
    if token is None:
        token = _tokens[cls] = uuid.uuid4().hex
    own = inspect.get_annotations(cls)
    try:  # string annotations name things of the notebook's namespace: resolve them here
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:
        hints = {}
    annotations = {name: hints.get(name, value) for name, value in own.items()}
    defaults: dict[str, tuple[str, Any]] = {}
    for info in msgspec.structs.fields(cls):  # type: ignore[arg-type]
        if info.name not in own:
            continue
        if info.default is not msgspec.NODEFAULT:
            defaults[info.name] = ("value", info.default)
        elif info.default_factory is not msgspec.NODEFAULT:
            defaults[info.name] = ("factory", info.default_factory)
    config = cls.__struct_config__  # type: ignore[attr-defined]
    base_config = getattr(cls.__bases__[0], "__struct_config__", None)
    options = {
        key: getattr(config, key)
        for key in _STRUCT_OPTIONS
        if base_config is None or getattr(config, key) != getattr(base_config, key)
    }
    state = {
        key: value
        for key, value in cls.__dict__.items()
        if key not in _NOT_STATE and not isinstance(value, MemberDescriptorType)
    }
    args = (
        token,
        type(cls),
        cls.__name__,
        cls.__qualname__,
        _name(cls),
        cls.__bases__,
        cls.__doc__,
        annotations,
        defaults,
        options,
    )
    return (_rebuild_class, args, state, None, None, _set_class_state)


def _rebuild_class(
    token: str,
    meta: type,
    name: str,
    qualname: str,
    type_name: str,
    bases: tuple[type, ...],
    doc: str | None,
    annotations: dict[str, Any],
    defaults: dict[str, tuple[str, Any]],
    options: dict[str, Any],
) -> type:
    cls = _rebuilt.get(token)
    if cls is not None:
        return cls
    ns: dict[str, Any] = {
        "__module__": "__main__",
        "__qualname__": qualname,
        "__annotations__": annotations,
    }
    if doc is not None:
        ns["__doc__"] = doc
    for field, (kind, value) in defaults.items():
        if kind == "value":
            ns[field] = msgspec.field(default=value)
        else:
            ns[field] = msgspec.field(default_factory=value)
    rebuilt: type = meta(name, bases, ns, name=type_name, **options)
    _rebuilt[token] = rebuilt
    return rebuilt


def _set_class_state(cls: type, state: dict[str, Any]) -> type:
    for key, value in state.items():
        setattr(cls, key, value)
    return cls


def unship(module: str, qualname: str, data: bytes) -> Any:
    """The class a params file shipped as `data`, registered under its recorded
    (module, qualname), so that later lookups find it."""
    import pickle

    try:
        cls = pickle.loads(data)  # noqa: S301 - written by the experiment that runs the job
    except ImportError as exc:
        from .._errors import DeserializationError

        raise DeserializationError(
            f"cannot rebuild {module}.{qualname}, shipped by value with the job: {exc} "
            "(is cloudpickle installed where the job runs?)"
        ) from exc
    if isinstance(cls, type) and issubclass(cls, ConfigBase):
        registry[(module, qualname)] = cls
    return cls


def _unimportable_classes() -> bool:
    """Whether any Config class of this process needs shipping (rechecked as classes are
    defined): when none does, `check` costs nothing."""
    global _registry_size, _any_unimportable
    if len(registry) != _registry_size:
        _registry_size = len(registry)
        _any_unimportable = any(needs_shipping(c) for c in list(registry.values()))
    return _any_unimportable


def check(task: ConfigBase) -> None:
    """At submit: pickle each class of `task`'s configurations that its job must be
    sent, so that one that cannot be fails now (`ShippingError`), not in the job."""
    if not _unimportable_classes():
        return
    from ._graph import postorder

    def submitted(config: ConfigBase) -> bool:  # checked when it was submitted
        return config is not task and JOB_KEY in config.__dict__

    for config in postorder(task, skip=submitted):
        cls = type(config)
        if needs_shipping(cls):
            pickled(cls)
