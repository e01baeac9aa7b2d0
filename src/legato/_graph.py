"""Walking configuration values: the tasks a configuration depends on, and its tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ._config import ConfigBase
from ._frozen import FrozenDict, FrozenList, FrozenSet

__all__ = ["collect_tags", "dependencies", "postorder"]


_SEQUENCES = (list, tuple, set, frozenset, FrozenList, FrozenSet)


def _children(value: Any) -> Any:
    t = type(value)
    if t in _SEQUENCES:
        return value
    if t is dict or t is FrozenDict:
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

    def stop(value: ConfigBase) -> bool:
        producer = _producer(value)
        if producer is not None:
            found.setdefault(id(producer), producer)
        return producer is not None

    for name in config.__struct_fields__:
        postorder(getattr(config, name), skip=stop)
    return list(found.values())


def postorder(root: Any, skip: Callable[[ConfigBase], bool] = lambda _: False) -> list[ConfigBase]:
    """The configurations reachable from `root` (through fields, containers and the tasks
    whose outputs they are), each once, every one after those it holds.

    On an explicit stack: a chain of a thousand tasks is as deep, and the call stack is
    not. A configuration for which `skip` is true is left out with all it holds.
    """
    order: list[ConfigBase] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        value, expanded = stack.pop()
        if expanded:
            order.append(value)
            continue
        if isinstance(value, ConfigBase):
            if id(value) in seen or skip(value):
                continue
            seen.add(id(value))
            stack.append((value, True))
            children: list[Any] = []
            producer = value.__dict__.get("__legato_producer__")
            if producer is not None:
                children.append(producer)
            children.extend(getattr(value, name) for name in value.__struct_fields__)
        else:
            children = list(_children(value))
        stack.extend((child, False) for child in reversed(children))
    return order


def collect_tags(config: ConfigBase) -> dict[str, Any]:
    """Own tags, those of nested configurations, and those of dependencies (inherited).

    Nearer tags win: a configuration's own tag overrides one of the same name it inherits.
    """
    tags: dict[str, Any] = {}
    for value in postorder(config):
        tags.update(value.__dict__.get("__legato_tags__", {}))
    return tags


def to_builtins(value: Any) -> Any:
    """A JSON-friendly view of a tag value."""
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)
