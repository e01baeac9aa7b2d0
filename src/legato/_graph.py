"""Walking configuration values: the tasks a configuration depends on, and its tags."""

from __future__ import annotations

from typing import Any

import msgspec

from ._config import ConfigBase

__all__ = ["collect_tags", "dependencies"]


def _children(value: Any) -> Any:
    t = type(value)
    if t is list or t is tuple or t is set or t is frozenset:
        return value
    if t is dict:
        return value.values()
    return ()


def _producer(config: ConfigBase) -> ConfigBase | None:
    """The submitted task a value stands for, if any."""
    d = config.__dict__
    producer: ConfigBase | None = d.get("__legato_producer__")
    if producer is not None:
        return producer
    if "__legato_job__" in d:
        return config
    return None


def dependencies(config: ConfigBase) -> list[ConfigBase]:
    """The submitted tasks whose outputs `config`'s fields hold, at any depth."""
    found: dict[int, ConfigBase] = {}
    seen: set[int] = set()

    def visit(value: Any) -> None:
        if isinstance(value, ConfigBase):
            if id(value) in seen:
                return
            seen.add(id(value))
            producer = _producer(value)
            if producer is not None:
                found.setdefault(id(producer), producer)
                return
            for name in value.__struct_fields__:
                visit(getattr(value, name))
            return
        for child in _children(value):
            visit(child)

    for name in config.__struct_fields__:
        visit(getattr(config, name))
    return list(found.values())


def collect_tags(config: ConfigBase) -> dict[str, Any]:
    """Own tags, those of nested configurations, and those of dependencies (inherited).

    Nearer tags win: a configuration's own tag overrides one of the same name it inherits.
    """
    tags: dict[str, Any] = {}
    seen: set[int] = set()

    def visit(value: Any) -> None:
        if isinstance(value, ConfigBase):
            if id(value) in seen:
                return
            seen.add(id(value))
            producer = value.__dict__.get("__legato_producer__")
            if producer is not None:
                visit(producer)
            for name in value.__struct_fields__:
                visit(getattr(value, name))
            tags.update(value.__dict__.get("__legato_tags__", {}))
            return
        for child in _children(value):
            visit(child)

    visit(config)
    return tags


def to_builtins(value: Any) -> Any:
    """A JSON-friendly view of a tag value."""
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)
