"""What a query about jobs selects and shows: tag and name filters, a job's details.

Shared by `legato jobs` and the web dashboard, so that both select and describe a job alike.
"""

from __future__ import annotations

import fnmatch
import math
import os
from pathlib import Path
from typing import Any

import msgspec

from .._jobdir._layout import STDERR, STDOUT, job_dir
from ._errors import EXIT_USAGE, InspectError
from ._params import Params, ParamsError, ParamsMissing
from ._procs import Locks
from ._scan import JobEntry, progress, read_job

__all__ = ["job_details", "name_matcher", "parse_tag_filter", "tag_matches", "tag_text"]


def tag_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return str(value)
    return msgspec.json.encode(value).decode()


def parse_tag_filter(text: str) -> tuple[str, str | None]:
    key, eq, value = text.partition("=")
    if not key:
        raise InspectError(f"--tag {text!r}: expected KEY=VALUE or KEY", EXIT_USAGE)
    return key, (value if eq else None)


def tag_matches(tags: dict[str, Any], key: str, wanted: str | None) -> bool:
    if key not in tags:
        return False
    if wanted is None:
        return True
    value = tags[key]
    if isinstance(value, bool):
        return wanted.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            number = float(wanted)
        except ValueError:
            return False
        return number == value or (math.isnan(number) and math.isnan(value))
    return tag_text(value) == wanted


def name_matcher(pattern: str) -> Any:
    def matches(type_name: str) -> bool:
        short = type_name.rsplit(".", 1)[-1]
        return fnmatch.fnmatchcase(type_name, pattern) or fnmatch.fnmatchcase(short, pattern)

    return matches


def job_details(
    workdir: Path, entry: JobEntry, *, strict: bool = True
) -> tuple[dict[str, Any], Params | None]:
    """Everything `jobs show` prints, as builtins, and the decoded params.

    A params file that cannot be read raises InspectError when `strict` (the command
    line); otherwise (the dashboard, which still shows what the job's other records say)
    the details have no parameters and "params_error" says why."""
    error = None
    try:
        params: Params | None = entry.params()
    except ParamsMissing:
        params = None
    except ParamsError as exc:
        error = f"cannot read the params of {entry.short}: {exc} ({entry.dir})"
        if strict:
            raise InspectError(error) from None
        params = None
    deps = []
    for type_name, ident in params.dependencies() if params else ():
        dep = read_job(type_name, ident, str(job_dir(workdir, type_name, ident)), Locks())
        deps.append({"type": type_name, "id": ident, "state": dep.state if dep else "missing"})
    info = entry.info
    record = entry.record or {}
    details: dict[str, Any] = {
        "type": entry.type_name,
        "id": entry.identifier,
        "state": entry.state,
        "reason": entry.reason,
        "started": entry.started,
        "ended": entry.ended,
        "duration": entry.duration,
        "experiment": info.get("experiment"),
        "launcher": info.get("launcher"),
        "host": info.get("host"),
        "pid": info.get("pid"),
        "slurm_id": info.get("slurm_id"),
        "attempts": info.get("attempt"),
        "progress": None,
        "tags": params.tags() if params else {},
        "params": ({k: params.builtins(v) for k, v in params.fields().items()} if params else None),
        "paths": params.paths() if params else {},
        "dependencies": deps,
        "failed_dependency": record.get("dependency"),
        "failure_cause": record.get("cause"),
        "path": entry.dir,
        # Known from the params file (the command line cannot compute a main identifier).
        "main_path": (params.main_dir() or entry.dir) if params else None,
        "stdout": os.path.join(entry.dir, STDOUT),
        "stderr": os.path.join(entry.dir, STDERR),
    }
    if not strict:
        details["params_error"] = error
    if entry.state == "running":
        report = progress(entry)
        if report:
            details["progress"] = {"fraction": report[0], "desc": report[1]}
    return details, params
