"""What the dashboard knows of a workdir: every job and experiment, kept up to date cheaply.

The command line reads a workdir once and exits; the dashboard reads it again and again while
sweeps run, so it keeps the jobs it read (`Row`) and, at each refresh, re-reads only what
changed. It reads through the command line's scan layer (`legato._inspect._scan`), so what the
CLI says of a job is what the page shows. What a refresh costs, for 10,000 jobs:

- a job that is done, failed or cancelled is re-read when its directory's mtime moved (every
  state file is renamed into place, which moves it), but only a slice of them is stat'ed at
  each refresh: a finished job changes again only when an experiment runs it anew, which
  appends to that experiment's `jobs.txt`, and then its jobs are re-read at once;
- a waiting or running job is stat'ed at each refresh, and its liveness (process alive, lock
  held) asked again, since a process can end without touching its directory;
- params (tags, dependencies) are decoded again only when the params file changed.

A directory whose mtime is less than a second old is re-read at the next refresh too: file
timestamps are coarse, and a file renamed in during the same tick would not move it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec

from .._inspect._params import ParamsError
from .._inspect._procs import Locks, job_process
from .._inspect._scan import (
    ExperimentEntry,
    experiment_jobs,
    list_experiments,
    progress,
    read_job,
)
from .._jobdir._layout import JOBS_LIST, LOCK, PARAMS, jobs_root

__all__ = ["STATES", "Index", "Row"]

_encode = msgspec.json.Encoder(enc_hook=str).encode

STATES = ("running", "incomplete", "failed", "cancelled", "done")
_FINAL = frozenset(("done", "failed", "cancelled"))
_SLICE = 1000
"""Finished jobs stat'ed at each refresh (all of them every few refreshes)."""
_FRESH = 1.0
"""A directory changed less than this many seconds ago is read again at the next refresh."""


@dataclass(slots=True)
class Row:
    """One job as the dashboard lists it. Never changed in place (a refresh replaces it)
    but for `encoded`, its JSON once asked for."""

    type: str
    id: str
    dir: str
    state: str
    started: float | None
    ended: float | None
    reason: str | None
    submitted: float | None
    info: dict[str, Any]
    tags: dict[str, Any]
    deps: tuple[tuple[str, str], ...]
    params_error: str | None
    progress: tuple[float, str | None] | None
    sig: tuple[int, int] | None
    """The directory's (mtime, ctime) when read; None to read it again next time."""
    params_sig: int | None
    encoded: bytes | None = None

    @property
    def name(self) -> str:
        return f"{self.type}/{self.id}"

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended
        if end is None and self.state == "running":
            end = time.time()
        return None if end is None else max(0.0, end - self.started)

    def to_bytes(self) -> bytes:
        """The row as JSON; kept, unless the job runs (its duration grows)."""
        if self.encoded is not None:
            return self.encoded
        encoded = _encode(self.to_json())
        if self.state != "running":
            self.encoded = encoded
        return encoded

    def to_json(self) -> dict[str, Any]:
        report = self.progress
        return {
            "type": self.type,
            "id": self.id,
            "state": self.state,
            "tags": self.tags,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "submitted": self.submitted,
            "reason": self.reason,
            "progress": None if report is None else {"fraction": report[0], "desc": report[1]},
        }


def _sig(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if time.time() - st.st_mtime < _FRESH:
        return (-1, -1)  # read now, and again next time
    return (st.st_mtime_ns, st.st_ctime_ns)


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _read_row(type_name: str, ident: str, path: str, locks: Locks, old: Row | None) -> Row | None:
    sig = _sig(path)
    entry = read_job(type_name, ident, path, locks)
    if entry is None:
        return None
    params_sig = _mtime(f"{path}/{PARAMS}")
    if old is not None and old.params_sig == params_sig and params_sig is not None:
        tags, deps, params_error = old.tags, old.deps, old.params_error
    else:
        tags = entry.tags()
        params_error = entry.params_error
        try:
            deps = tuple(entry.params().dependencies())
        except ParamsError:
            deps = ()
    submitted = entry.info.get("submitted")
    return Row(
        type=type_name,
        id=ident,
        dir=path,
        state=entry.state,
        started=entry.started,
        ended=entry.ended,
        reason=entry.reason,
        submitted=float(submitted) if isinstance(submitted, (int, float)) else None,
        info=entry.info,
        tags=tags,
        deps=deps,
        params_error=params_error,
        progress=progress(entry) if entry.state == "running" else None,
        sig=None if sig == (-1, -1) else sig,
        params_sig=params_sig,
    )


def _alive(row: Row, locks: Locks) -> str:
    """A waiting or running job's state now, its directory unchanged: the last step of
    `read_job` (a live process of its own, or its lock held), without reading its files."""
    pid = job_process(row.info, row.id) if row.info else None
    if pid is not None or locks.held(f"{row.dir}/{LOCK}"):
        return "running"
    return "incomplete"


@dataclass
class _Experiment:
    entry: ExperimentEntry
    jobs: tuple[tuple[str, str], ...]
    list_sig: tuple[int, int] | None


class Index:
    """The jobs and experiments of one workdir, refreshed by `refresh()`.

    `refresh()` runs in a worker thread, one at a time, and swaps in new dictionaries when
    it is done: readers (in the event loop or other threads) take `self.rows` once and see
    a consistent set."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.rows: dict[str, Row] = {}
        self.experiments: dict[str, _Experiment] = {}
        self.version = 0
        self.refreshed = 0.0
        """time.monotonic() of the last refresh (0: never)."""
        self._types: dict[str, tuple[int | None, list[str]]] = {}
        self._cursor = 0
        self._finished: list[str] | None = None
        self._unfinished: list[tuple[str, str]] | None = None
        self._paths: dict[tuple[str, str], str] | None = None
        self.views: dict[tuple[Any, ...], Any] = {}
        """What `legato._web._views` computed from the rows, kept until the next change."""
        self._lock = threading.Lock()

    # -- reading the disk --------------------------------------------------------------

    def refresh(self, full: bool = False) -> set[str]:
        """Read what changed since the last refresh; the names of the jobs that changed
        ("" stands for the experiments). `full` stats every job."""
        with self._lock:
            changed = self._refresh(full or not self.refreshed)
            self.refreshed = time.monotonic()
            if changed:
                self.version += 1
            return changed

    def refresh_jobs(self, names: Iterable[tuple[str, str]]) -> set[str]:
        """Read these jobs again now (after acting on them)."""
        with self._lock:
            rows = dict(self.rows)
            changed = self._reread(rows, names, Locks())
            if changed:
                self.rows = rows
                self._split(rows)
                self.version += 1
            return changed

    def _listing(self) -> tuple[dict[tuple[str, str], str], bool]:
        """(type, identifier) -> directory of every job, and whether it changed since the
        last refresh; lists only the type directories whose mtime moved."""
        root = str(jobs_root(self.workdir))
        try:
            types = [e for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir()]
        except OSError:
            types = []
        listed: dict[str, tuple[int | None, list[str]]] = {}
        changed = len(types) != len(self._types)
        for entry in types:
            mtime = _mtime(entry.path)
            cached = self._types.get(entry.name)
            if cached is not None and cached[0] == mtime and mtime is not None:
                listed[entry.name] = cached
                continue
            try:
                idents = [i for i in os.listdir(entry.path) if _is_identifier(i)]
            except OSError:
                idents = []
            fresh = mtime is not None and time.time_ns() - mtime > _FRESH * 1e9
            listed[entry.name] = (mtime if fresh else None, idents)
            if cached is None or cached[1] != idents:
                changed = True
        self._types = listed
        if changed or self._paths is None:
            self._paths = {
                (t, i): f"{root}/{t}/{i}" for t, (_, idents) in listed.items() for i in idents
            }
            changed = True
        return self._paths, changed

    def _refresh(self, full: bool) -> set[str]:
        locks = Locks()
        changed: set[str] = set()
        # Experiments first: an experiment that appended jobs may be re-running finished ones.
        experiments: dict[str, _Experiment] = {}
        recheck: set[tuple[str, str]] = set()
        for xp in list_experiments(self.workdir):
            old = self.experiments.get(xp.name)
            list_sig = _sig(str(xp.path / JOBS_LIST))
            if old is not None and old.list_sig == list_sig and list_sig is not None:
                jobs = old.jobs
            else:
                try:
                    jobs = tuple(experiment_jobs(self.workdir, xp.name))
                except Exception:  # removed while read
                    jobs = ()
                recheck.update(jobs)
                list_sig = None if list_sig == (-1, -1) else list_sig
            if old is None or old.entry.info != xp.info or old.jobs != jobs:
                changed.add("")
            experiments[xp.name] = _Experiment(xp, jobs, list_sig)
        if set(experiments) != set(self.experiments):
            changed.add("")

        listing, moved = self._listing()
        old_rows = self.rows
        if self._finished is None or moved or full:
            self._split(old_rows)
        finished, unfinished = self._finished or [], self._unfinished or []
        if full or len(finished) <= _SLICE:
            swept = set(finished)
        else:
            start = self._cursor % len(finished)
            swept = set(finished[start : start + _SLICE])
            self._cursor = start + _SLICE
        if moved or full:
            rows: dict[str, Row] = {}
            todo: Iterable[tuple[tuple[str, str], str]] = listing.items()
        else:  # the same jobs: look only at the unfinished, a slice and those re-submitted
            rows = dict(old_rows)
            keys = {tuple(n.split("/", 1)) for n in swept}
            keys.update(unfinished)
            keys.update(k for k in recheck if k in listing)
            todo = [(k, listing[k]) for k in keys if k in listing]
        for (type_name, ident), path in todo:
            name = f"{type_name}/{ident}"
            prev = old_rows.get(name)
            if prev is not None and prev.state in _FINAL:
                if (type_name, ident) not in recheck and (
                    name not in swept or (prev.sig is not None and _sig(path) == prev.sig)
                ):
                    rows[name] = prev
                    continue
            elif prev is not None and prev.sig is not None and _sig(path) == prev.sig:
                state = _alive(prev, locks)
                if state == prev.state:
                    rows[name] = prev
                else:
                    rows[name] = replace(prev, state=state, sig=None, progress=None, encoded=None)
                    changed.add(name)
                continue
            row = _read_row(type_name, ident, path, locks, prev)
            if row is None:
                rows.pop(name, None)
                if prev is not None:
                    changed.add(name)
                continue
            rows[name] = row
            if prev is None or _differs(prev, row):
                changed.add(name)
        if moved:
            changed.update(n for n in old_rows if n not in rows)
        self.rows = rows
        self.experiments = experiments
        if changed or moved:
            self._split(rows)
        return changed

    def _split(self, rows: dict[str, Row]) -> None:
        """Note which jobs are finished (stat'ed a slice at a time) and which are not (looked
        at each time): done again only when something changed, not at every refresh."""
        self._finished = [n for n, r in rows.items() if r.state in _FINAL]
        self._unfinished = [(r.type, r.id) for r in rows.values() if r.state not in _FINAL]

    def _reread(
        self, rows: dict[str, Row], names: Iterable[tuple[str, str]], locks: Locks
    ) -> set[str]:
        changed = set()
        for type_name, ident in names:
            name = f"{type_name}/{ident}"
            path = f"{jobs_root(self.workdir)}/{type_name}/{ident}"
            row = _read_row(type_name, ident, path, locks, rows.get(name))
            if row is None:
                if rows.pop(name, None) is not None:
                    changed.add(name)
            else:
                if name not in rows or _differs(rows[name], row):
                    changed.add(name)
                rows[name] = replace(row, sig=None)
        return changed


def _is_identifier(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _differs(old: Row, new: Row) -> bool:
    return (
        old.state != new.state
        or old.progress != new.progress
        or old.started != new.started
        or old.ended != new.ended
        or old.reason != new.reason
        or old.tags != new.tags
    )
