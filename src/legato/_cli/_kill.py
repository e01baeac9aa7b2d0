"""`legato jobs kill`: the command; the protocol is `legato._inspect._kill`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .._inspect._kill import kill_job
from .._inspect._scan import JobEntry, resolve
from ._common import InspectError, open_workdir
from ._jobs import app

__all__ = ["kill"]


@app.command("kill")
def kill(
    ctx: typer.Context,
    jobs: Annotated[
        list[str],
        typer.Argument(metavar="ID", help="Identifier prefixes, optionally TYPE/PREFIX."),
    ],
    grace: Annotated[
        float,
        typer.Option(
            "--grace", min=0.0, metavar="SECONDS", help="Seconds between SIGTERM and SIGKILL."
        ),
    ] = 5.0,
) -> None:
    """Cancel running jobs: SIGTERM (SIGKILL after --grace), or scancel; mark them CANCELLED."""
    workdir = open_workdir(ctx.obj)
    entries: dict[str, JobEntry] = {}
    for spec in jobs:  # resolve all first: a typo cancels nothing
        entry = resolve(workdir, spec)
        entries[entry.name] = entry
    failures: list[Any] = []
    for entry in entries.values():
        try:
            sys.stdout.write(kill_job(entry, grace) + "\n")
        except InspectError as exc:
            failures.append(exc)
            sys.stderr.write(f"legato: error: {exc}\n")
        sys.stdout.flush()
    if failures:
        raise typer.Exit(1)
