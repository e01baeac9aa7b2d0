"""`legato jobs ls | show | log`: what is in the workdir, one job in detail, its output."""

from __future__ import annotations

import enum
import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from .._inspect._params import Params
from .._inspect._procs import Locks
from .._inspect._query import job_details, name_matcher, parse_tag_filter, tag_matches, tag_text
from .._inspect._scan import (
    JobEntry,
    experiment_jobs,
    read_job,
    resolve,
    scan_jobs,
)
from .._jobdir._layout import STDERR, STDOUT, attempt_dir
from ._common import (
    InspectError,
    format_duration,
    format_time,
    json_text,
    open_workdir,
    table,
)

__all__ = ["app"]

app = typer.Typer(
    help="List, inspect, follow, cancel and remove jobs.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

_FOLLOW_POLL = 0.25


class State(str, enum.Enum):
    done = "done"
    failed = "failed"
    cancelled = "cancelled"
    dependency_failed = "dependency_failed"
    running = "running"
    incomplete = "incomplete"


# -- jobs ls --------------------------------------------------------------------------


def _sort_key(entry: JobEntry) -> tuple[float, str, str]:
    start = entry.started
    if start is None:
        submitted = entry.info.get("submitted")
        start = submitted if isinstance(submitted, (int, float)) else math.inf
    return (float(start), entry.type_name, entry.identifier)


def job_json(entry: JobEntry) -> dict[str, Any]:
    return {
        "type": entry.type_name,
        "id": entry.identifier,
        "state": entry.state,
        "tags": entry.tags(),
        "started": entry.started,
        "ended": entry.ended,
        "duration": entry.duration,
        "reason": entry.reason,
        "path": entry.dir,
    }


def _warn_params(entries: list[JobEntry]) -> None:
    bad = [e for e in entries if e.params_error]
    if bad:
        first = bad[0]
        sys.stderr.write(
            f"legato: warning: {len(bad)} job(s) have unreadable params, their tags are not "
            f"shown (e.g. {first.short}: {first.params_error})\n"
        )


@app.command("ls")
def ls(
    ctx: typer.Context,
    state: Annotated[
        list[State] | None,
        typer.Option(
            "--state",
            "-s",
            metavar="STATE",
            help="Only jobs in this state: done, failed (dependency_failed included), "
            "cancelled, dependency_failed, running, incomplete (repeatable).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            metavar="GLOB",
            help="Only types matching this glob (full or class name).",
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            "-t",
            metavar="KEY[=VALUE]",
            help="Only jobs with this tag: KEY=VALUE or KEY (repeatable).",
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment", "-x", metavar="NAME", help="Only jobs this experiment submitted."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    as_csv: Annotated[
        bool,
        typer.Option(
            "--csv",
            help="CSV with a header: type, id, state, one column per tag and per result, "
            "duration, path (the columns of legato.results().to_pandas()).",
        ),
    ] = False,
) -> None:
    """List jobs: type, short ID, state, tags, start and duration."""
    workdir = open_workdir(ctx.obj)
    filters = [parse_tag_filter(t) for t in tag or ()]
    only = experiment_jobs(workdir, experiment) if experiment is not None else None
    entries = scan_jobs(
        workdir, type_filter=name_matcher(name) if name else None, only=only, locks=Locks()
    )
    if state:
        wanted = {s.value for s in state}
        if State.failed in state:  # a job that never ran because another failed failed too
            wanted.add(State.dependency_failed.value)
        entries = [e for e in entries if e.state in wanted]
    if filters:
        entries = [e for e in entries if all(tag_matches(e.tags(), k, v) for k, v in filters)]
    entries.sort(key=_sort_key)
    if as_csv:
        _write_csv(entries, workdir)
    elif as_json:
        encode = msgspec.json.Encoder(enc_hook=str).encode
        sys.stdout.buffer.write(b"".join(encode(job_json(e)) + b"\n" for e in entries))
        sys.stdout.flush()
    else:
        rows = [
            (
                e.type_name,
                e.identifier[:12],
                e.state,
                " ".join(f"{k}={tag_text(v)}" for k, v in e.tags().items()),
                format_time(e.started),
                format_duration(e.duration),
            )
            for e in entries
        ]
        if rows:
            headers = ("TYPE", "ID", "STATE", "TAGS", "START", "DURATION")
            sys.stdout.write(table(headers, rows, colour_column=2) + "\n")
        else:
            sys.stderr.write("no jobs\n")
    _warn_params(entries)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return value
    return tag_text(msgspec.to_builtins(value, enc_hook=str, str_keys=True))


def _write_csv(entries: list[JobEntry], workdir: Path) -> None:
    import csv

    from .._inspect._results import JobRecord, columns

    names, rows = columns(JobRecord(e, plain=True, workdir=workdir) for e in entries)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([_csv_cell(v) for v in row] for row in rows)
    sys.stdout.flush()


# -- jobs show ------------------------------------------------------------------------


def _show_text(entry: JobEntry, d: dict[str, Any], params: Params | None) -> str:
    lines = [f"{entry.type_name}/{entry.identifier}"]

    def row(key: str, value: Any) -> None:
        if value is not None and value != "":
            lines.append(f"  {key:<12}{value}")

    row("state", d["state"])
    row("reason", d["reason"])
    for key, label in (("failed_dependency", "dependency"), ("failure_cause", "first failed")):
        dep = d[key]
        if isinstance(dep, dict) and (key == "failed_dependency" or dep != d["failed_dependency"]):
            row(label, f"{dep.get('type')}/{dep.get('id')} ({dep.get('state')}) {dep.get('path')}")
    if d["progress"]:
        p = d["progress"]
        row("progress", f"{p['fraction']:.0%}" + (f" {p['desc']}" if p["desc"] else ""))
    row("started", format_time(d["started"]) if d["started"] else None)
    row("ended", format_time(d["ended"]) if d["ended"] else None)
    row("duration", format_duration(d["duration"]) if d["duration"] is not None else None)
    row("experiment", d["experiment"])
    if isinstance(d["attempts"], int) and d["attempts"] > 1:
        row("attempts", f"{d['attempts']} (logs of the earlier ones: attempts/<N>/)")
    run = d["launcher"]
    if run:
        where = [f"pid {d['pid']}" if d["pid"] else "", f"on {d['host']}" if d["host"] else ""]
        if d["slurm_id"]:
            where.insert(0, f"SLURM job {d['slurm_id']}")
        extra = " ".join(w for w in where if w)
        row("launcher", f"{run} ({extra})" if extra else run)
    row("directory", d["path"])
    if d["main_path"] not in (None, d["path"]):
        row("main dir", f"{d['main_path']} (shared with the jobs that differ in sub-parameters)")
    row("logs", f"{STDOUT}, {STDERR} (in the directory)")
    lines.append("tags")
    for key, value in d["tags"].items():
        lines.append(f"  {key} = {tag_text(value)}")
    if not d["tags"]:
        lines.append("  (none)")
    lines.append("params")
    if params is None:
        lines.append("  (no params file yet: the job has not started)")
    else:
        for key, value in params.fields().items():
            text = f"  {key} = {params.render(value)}"
            source = params.output_of(value)
            if source:
                type_name, _, ident = source.rpartition("/")
                text += f"  # output of {type_name}/{ident[:12]}"
            lines.append(text)
    if d["paths"]:
        lines.append("paths")
        for key, value in d["paths"].items():
            lines.append(f"  {key} = {value}")
    lines.append("dependencies")
    for dep in d["dependencies"]:
        lines.append(f"  {dep['type']}/{dep['id'][:12]}  {dep['state']}")
    if not d["dependencies"]:
        lines.append("  (none)")
    return "\n".join(lines)


@app.command("show")
def show(
    ctx: typer.Context,
    job: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="Identifier prefix, optionally TYPE/PREFIX, or a type with a single job.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Show a job: state, tags, params, paths, dependencies and failure reason."""
    workdir = open_workdir(ctx.obj)
    entry = resolve(workdir, job)
    details, params = job_details(workdir, entry)
    if as_json:
        sys.stdout.write(json_text(details) + "\n")
    else:
        sys.stdout.write(_show_text(entry, details, params) + "\n")


# -- jobs log -------------------------------------------------------------------------


def _copy(path: str, offset: int) -> int:
    """Write the file's bytes from `offset` to stdout; the new offset (0 after a rerun
    truncated the file)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return offset
    with f:
        size = os.fstat(f.fileno()).st_size
        if size < offset:
            offset = 0
        f.seek(offset)
        out = sys.stdout.buffer
        while chunk := f.read(1 << 16):
            out.write(chunk)
            offset += len(chunk)
        out.flush()
    return offset


@app.command("log")
def log(
    ctx: typer.Context,
    job: Annotated[
        str, typer.Argument(metavar="ID", help="Identifier prefix, optionally TYPE/PREFIX.")
    ],
    err: Annotated[bool, typer.Option("--err", "-e", help="Standard error instead.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing output until the job ends.")
    ] = False,
    attempt: Annotated[
        int | None,
        typer.Option(
            "--attempt",
            "-a",
            min=1,
            metavar="N",
            help="The output of attempt N (1 first) of a job that was run again; "
            "default: the latest.",
        ),
    ] = None,
) -> None:
    """Print a job's standard output (or error)."""
    workdir = open_workdir(ctx.obj)
    entry = resolve(workdir, job)
    name = STDERR if err else STDOUT
    path = os.path.join(entry.dir, name)
    if attempt is not None:
        archived = attempt_dir(entry.path, attempt) / name
        latest = entry.info.get("attempt")
        if archived.exists():
            path, follow = str(archived), False  # an attempt that ended
        elif attempt != (latest if isinstance(latest, int) else 1):
            made = f"{latest} attempts" if isinstance(latest, int) and latest > 1 else "one attempt"
            raise InspectError(f"{entry.short} has no attempt {attempt} (it made {made})")
    if not follow:
        if not os.path.exists(path):
            raise InspectError(f"{entry.short} has no {os.path.basename(path)} yet ({entry.state})")
        _copy(path, 0)
        return
    offset = 0
    try:
        while True:
            current = read_job(entry.type_name, entry.identifier, entry.dir, Locks())
            offset = _copy(path, offset)
            if current is None or current.state != "running":
                return
            time.sleep(_FOLLOW_POLL)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
