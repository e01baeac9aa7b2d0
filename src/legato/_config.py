"""`Config`: typed, frozen msgspec Structs whose identity fields name their work.

A per-class plan (field kinds, coercers, defaults in identity form) is compiled on first
construction rather than at class creation, so field types may name classes declared later
in the module.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from msgspec.structs import force_setattr

from ._errors import ConfigError
from ._fields import FieldKind, Tagged, _FieldSpec, field, pathgenerator
from ._identity import (
    _NO_FAST,
    WorkdirDefault,
    encode_default,
    fast_default,
    identifier_digest,
)
from ._validate import Coercer, compile_coercer

__all__ = ["Config", "ConfigBase", "module_name", "registry"]

registry: dict[tuple[str, str], type[ConfigBase]] = {}
"""Every config class by (module name, qualname), for rebuilding params files."""


def main_module_name() -> str:
    """The name `__main__` stands for: `pkg.mod` under `-m`, else the script's file stem."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)
    file = getattr(main, "__file__", None)
    return Path(file).stem if file else "__main__"


def module_name(cls: type) -> str:
    """A class's module, with `__main__` replaced so identities do not depend on how a
    script was started."""
    module: str = cls.__module__
    return main_module_name() if module == "__main__" else module


class _FieldPlan(typing.NamedTuple):
    name: str
    kind: FieldKind
    coerce: Coercer
    default: Any
    errpath: str


class Plan:
    """What construction and identity need to know of a class, computed once."""

    __slots__ = ("checks", "constants", "identity", "pathgens", "type_name")

    def __init__(self, cls: type[ConfigBase]) -> None:
        self.type_name = cls.__legato_type_name__
        opts = cls.__legato_field_options__
        checks: list[_FieldPlan] = []
        identity: list[tuple[str, bool, Any, bytes | WorkdirDefault | None, str]] = []
        self.pathgens: dict[str, pathgenerator] = {}
        self.constants: dict[str, Any] = {}
        for info in msgspec.structs.fields(cls):
            tp = info.type
            kind = FieldKind.PARAM
            if typing.get_origin(tp) is typing.Annotated:
                for meta in typing.get_args(tp)[1:]:
                    if isinstance(meta, FieldKind):
                        kind = meta
                    elif isinstance(meta, pathgenerator):
                        kind = FieldKind.PATH
                        self.pathgens[info.name] = meta
            errpath = f"{cls.__name__}.{info.name}"
            coerce = compile_coercer(tp, errpath)
            default = info.default
            has_factory = info.default_factory is not msgspec.NODEFAULT
            if default is not msgspec.NODEFAULT and kind is not FieldKind.PATH:
                default = coerce(default, errpath)
            if kind is FieldKind.CONSTANT:
                if default is msgspec.NODEFAULT:
                    raise ConfigError(f"{errpath}: a Constant needs a default value")
                self.constants[info.name] = default
            checks.append(_FieldPlan(info.name, kind, coerce, default, errpath))
            if kind in (FieldKind.PARAM, FieldKind.CONSTANT):
                always = kind is FieldKind.CONSTANT or has_factory or not opts.get(info.name, True)
                if always or default is msgspec.NODEFAULT:
                    identity.append((info.name, always, _NO_FAST, None, errpath))
                else:
                    identity.append(
                        (info.name, False, fast_default(default), encode_default(default), errpath)
                    )
        identity.sort(key=lambda item: item[0])
        self.checks = tuple(checks)
        self.identity = tuple(identity)


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
    return any(isinstance(m, pathgenerator) for m in typing.get_args(ann)[1:])


if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**kwargs: Any) -> Any:
        return lambda cls: cls


@dataclass_transform(
    frozen_default=True, kw_only_default=True, field_specifiers=(msgspec.field, field)
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
        options: dict[str, bool] = {}
        for base in bases:
            options.update(getattr(base, "__legato_field_options__", {}))
        for key, value in list(ns.items()):
            if isinstance(value, _FieldSpec):
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
        ns["__legato_plan__"] = None
        kwargs.setdefault("kw_only", True)
        cls = super().__new__(mcls, clsname, bases, ns, **kwargs)
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"{clsname}: name= takes a non-empty string")
        type_name = name or f"{module_name(cls)}.{cls.__qualname__}"
        cls.__legato_type_name__ = type_name  # type: ignore[attr-defined]
        registry[(module_name(cls), cls.__qualname__)] = cls  # type: ignore[assignment]
        return cls


class ConfigBase(msgspec.Struct, metaclass=ConfigMeta, frozen=True, dict=True, kw_only=True):
    """Shared base of `Config` and `Task`; not for direct use."""

    __legato_type_name__: ClassVar[str]
    __legato_plan__: ClassVar[Plan | None]
    __legato_field_options__: ClassVar[dict[str, bool]]

    @classmethod
    def _legato_compile(cls) -> Plan:
        plan = Plan(cls)
        cls.__legato_plan__ = plan
        return plan

    def __post_init__(self) -> None:
        plan = type(self).__legato_plan__ or type(self)._legato_compile()
        tags: dict[str, Any] | None = None
        for name, kind, coerce, default, errpath in plan.checks:
            value = original = getattr(self, name)
            if type(value) is Tagged:
                value = value.value
            if kind is FieldKind.PATH:
                if value is not None:
                    raise ConfigError(
                        f"{errpath} is a path generator: legato sets it at submission"
                    )
                continue
            new = coerce(value, errpath)
            if kind is FieldKind.CONSTANT and not (type(new) is type(default) and new == default):
                raise ConfigError(f"{errpath} is a Constant ({default!r}) and cannot be set")
            if new is not original:
                force_setattr(self, name, new)
                if original is not value:
                    if tags is None:
                        tags = {}
                    tags[name] = new
        if tags is not None:
            self.__dict__["__legato_tags__"] = tags

    @property
    def __identifier__(self) -> str:
        """The 64-hex-digit SHA-256 of the identity; computed once."""
        return identifier_digest(self).hex()

    @property
    def __tags__(self) -> dict[str, Any]:
        """Tags of this configuration, its nested configurations and its dependencies."""
        from ._graph import collect_tags

        return collect_tags(self)

    def __hash__(self) -> int:
        return hash(identifier_digest(self))


class Config(ConfigBase):
    """A typed configuration: subclass it and declare `Param`, `Meta`, `Constant` fields."""
