"""What the dashboard answers from its index: pages of the jobs table, the experiments, the
dependency graph. Nothing here reads the disk: `legato._web._index` does.

A page asks again at each change, and a script may ask often, so a scope's jobs, sorted,
are kept (in `Index.views`) until the index changes: a request then costs a filter and a
slice of cached rows, and the JSON of each row is encoded once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .._inspect._query import tag_text
from .._inspect._scan import number
from ._index import STATES, Index, Row

__all__ = ["JobQuery", "SORTS", "experiment_list", "graph", "query", "scope", "tag_matcher"]

_encode = msgspec.json.Encoder(enc_hook=str).encode

SORTS = ("state", "type", "id", "started", "ended", "duration", "submitted", "progress")
"""The columns a table sorts by, besides tags ("tag:<name>")."""


@dataclass
class JobQuery:
    """What `/api/jobs` was asked for."""

    experiment: str | None = None
    orphans: bool = False
    states: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    tags: list[tuple[str, str | None]] = field(default_factory=list)
    search: str = ""
    sort: str = "started"
    descending: bool = False
    offset: int = 0
    limit: int = 100
    """0: every job."""


def scope(index: Index, experiment: str | None, orphans: bool) -> list[Row]:
    """The jobs of one experiment (in submission order), the orphans, or every job."""
    rows = index.rows
    if experiment is not None:
        xp = index.experiments.get(experiment)
        if xp is None:
            return []
        return [r for t, i in xp.jobs if (r := rows.get(f"{t}/{i}")) is not None]
    if orphans:
        referenced = {f"{t}/{i}" for xp in index.experiments.values() for t, i in xp.jobs}
        return [r for n, r in rows.items() if n not in referenced]
    return list(rows.values())


_View = tuple[list[Row], dict[str, int], list[str], list[str]]


def _view(index: Index, q: JobQuery) -> _View:
    """The scope's jobs sorted, its counts by state, types and tag names: kept until the
    next change, since a page asks again at each change and a script may ask often."""
    key = (index.version, q.experiment, q.orphans, q.sort, q.descending)
    found: _View | None = index.views.get(key)
    if found is not None:
        return found
    scoped = scope(index, q.experiment, q.orphans)
    counts = dict.fromkeys(STATES, 0)
    types: dict[str, None] = {}
    tag_keys: dict[str, None] = {}
    for row in scoped:
        counts[row.state] = counts.get(row.state, 0) + 1
        types[row.type] = None
        for name in row.tags:
            tag_keys[name] = None
    view = (_sorted(scoped, q.sort, q.descending), counts, sorted(types), list(tag_keys))
    if len(index.views) >= 32 or any(k[0] != index.version for k in index.views):
        index.views = {}
    index.views[key] = view
    return view


def query(index: Index, q: JobQuery) -> bytes:
    """One page of the table as JSON: the matching jobs, sorted, with what the filters
    offer. Built from each row's JSON, kept from one request to the next."""
    rows, counts, types, tag_keys = _view(index, q)
    if q.states:
        rows = [r for r in rows if r.state in q.states]
    if q.types:
        rows = [r for r in rows if r.type in q.types or r.type.rsplit(".", 1)[-1] in q.types]
    for key, wanted in q.tags:
        matches = tag_matcher(key, wanted)
        rows = [r for r in rows if matches(r.tags)]
    if q.search:
        needle = q.search.lower()
        rows = [r for r in rows if needle in r.id or needle in r.type.lower()]
    total = len(rows)
    page = rows[q.offset : q.offset + q.limit] if q.limit else rows[q.offset :]
    head = _encode(
        {
            "total": total,
            "offset": q.offset,
            "counts": counts,
            "types": types,
            "tag_keys": tag_keys,
            "version": index.version,
        }
    )
    return b"".join([head[:-1], b',"jobs":[', b",".join([r.to_bytes() for r in page]), b"]}"])


def experiment_list(index: Index) -> list[dict[str, Any]]:
    rows = index.rows
    out = []
    for name, xp in sorted(index.experiments.items()):
        info = xp.entry.info or {}
        counts = dict.fromkeys(STATES, 0)
        for t, i in xp.jobs:
            row = rows.get(f"{t}/{i}")
            state = row.state if row is not None else "missing"
            counts[state] = counts.get(state, 0) + 1
        out.append(
            {
                "name": name,
                "status": xp.entry.status,
                "live": xp.entry.status == "running",
                "jobs": len(xp.jobs),
                "counts": counts,
                "host": info.get("host"),
                "pid": info.get("pid"),
                "started": number(info.get("started")),
                "updated": number(info.get("updated")),
            }
        )
    return out


def graph(index: Index, experiment: str) -> dict[str, Any] | None:
    """The experiment's jobs as nodes in columns (a job right of what it depends on)
    and its dependencies as edges; None if there is no such experiment."""
    xp = index.experiments.get(experiment)
    if xp is None:
        return None
    rows = index.rows
    names = [f"{t}/{i}" for t, i in xp.jobs]
    members = set(names)
    parents: dict[str, list[str]] = {}
    for name in names:
        row = rows.get(name)
        deps = row.deps if row is not None else ()
        parents[name] = [d for t, i in deps if (d := f"{t}/{i}") in members and d != name]
    layer: dict[str, int] = {}
    for name in names:  # submission order: a job is submitted after what it depends on
        stack = [name]
        while stack:
            top = stack[-1]
            if top in layer:
                stack.pop()
                continue
            pending = [p for p in parents[top] if p not in layer and p not in stack]
            if pending:
                stack.extend(pending)
                continue
            layer[top] = 1 + max((layer[p] for p in parents[top] if p in layer), default=-1)
            stack.pop()
    nodes = []
    for name in names:
        row = rows.get(name)
        type_name, _, ident = name.rpartition("/")
        nodes.append(
            {
                "type": type_name,
                "id": ident,
                "state": row.state if row is not None else "missing",
                "tags": row.tags if row is not None else {},
                "layer": layer[name],
            }
        )
    edges = [[p, n] for n in names for p in parents[n]]
    return {"experiment": experiment, "nodes": nodes, "edges": edges, "version": index.version}


def tag_matcher(key: str, wanted: str | None) -> Callable[[dict[str, Any]], bool]:
    """`legato jobs ls --tag KEY[=VALUE]` as a test of a job's tags, with VALUE parsed once
    rather than once a job (the CLI's `_tag_matches`, for tables of 10,000 rows)."""
    if wanted is None:
        return lambda tags: key in tags
    lowered = wanted.lower()
    try:
        number: float | None = float(wanted)
    except ValueError:
        number = None
    nan = number is not None and math.isnan(number)

    def matches(tags: dict[str, Any]) -> bool:
        if key not in tags:
            return False
        value = tags[key]
        if isinstance(value, bool):
            return lowered == str(value).lower()
        if isinstance(value, (int, float)):
            if number is None:
                return False
            return number == value or (nan and math.isnan(value))
        return tag_text(value) == wanted

    return matches


_STATE_ORDER = {s: i for i, s in enumerate(STATES)}


def _value_key(value: Any) -> tuple[int, Any]:
    """Numbers before strings before anything else, so mixed tags still sort."""
    if isinstance(value, bool):
        return (1, str(value))
    if isinstance(value, (int, float)):
        return (0, value if not math.isnan(value) else math.inf)
    if isinstance(value, str):
        return (1, value)
    return (2, repr(value))


def _sorted(rows: list[Row], column: str, descending: bool) -> list[Row]:
    """Sorted by `column` (a field, or "tag:<key>"); jobs without a value come last."""
    if column.startswith("tag:"):
        key = column[4:]
        present = [r for r in rows if key in r.tags]
        missing = [r for r in rows if key not in r.tags]
        present.sort(key=lambda r: _value_key(r.tags[key]), reverse=descending)
        return present + missing
    if column == "state":
        return sorted(rows, key=lambda r: _STATE_ORDER.get(r.state, 99), reverse=descending)
    if column in ("type", "id"):
        return sorted(rows, key=lambda r: (r.type, r.id) if column == "type" else r.id,
                      reverse=descending)  # fmt: skip
    getter: Any
    if column == "progress":
        getter = lambda r: r.progress[0] if r.progress else (1.0 if r.state == "done" else None)  # noqa: E731
    elif column in ("started", "ended", "duration", "submitted"):
        getter = lambda r: getattr(r, column)  # noqa: E731
    else:
        return rows
    present = [r for r in rows if getter(r) is not None]
    missing = [r for r in rows if getter(r) is None]
    present.sort(key=getter, reverse=descending)
    return present + missing
