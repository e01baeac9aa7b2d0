"""`legato jobs rm` and `legato clean`: remove job directories, never a running job's.

A directory is renamed to a hidden sibling before it is deleted, so readers (and
experiments) see it whole or not at all. Confirmation is asked only on a terminal.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from .._inspect._remove import remove_job_dir, unused_partials
from .._inspect._scan import UNRUN_STATES, JobEntry, referenced_jobs, resolve, scan_jobs
from .._jobdir._files import remove_tree
from ._common import EXIT_USAGE, InspectError, open_workdir
from ._jobs import app as jobs_app

__all__ = ["clean", "remove_jobs"]


def remove_jobs(entries: list[JobEntry], *, dry_run: bool, yes: bool) -> None:
    """Remove the jobs (running ones are refused); exit 1 if any could not be removed."""
    refused = [e for e in entries if e.state == "running"]
    for entry in refused:
        sys.stderr.write(f"legato: error: {entry.short} is running; not removed\n")
    entries = [e for e in entries if e.state != "running"]
    if not entries:
        sys.stdout.write("nothing to remove\n")
        if refused:
            raise typer.Exit(1)
        return
    for entry in entries:
        reason = f"  {_one_line(entry.reason)}" if entry.reason else ""
        verb = "would remove" if dry_run else "removing"
        sys.stdout.write(f"{verb} {entry.short}  {entry.state}{reason}\n")
    if dry_run:
        sys.stdout.write(f"{len(entries)} job(s) would be removed (dry run)\n")
        return
    sys.stdout.flush()
    question = f"Remove {len(entries)} job director{'y' if len(entries) == 1 else 'ies'}?"
    if not yes and sys.stdin.isatty() and not typer.confirm(question, default=False):
        sys.stdout.write("nothing removed\n")
        raise typer.Exit(1)
    removed = 0
    for entry in entries:
        problem = remove_job_dir(entry)
        if problem:
            refused.append(entry)
            sys.stderr.write(f"legato: error: {entry.short}: {problem}; not removed\n")
        else:
            removed += 1
    sys.stdout.write(f"{removed} job(s) removed\n")
    if refused:
        raise typer.Exit(1)


def _one_line(reason: str, limit: int = 200) -> str:
    """A reason as one short line: a listing of many jobs is read line by line."""
    line = " ".join(reason.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


_DRY_RUN = typer.Option("--dry-run", "-n", help="Only list what would be removed.")
_YES = typer.Option("--yes", "-y", help="Do not ask for confirmation.")


@jobs_app.command("rm")
def rm(
    ctx: typer.Context,
    jobs: Annotated[
        list[str],
        typer.Argument(metavar="ID", help="Identifier prefixes, optionally TYPE/PREFIX."),
    ],
    dry_run: Annotated[bool, _DRY_RUN] = False,
    yes: Annotated[bool, _YES] = False,
) -> None:
    """Remove jobs' directories (never a running job's)."""
    workdir = open_workdir(ctx.obj)
    entries: dict[str, JobEntry] = {}
    for spec in jobs:
        entry = resolve(workdir, spec)
        entries[entry.name] = entry
    remove_jobs(list(entries.values()), dry_run=dry_run, yes=yes)


def clean(
    ctx: typer.Context,
    failed: Annotated[
        bool,
        typer.Option("--failed", help="Remove failed, cancelled and dependency-failed jobs."),
    ] = False,
    orphans: Annotated[
        bool, typer.Option("--orphans", help="Remove jobs that no experiment refers to.")
    ] = False,
    dry_run: Annotated[bool, _DRY_RUN] = False,
    yes: Annotated[bool, _YES] = False,
) -> None:
    """Remove failed jobs and/or jobs no experiment refers to (never a running job)."""
    if not (failed or orphans):
        raise InspectError("say what to clean: --failed, --orphans or both", EXIT_USAGE)
    workdir = open_workdir(ctx.obj)
    refs = referenced_jobs(workdir) if orphans else set()
    chosen = []
    for entry in scan_jobs(workdir):
        if entry.state == "running":
            continue
        if (failed and entry.state in UNRUN_STATES) or (
            orphans and (entry.type_name, entry.identifier) not in refs
        ):
            chosen.append(entry)
    chosen.sort(key=lambda e: (e.type_name, e.identifier))
    remove_jobs(chosen, dry_run=dry_run, yes=yes)
    remove_unused_partials(workdir, {os.path.normpath(e.dir) for e in chosen}, dry_run=dry_run)


def remove_unused_partials(workdir: Path, going: set[str], *, dry_run: bool) -> None:
    """Remove the main task directories (`partials/`) of jobs that are all gone: after the
    last job that resumed from a checkpoint there is removed, the checkpoint goes too."""
    for main in unused_partials(workdir, going):
        short = f"partials/{main.parent.name}/{main.name[:12]}"
        if dry_run:
            sys.stdout.write(f"would remove {short}  no job uses it\n")
            continue
        error = remove_tree(main)
        if error is not None:
            sys.stderr.write(f"legato: error: cannot remove {main}: {error.strerror}\n")
            continue
        sys.stdout.write(f"removed {short}  no job uses it\n")
