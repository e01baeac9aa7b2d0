"""Field kinds: which fields make a configuration's identity and which do not.

The kinds are `Annotated` markers so that type checkers see the plain value type
(`Param[int]` is an `int` to mypy) while legato reads the marker at class creation.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

__all__ = [
    "Constant",
    "FieldKind",
    "Meta",
    "Option",
    "Param",
    "PathGenerator",
    "SubParam",
    "Tagged",
    "field",
    "pathgenerator",
    "tag",
]

T = TypeVar("T")


class FieldKind(enum.Enum):
    """How a field takes part in the identity."""

    PARAM = "param"
    SUBPARAM = "subparam"
    META = "meta"
    CONSTANT = "constant"
    PATH = "pathgenerator"


Param = Annotated[T, FieldKind.PARAM]
"""An identity field: changing it makes another configuration."""

SubParam = Annotated[T, FieldKind.SUBPARAM]
"""An identity field that the *main identifier* leaves out: tasks that differ only in their
sub-parameters (the number of epochs, say) share a main task directory, `__maintaskdir__`,
and never run at the same time, so a later one can resume from an earlier one's checkpoint."""

Meta = Annotated[T, FieldKind.META]
"""A field outside the identity: devices, verbosity, paths of convenience."""

Option = Annotated[T, FieldKind.META]
"""Alias of `Meta`, the name experimaestro users know."""

Constant = Annotated[T, FieldKind.CONSTANT]
"""Always part of the identity, never settable by users (a class version, say)."""


class PathGenerator:
    """What `pathgenerator()` returns: the marker of a path generator field."""

    __slots__ = ("name",)
    kind = FieldKind.PATH

    def __init__(self, name: str | Callable[[Any], str]) -> None:
        if not callable(name) and (not isinstance(name, str) or not name):
            raise TypeError("pathgenerator() takes a non-empty relative path or a callable")
        self.name = name

    def __repr__(self) -> str:
        return f"pathgenerator({self.name!r})"


def pathgenerator(name: str | Callable[[Any], str], *, init: Literal[False] = False) -> Any:
    """Mark a `Path` field resolved at submission to `<job dir>/<name>`.

    The name is relative to the job directory; a callable receives the task and returns it.
    Either in the annotation, `checkpoint: Annotated[Path, pathgenerator("model.pt")]`, or as
    the field's default, `checkpoint: Path = pathgenerator("model.pt")`: the same field, but
    type checkers understand only the second, which tells them (through `init`, which is for
    them alone) that the field is no constructor argument.
    """
    if init:
        raise TypeError("a path generator is never a constructor argument (init=False)")
    return PathGenerator(name)


class FieldSpec:
    """What `field()` returns until the class is created: msgspec never sees it."""

    __slots__ = ("default", "default_factory", "ignore_default")

    def __init__(
        self, default: Any, default_factory: Callable[[], Any] | None, ignore_default: bool
    ) -> None:
        self.default = default
        self.default_factory = default_factory
        self.ignore_default = ignore_default


def field(
    *,
    default: Any = msgspec.NODEFAULT,
    default_factory: Callable[[], Any] | None = None,
    ignore_default: bool = True,
) -> Any:
    """Declare a default with options.

    `ignore_default=False` keeps the field in the identity even at its default value; a
    `default_factory` always does (a factory's value is not known when the class is made).
    """
    if default is not msgspec.NODEFAULT and default_factory is not None:
        raise TypeError("field() takes either default or default_factory, not both")
    return FieldSpec(default, default_factory, ignore_default)


class Tagged(Generic[T]):
    """A value wrapped by `tag()`: unwrapped at construction, recorded in the tags."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"tag({self.value!r})"


def tag(value: T) -> T:
    """Use `value` as usual and record `(field name, value)` in the job's tags.

    Tags never change an identifier. Typed as returning `T` so `Param[int]` accepts it.
    """
    if isinstance(value, Tagged):
        return value  # type: ignore[return-value]
    return Tagged(value)  # type: ignore[return-value]
