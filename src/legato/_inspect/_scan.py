"""Reading a workdir that experiments may be writing at this very moment.

A job's state comes from its directory (see `legato._jobdir._layout`): DONE iff `done` exists;
FAILED, CANCELLED or DEPENDENCY_FAILED iff `failed.json` says so; otherwise RUNNING if
an experiment holds the job's lock or the job's own process is alive, else INCOMPLETE
(waiting, or interrupted). A file missing or half-written means "not there yet", never an error: a
directory may have been created a moment ago, or be removed while we look.

Hot path: `jobs ls` reads thousands of directories, so this module works on strings rather
than `JobDir` objects (a `Path` a job would cost more than reading its records), with the
readers of `legato._jobdir._files` (`read_bytes`, `read_json`: raw file descriptors,
msgspec's JSON) that `JobDir` uses too; it writes nothing.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from .._jobdir._experimentdir import runs_of
from .._jobdir._files import bound_text, read_bytes, read_json
from .._jobdir._layout import (
    DONE,
    FAILED,
    JOBS_LIST,
    LOCK,
    PARAMS,
    PROGRESS,
    REASON_MAX,
    STATE,
    experiment_dir,
    experiments_root,
    job_dir,
    jobs_root,
)
from .._jobdir._names import WORKDIR_ENV
from ._errors import EXIT_USAGE, InspectError
from ._params import Params, ParamsError, ParamsMissing
from ._procs import HOST, Locks, job_process, process_alive

__all__ = [
    "open_workdir",
    "ExperimentEntry",
    "JobEntry",
    "experiment_jobs",
    "list_experiments",
    "progress",
    "read_job",
    "number",
    "referenced_jobs",
    "resolve",
    "scan_jobs",
    "type_matcher",
]

_IDENTIFIER = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")
UNRUN_STATES = ("failed", "cancelled", "dependency_failed")
"""The states a failed.json may give (a verdict that is not DONE)."""
FINAL_STATES = ("done", *UNRUN_STATES)


def number(value: Any) -> float | None:
    """A number of a JSON record as a float; None for anything else, booleans included."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


# -- jobs -----------------------------------------------------------------------------


@dataclass
class JobEntry:
    """One job directory as found on disk."""

    type_name: str
    identifier: str
    dir: str
    state: str
    started: float | None = None
    """When the run started; for a DONE job, `ended - duration` of its done marker."""
    ended: float | None = None
    reason: str | None = None
    pid: int | None = None
    """The live local process, for RUNNING jobs whose process this machine can see."""
    record: dict[str, Any] | None = field(default=None, repr=False)
    """failed.json, for a job that ended without DONE."""
    result_file: str | None = None
    """The result file a DONE job's marker names (see `legato._core._result`), if any."""
    _info: dict[str, Any] | None = field(default=None, repr=False)
    _params: Params | None = field(default=None, repr=False)
    _params_error: ParamsError | None = field(default=None, repr=False)
    _tags: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def info(self) -> dict[str, Any]:
        """state.json: who runs or ran the job (empty when missing or unreadable)."""
        if self._info is None:
            self._info = read_json(f"{self.dir}/{STATE}") or {}
        return self._info

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def name(self) -> str:
        return f"{self.type_name}/{self.identifier}"

    @property
    def short(self) -> str:
        return f"{self.type_name}/{self.identifier[:12]}"

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else None
        if end is None and self.state == "running":
            end = time.time()
        return None if end is None else max(0.0, end - self.started)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def params(self) -> Params:
        """The decoded params file; `ParamsMissing` or `ParamsError` when there is none."""
        if self._params is None:
            if self._params_error is not None:
                raise self._params_error
            data = read_bytes(f"{self.dir}/{PARAMS}")
            try:
                if isinstance(data, FileNotFoundError):
                    raise ParamsMissing("no params file yet (the job has not started)")
                if isinstance(data, OSError):
                    raise ParamsError(f"cannot read {PARAMS}: {data.strerror}")
                workdir = os.path.dirname(os.path.dirname(os.path.dirname(self.dir)))
                self._params = Params(data, workdir)
            except ParamsError as exc:
                self._params_error = exc
                raise
        return self._params

    def tags(self) -> dict[str, Any]:
        """The job's tags; empty when its params are missing or unreadable."""
        if self._tags is None:
            try:
                self._tags = self.params().tags()
            except ParamsError:
                self._tags = {}
        return self._tags

    @property
    def params_error(self) -> str | None:
        """Why the params (present) cannot be read, once `params()` or `tags()` tried."""
        error = self._params_error
        return None if error is None or isinstance(error, ParamsMissing) else str(error)


def read_job(type_name: str, identifier: str, path: str, locks: Locks) -> JobEntry | None:
    """The job in `path`, or None if there is no such directory (any more).

    A DONE job costs one file read (its marker), so listing a finished sweep is fast.
    """
    entry = JobEntry(type_name, identifier, path, "incomplete")
    done = read_bytes(f"{path}/{DONE}")
    if not isinstance(done, OSError):
        entry.state = "done"
        try:
            record = msgspec.json.decode(done)
        except msgspec.DecodeError:
            record = None  # the marker counts by its existence alone
        if isinstance(record, dict):
            entry.ended = number(record.get("ended"))
            result = record.get("result")
            entry.result_file = result if isinstance(result, str) else None
            duration = number(record.get("duration"))
            if entry.ended is not None and duration is not None:
                entry.started = entry.ended - duration
        if entry.started is None:
            entry.started = number(entry.info.get("started"))
        return entry
    info = entry.info
    entry.started = number(info.get("started"))
    record = read_json(f"{path}/{FAILED}")
    if record is not None and record.get("state") in UNRUN_STATES:
        entry.state = str(record["state"])
        entry.ended = number(record.get("ended"))
        reason = record.get("reason")
        entry.reason = bound_text(str(reason), REASON_MAX) if reason else entry.state
        entry.record = record
        return entry
    if record is not None and record.get("state") == "interrupted":
        # An attempt ended; the next one runs, or the next run of the experiment starts it.
        entry.reason = f"attempt {info.get('attempt') or 1} interrupted: {record.get('reason')}"
    if not info and not os.path.isdir(path):
        return None
    entry.pid = job_process(info, identifier) if info else None
    if entry.pid is not None or locks.held(f"{path}/{LOCK}"):
        entry.state = "running"
    return entry


def _job_dirs(workdir: Path) -> Iterator[tuple[str, str, str]]:
    """(type name, identifier, path) of every job directory, in no particular order."""
    try:
        types = list(os.scandir(jobs_root(workdir)))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InspectError(f"cannot read {jobs_root(workdir)}: {exc.strerror}") from None
    for type_entry in types:
        if type_entry.name.startswith(".") or not type_entry.is_dir():
            continue
        try:
            idents = os.listdir(type_entry.path)
        except OSError:
            continue
        for ident in idents:
            if _IDENTIFIER.fullmatch(ident):
                yield type_entry.name, ident, os.path.join(type_entry.path, ident)


def scan_jobs(
    workdir: Path,
    *,
    type_filter: Callable[[str], bool] | None = None,
    only: Iterable[tuple[str, str]] | None = None,
    locks: Locks | None = None,
) -> list[JobEntry]:
    """Every job (or those in `only`, as (type, identifier)) whose type passes the filter."""
    locks = locks or Locks()
    entries = []
    if only is not None:
        dirs: Iterable[tuple[str, str, str]] = (
            (t, i, str(job_dir(workdir, t, i))) for t, i in dict.fromkeys(only)
        )
    else:
        dirs = _job_dirs(workdir)
    for type_name, ident, path in dirs:
        if type_filter is not None and not type_filter(type_name):
            continue
        entry = read_job(type_name, ident, path, locks)
        if entry is not None:
            entries.append(entry)
    return entries


def type_matcher(name: str) -> Callable[[str], bool]:
    """A type given on the command line: the full type name, or its class name."""
    return lambda type_name: type_name == name or type_name.rsplit(".", 1)[-1] == name


def resolve(workdir: Path, spec: str, locks: Locks | None = None) -> JobEntry:
    """The one job that `spec` names: an identifier prefix, optionally `Type/prefix`, or
    a type name (full or class name) that has a single job."""
    type_part, _, prefix = spec.rpartition("/")
    prefix = prefix.lower()
    if not prefix:
        raise InspectError(f"job ID {spec!r} is empty: give an identifier or a prefix", EXIT_USAGE)
    if not type_part and not _HEX.fullmatch(prefix):  # not an identifier: a type name?
        return _resolve_type(workdir, spec, locks)
    matches_type = type_matcher(type_part) if type_part else None
    found = [
        (t, i, p)
        for t, i, p in _job_dirs(workdir)
        if i.startswith(prefix) and (matches_type is None or matches_type(t))
    ]
    if not found:
        if not type_part:  # `Bad`, `Face`: type names that look like hex
            return _resolve_type(workdir, spec, locks)
        raise InspectError(f"no job matches {spec!r} in {workdir}", EXIT_USAGE)
    if len(found) > 1:
        raise InspectError(
            f"job ID {spec!r} is ambiguous: it matches {len(found)} jobs "
            f"({_some(sorted(found))}); give more characters",
            EXIT_USAGE,
        )
    return _read_found(found[0], locks)


def _some(found: list[tuple[str, str, str]]) -> str:
    """The first few of several matching jobs, to name in an error."""
    shown = ", ".join(f"{t}/{i[:12]}" for t, i, _ in found[:5])
    return shown + (f" and {len(found) - 5} more" if len(found) > 5 else "")


def _read_found(found: tuple[str, str, str], locks: Locks | None) -> JobEntry:
    type_name, ident, path = found
    entry = read_job(type_name, ident, path, locks or Locks())
    if entry is None:
        raise InspectError(f"job {type_name}/{ident[:12]} was removed while being read")
    return entry


def _resolve_type(workdir: Path, name: str, locks: Locks | None) -> JobEntry:
    matches = type_matcher(name)
    found = sorted((t, i, p) for t, i, p in _job_dirs(workdir) if matches(t))
    if not found:
        raise InspectError(
            f"no job matches {name!r} in {workdir}: give an identifier (or a prefix of one), "
            "TYPE/PREFIX, or the name of a type that has jobs",
            EXIT_USAGE,
        )
    if len(found) > 1:
        raise InspectError(
            f"{name!r} is a type with {len(found)} jobs ({_some(found)}); name one as "
            f"TYPE/PREFIX, or list them with `legato jobs ls --name {name}`",
            EXIT_USAGE,
        )
    return _read_found(found[0], locks)


def progress(entry: JobEntry) -> tuple[float, str | None] | None:
    record = read_json(os.path.join(entry.dir, PROGRESS))
    if record is None:
        return None
    fraction = number(record.get("fraction"))
    if fraction is None:
        return None
    desc = record.get("desc")
    return fraction, desc if isinstance(desc, str) else None


# -- experiments ----------------------------------------------------------------------


@dataclass
class ExperimentEntry:
    name: str
    path: Path
    info: dict[str, Any] | None
    """state.json, or None when missing or unreadable."""

    @property
    def status(self) -> str:
        """running, done, failed, cancelled; interrupted when its process died running."""
        if self.info is None:
            return "unknown"
        status = str(self.info.get("status", "unknown"))
        if status == "running":
            pid = self.info.get("pid")
            host = self.info.get("host")
            local = not isinstance(host, str) or host == HOST
            if isinstance(pid, int) and local and not process_alive(pid):
                return "interrupted"
        return status

    @property
    def counts(self) -> dict[str, int]:
        counts = (self.info or {}).get("counts")
        if not isinstance(counts, dict):
            return {}
        return {str(k): v for k, v in counts.items() if isinstance(v, int)}


def list_experiments(workdir: Path) -> list[ExperimentEntry]:
    root = experiments_root(workdir)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise InspectError(f"cannot read {root}: {exc.strerror}") from None
    out = []
    for name in names:
        path = experiment_dir(workdir, name)
        if name.startswith(".") or not path.is_dir():
            continue
        out.append(ExperimentEntry(name, path, read_json(str(path / STATE))))
    return out


def experiment_jobs(workdir: Path, name: str, runs: int = 1) -> list[tuple[str, str]]:
    """(type, identifier) of each job the experiment's latest run (or `runs` latest runs)
    submitted, once each, in order."""
    path = experiment_dir(workdir, name) / JOBS_LIST
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        if not experiment_dir(workdir, name).is_dir():
            raise InspectError(f"no experiment named {name!r} in {workdir}", EXIT_USAGE) from None
        return []
    except OSError as exc:
        raise InspectError(f"cannot read {path}: {exc.strerror}") from None
    jobs: dict[tuple[str, str], None] = {}
    for line in (line for run in runs_of(text)[-runs:] for line in run):
        type_name, _, ident = line.strip().rpartition("/")
        if type_name and _IDENTIFIER.fullmatch(ident):  # a line being appended is skipped
            jobs[(type_name, ident)] = None
    return list(jobs)


def referenced_jobs(workdir: Path) -> set[tuple[str, str]]:
    """Every job that the latest run of some experiment submitted; for an experiment that
    runs now, the run before it too (the one in progress may not have submitted all yet)."""
    refs: set[tuple[str, str]] = set()
    for xp in list_experiments(workdir):
        runs = 1 if xp.status in ("done", "failed", "cancelled") else 2
        refs.update(experiment_jobs(workdir, xp.name, runs))
    return refs


def open_workdir(value: str | None) -> Path:
    """The workdir named by `--workdir`, `$LEGATO_WORKDIR` or `.`, checked."""
    raw = value or os.environ.get(WORKDIR_ENV) or "."
    path = Path(raw).expanduser().absolute()
    if not path.exists():
        raise InspectError(f"workdir {path} does not exist")
    if not path.is_dir():
        raise InspectError(f"workdir {path} is not a directory")
    if not (jobs_root(path).is_dir() or experiments_root(path).is_dir()):
        raise InspectError(
            f"{path} is not a legato workdir (it has no jobs/ or experiments/ directory); "
            "give it before the command (legato --workdir DIR jobs ls) or set LEGATO_WORKDIR"
        )
    return path
