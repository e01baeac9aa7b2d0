"""`legato.results(workdir)`: the jobs of a workdir with their tags and results, as a table.

It reads job directories as `legato jobs ls` does (`legato._inspect._scan`: one read of a DONE
job's marker, one of its params for the tags, without importing the user's classes), and
each DONE job's result file. Configurations are rebuilt only when asked for
(`record.config`), since that imports the classes that define them.

The columns of `Results.to_pandas()` and of `legato jobs ls --csv` are the same (`columns`):
`type`, `id`, `state`, one per tag, one per result (`result` for a value that is not a
mapping; one per key of a dict or Struct result, nested keys joined with "."; a key that
is also a tag or a fixed column is prefixed with `result.`), `duration`, `path`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from .._errors import LegatoError, ResultError

__all__ = ["STATES", "JobRecord", "Results", "columns", "results"]

STATES = ("done", "failed", "cancelled", "running", "incomplete")
_FIXED = ("type", "id", "state")
_TRAILING = ("duration", "path")
_MISSING: Any = object()


class JobRecord:
    """One job of a workdir as `legato.results()` finds it; read it, never build it."""

    __slots__ = ("_config", "_entry", "_plain", "_result", "_workdir")

    def __init__(self, entry: Any, plain: bool = False, workdir: Path | None = None) -> None:
        self._entry = entry  # a legato._inspect._scan.JobEntry
        self._plain = plain  # results without importing classes (the command line)
        self._workdir = workdir  # the one the job directory lies in, when known
        self._config: Any = _MISSING
        self._result: Any = _MISSING

    @property
    def identifier(self) -> str:
        """The task's 64-hex-digit identifier, the name of `path`."""
        return str(self._entry.identifier)

    @property
    def type(self) -> str:
        """The task's type name (`first.Evaluate`), the parent directory of `path`."""
        return str(self._entry.type_name)

    @property
    def state(self) -> str:
        """done, failed, cancelled, running or incomplete (waiting, or interrupted)."""
        return str(self._entry.state)

    @property
    def reason(self) -> str | None:
        """Why a failed or cancelled job did not end DONE."""
        reason: str | None = self._entry.reason
        return reason

    @property
    def tags(self) -> dict[str, Any]:
        """Its tags, and those of the tasks it depends on (empty if its params are
        unreadable)."""
        tags: dict[str, Any] = self._entry.tags()
        return tags

    @property
    def duration(self) -> float | None:
        """How long its last run took, in seconds (so far, when running)."""
        duration: float | None = self._entry.duration
        return duration

    @property
    def path(self) -> Path:
        """The job directory."""
        return Path(self._entry.dir)

    @property
    def config(self) -> Any:
        """The task, rebuilt from its params (`legato.load`) on first access: this
        imports the modules that define its classes."""
        if self._config is _MISSING:
            from .._jobside._load import load

            self._config = load(self._entry.dir)
        return self._config

    @property
    def result(self) -> Any:
        """What `execute()` returned, for a DONE job; None otherwise or if it returned
        nothing. Raises `ResultError` when the result file was deleted or is corrupt."""
        if self._result is _MISSING:
            entry = self._entry
            name = entry.result_file
            if entry.state != "done" or name is None:
                self._result = None  # not DONE, or its marker names no result
            else:
                from .._core._result import read_result

                workdir = self._workdir
                if workdir is None:
                    workdir = Path(os.path.dirname(os.path.dirname(os.path.dirname(entry.dir))))
                self._result = read_result(entry.dir, name, workdir, plain=self._plain)
        return self._result

    def __repr__(self) -> str:
        return f"<JobRecord {self.type}/{self.identifier[:12]} {self.state}>"


class Results(list[JobRecord]):
    """The records `legato.results()` found, oldest run first; a list, plus tables."""

    def columns(self) -> tuple[list[str], list[list[Any]]]:
        """Column names and one row per job: what `to_pandas()` and `jobs ls --csv` show."""
        return columns(self)

    def to_pandas(self) -> Any:
        """A pandas DataFrame, one row per job: type, id, state, tags, results, duration
        and path as columns (see `legato.results`).

        Raises:
            ImportError: When pandas is not installed.
        """
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ImportError(
                "Results.to_pandas() needs pandas, which is not installed: "
                "pip install pandas (or iterate over the records instead)"
            ) from exc
        names, rows = self.columns()
        return pd.DataFrame.from_records(rows, columns=names)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, msgspec.Struct) and not hasattr(value, "__legato_type_name__"):
        value = msgspec.structs.asdict(value)
    if isinstance(value, dict) and value and "__type__" not in value:  # not a config
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix or "result"] = value


def _result_columns(record: JobRecord) -> dict[str, Any]:
    value = record.result
    if value is None:
        return {}
    out: dict[str, Any] = {}
    if isinstance(value, dict) or (
        isinstance(value, msgspec.Struct) and not hasattr(value, "__legato_type_name__")
    ):
        _flatten(value, "", out)
    else:
        out["result"] = value
    return out


def columns(records: Iterable[JobRecord]) -> tuple[list[str], list[list[Any]]]:
    """The shared table of `Results.to_pandas()` and `legato jobs ls --csv`."""
    records = list(records)
    tag_names: dict[str, None] = {}
    per_job: list[tuple[dict[str, Any], dict[str, Any]]] = []
    result_names: dict[str, None] = {}
    for record in records:
        tags = record.tags
        tag_names.update(dict.fromkeys(tags))
        try:
            values = _result_columns(record)
        except ResultError:
            values = {}
        result_names.update(dict.fromkeys(values))
        per_job.append((tags, values))
    taken = set(_FIXED) | set(_TRAILING) | set(tag_names)
    renamed = {n: (f"result.{n}" if n in taken else n) for n in result_names}
    names = [*_FIXED, *tag_names, *renamed.values(), *_TRAILING]
    rows = []
    for record, (tags, values) in zip(records, per_job, strict=True):
        row: list[Any] = [record.type, record.identifier, record.state]
        row += [tags.get(n) for n in tag_names]
        row += [values.get(n) for n in result_names]
        row += [record.duration, record._entry.dir]
        rows.append(row)
    return names, rows


def _sort_key(record: JobRecord) -> tuple[float, str, str]:
    started = record._entry.started
    return (math.inf if started is None else float(started), record.type, record.identifier)


def results(
    workdir: str | os.PathLike[str],
    *,
    type: Any = None,
    experiment: str | None = None,
    state: str | Sequence[str] | None = "done",
) -> Results:
    """The jobs of `workdir`, one record each (identifier, type, state, tags, result,
    duration, path, and the configuration on demand), oldest run first.

    Reads the job directories only: no experiment needs to run, and the classes of the
    tasks are imported only for `record.config`. `.to_pandas()` makes the table a
    notebook pivots, one row per job:
    `legato.results("runs", type=Evaluate).to_pandas().pivot_table(...)`.

    Args:
        workdir: The workdir experiments ran in.
        type: Only jobs of this task class, or of this type name (`first.Evaluate`) or
            class name (`Evaluate`).
        experiment: Only the jobs this experiment submitted (by its name).
        state: Only jobs in this state ("done", "failed", "cancelled", "running",
            "incomplete"), or in any of these states; None for every job.

    Raises:
        LegatoError: When the workdir does not exist or names no such experiment.
        ValueError: When `state` names no state.
    """
    from ._errors import InspectError
    from ._procs import Locks
    from ._scan import experiment_jobs, scan_jobs, type_matcher

    root = Path(workdir).expanduser().absolute()
    if not root.is_dir():
        raise LegatoError(f"workdir {root} does not exist")
    wanted = _states(state)
    type_filter = None
    if type is not None:
        name = type if isinstance(type, str) else getattr(type, "__legato_type_name__", None)
        if not isinstance(name, str):
            raise TypeError(f"type= takes a Task class or a type name, not {type!r}")
        type_filter = type_matcher(name) if isinstance(type, str) else name.__eq__
    try:
        only = experiment_jobs(root, experiment) if experiment is not None else None
        entries = scan_jobs(root, type_filter=type_filter, only=only, locks=Locks())
    except InspectError as exc:
        raise LegatoError(str(exc)) from None
    found = Results(
        JobRecord(e, workdir=root) for e in entries if wanted is None or e.state in wanted
    )
    found.sort(key=_sort_key)
    return found


def _states(state: str | Sequence[str] | None) -> set[str] | None:
    if state is None:
        return None
    states = {state} if isinstance(state, str) else set(state)
    unknown = states - set(STATES)
    if unknown:
        raise ValueError(
            f"state={sorted(unknown)[0]!r} is not a job state; one of {', '.join(STATES)}"
        )
    return states
