"""`Config`: typed, frozen msgspec Structs whose identity fields name their work.

A per-class plan (`_plan.Plan`: field kinds, coercers, defaults in identity form) is
compiled on first construction rather than at class creation, so field types may name
classes declared later in the module.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from .._errors import ConfigError
from .._jobdir._names import IDENTIFIER_KEY
from ._fields import FieldSpec, PathGenerator, field, pathgenerator
from ._identity import identifier_digest, main_module_name, module_name
from ._plan import Plan

__all__ = ["Config", "ConfigBase", "main_module_name", "module_name", "registry"]

registry: dict[tuple[str, str], type[ConfigBase]] = {}
"""Every config class by (module name, qualname), for rebuilding params files."""


def _annotations(ns: dict[str, Any]) -> dict[str, Any]:
    ann = ns.get("__annotations__")
    if ann is None and "__annotate__" in ns:  # Python 3.14 lazy annotations
        try:
            ann = ns["__annotate__"](1)
        except Exception:
            ann = {}
    return dict(ann or {})


def _is_pathgen(ann: Any, globalns: dict[str, Any], ns: dict[str, Any]) -> bool:
    if isinstance(ann, str):
        if "pathgenerator" not in ann:
            return False
        try:
            ann = eval(ann, globalns, dict(ns))  # noqa: S307 - the class's own annotation
        except Exception:
            return False
    if typing.get_origin(ann) is not typing.Annotated:
        return False
    return any(isinstance(m, PathGenerator) for m in typing.get_args(ann)[1:])


RESERVED = frozenset({"submit", "execute", "config"})
"""Field names that would shadow `Task`'s methods; dunder names are reserved too."""


def _check_names(clsname: str, ns: dict[str, Any]) -> None:
    """Refuse fields that would shadow legato's names (`__identifier__` would silently
    replace the identifier; `submit` would break submission)."""
    for fname, ann in _annotations(ns).items():
        if (fname.startswith("__") and fname.endswith("__")) or fname in RESERVED:
            text = ann if isinstance(ann, str) else repr(ann)
            if "ClassVar" in text:
                continue  # a class attribute, not a field
            raise ConfigError(
                f"{clsname}.{fname}: the name is reserved by legato (submit, execute, config "
                "and dunder names): rename the field"
            )


def _compile_and_check(config: ConfigBase) -> None:
    """A class's `__legato_check__` until its first construction compiles its plan."""
    type(config).__legato_get_plan__().check(config)


if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**kwargs: Any) -> Any:
        return lambda cls: cls


@dataclass_transform(
    frozen_default=True,
    kw_only_default=True,
    field_specifiers=(msgspec.field, field, pathgenerator),
)
class ConfigMeta(msgspec.StructMeta):
    """Adds the `name=` class keyword and legato's field options to msgspec's Structs."""

    def __new__(
        mcls,
        clsname: str,
        bases: tuple[type, ...],
        ns: dict[str, Any],
        /,
        *,
        name: str | None = None,
        **kwargs: Any,
    ) -> ConfigMeta:
        _check_names(clsname, ns)
        options: dict[str, bool] = {}
        pathgens: dict[str, PathGenerator] = {}
        for base in bases:
            options.update(getattr(base, "__legato_field_options__", {}))
            pathgens.update(getattr(base, "__legato_pathgens__", {}))
        for fname in _annotations(ns):
            pathgens.pop(fname, None)  # declared again here
        for key, value in list(ns.items()):
            if isinstance(value, PathGenerator):
                pathgens[key] = value
                ns[key] = None  # None until submission
            elif isinstance(value, FieldSpec):
                options[key] = value.ignore_default
                if value.default_factory is not None:
                    ns[key] = msgspec.field(default_factory=value.default_factory)
                else:
                    ns[key] = msgspec.field(default=value.default)
        module = sys.modules.get(ns.get("__module__", ""))
        globalns = vars(module) if module is not None else {}
        for fname, ann in _annotations(ns).items():
            if fname not in ns and _is_pathgen(ann, globalns, ns):
                ns[fname] = None
        ns["__legato_field_options__"] = options
        ns["__legato_pathgens__"] = pathgens
        ns["__legato_plan__"] = None
        ns["__legato_check__"] = _compile_and_check
        kwargs.setdefault("kw_only", True)
        cls = super().__new__(mcls, clsname, bases, ns, **kwargs)
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"{clsname}: name= takes a non-empty string")
        type_name = name or f"{module_name(cls)}.{cls.__qualname__}"
        cls.__legato_type_name__ = type_name  # type: ignore[attr-defined]
        registry[(module_name(cls), cls.__qualname__)] = cls  # type: ignore[assignment]
        return cls


# Again on the base class: type checkers take the transform of the nearest class in the MRO,
# which would otherwise be msgspec.Struct's (no keyword-only default, no legato specifiers).
@dataclass_transform(
    frozen_default=True,
    kw_only_default=True,
    field_specifiers=(msgspec.field, field, pathgenerator),
)
class ConfigBase(msgspec.Struct, metaclass=ConfigMeta, frozen=True, dict=True, kw_only=True):
    """Shared base of `Config` and `Task`; not for direct use."""

    __legato_type_name__: ClassVar[str]
    __legato_plan__: ClassVar[Plan | None]
    __legato_check__: ClassVar[Callable[[ConfigBase], None]]
    """The plan's `check` once compiled: what `__post_init__` runs."""
    __legato_field_options__: ClassVar[dict[str, bool]]
    __legato_pathgens__: ClassVar[dict[str, PathGenerator]]

    @classmethod
    def __legato_get_plan__(cls) -> Plan:
        """The class's plan, compiled on its first use (a class that is declared but
        never used costs no code generation)."""
        return cls.__legato_plan__ or cls._legato_compile()

    @classmethod
    def _legato_compile(cls) -> Plan:
        plan = Plan(cls)
        cls.__legato_plan__ = plan
        cls.__legato_check__ = plan.check
        return plan

    def __post_init__(self) -> None:
        type(self).__legato_check__(self)

    @property
    def __identifier__(self) -> str:
        """The 64-hex-digit SHA-256 of the identity; computed once."""
        d = self.__dict__
        ident: str | None = d.get(IDENTIFIER_KEY)
        if ident is None:
            ident = d[IDENTIFIER_KEY] = identifier_digest(self).hex()
        return ident

    @property
    def __tags__(self) -> dict[str, Any]:
        """Tags of this configuration, its nested configurations and its dependencies."""
        from ._graph import collect_tags

        return collect_tags(self)

    def __hash__(self) -> int:
        return hash(identifier_digest(self))


class Config(ConfigBase):
    """A typed configuration: subclass it and declare `Param`, `Meta`, `Constant` fields."""
