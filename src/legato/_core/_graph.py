"""Walking configuration values: the tasks a configuration depends on, and its tags."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import msgspec

from .._jobdir._names import JOB_KEY, PRODUCER_KEY, TAGS_KEY
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
    producer: ConfigBase | None = d.get(PRODUCER_KEY)
    if producer is not None:
        return producer
    if JOB_KEY in d:
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
            producer = value.__dict__.get(PRODUCER_KEY)
            if producer is not None:
                children.append(producer)
            children.extend(getattr(value, name) for name in value.__struct_fields__)
        else:
            children = list(_children(value))
            if children:  # a container: once, as a configuration is (it may hold itself)
                if id(value) in seen:
                    continue
                seen.add(id(value))
        stack.extend((child, False) for child in reversed(children))
    return order


class _Conflict:
    """A tag name that configurations held below brought with different values."""

    __slots__ = ("values",)

    def __init__(self, values: list[Any]) -> None:
        self.values = values


def _agree(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and a == b)


def _held(config: ConfigBase) -> list[ConfigBase]:
    """The configurations `config` holds directly: in its fields (through containers,
    not through other configurations) and the task it is the output of."""
    found: list[ConfigBase] = []
    producer = config.__dict__.get(PRODUCER_KEY)
    if producer is not None:
        found.append(producer)
    stack = [getattr(config, name) for name in reversed(config.__struct_fields__)]
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if isinstance(value, ConfigBase):
            found.append(value)
            continue
        children = list(_children(value))
        if children and id(value) not in seen:
            seen.add(id(value))
            stack.extend(reversed(children))
    return found


def collect_tags(config: ConfigBase) -> dict[str, Any]:
    """Own tags, those of nested configurations, and those of dependencies (inherited).

    A configuration's own tag wins over one of the same name it inherits. When what it
    holds brings different values for one name (an aggregate over runs tagged lr=0.1 and
    lr=0.01), no value is right: the tag is dropped, with a warning naming it, and stays
    dropped further up unless a configuration there sets it itself.
    """
    tags_of: dict[int, dict[str, Any]] = {}
    for value in postorder(config):
        tags: dict[str, Any] = {}
        for held in _held(value):
            for name, tag_value in tags_of.get(id(held), {}).items():
                if name not in tags:
                    tags[name] = tag_value
                    continue
                mine = tags[name]
                if mine is tag_value:
                    continue
                if type(tag_value) is _Conflict or type(mine) is _Conflict:
                    values = mine.values if type(mine) is _Conflict else [mine]
                    more = tag_value.values if type(tag_value) is _Conflict else [tag_value]
                elif _agree(mine, tag_value):
                    continue
                else:
                    values, more = [mine], [tag_value]
                merged = list(values)
                merged += [v for v in more if not any(_agree(v, w) for w in merged)]
                tags[name] = _Conflict(merged)
        tags.update(value.__dict__.get(TAGS_KEY, {}))
        tags_of[id(value)] = tags
    result = tags_of.get(id(config), {})
    conflicts = [name for name, v in result.items() if type(v) is _Conflict]
    for name in conflicts:
        shown = ", ".join(repr(v) for v in result.pop(name).values[:5])
        warnings.warn(
            f"{type(config).__qualname__}: tag {name!r} dropped: the configurations it holds "
            f"bring different values ({shown}); tag it on {type(config).__qualname__} itself "
            "to keep one",
            UserWarning,
            stacklevel=3,
        )
    return result


def to_builtins(value: Any) -> Any:
    """A JSON-friendly view of a tag value."""
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)
