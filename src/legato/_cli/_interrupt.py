"""`legato jobs interrupt`: stop a running job's attempt as its time limit, or a
preemption, would, so that users can test their checkpointing without waiting for one.

The protocol shared with the job worker, as for a time limit (`submit(timeout=...)`):

1. write the `interrupt` marker, {"kind": "timeout" or "preempted", "reason"};
2. SIGTERM the job's process (a local job's worker), or its SLURM batch step
   (`scancel --signal=TERM --batch`): the task sees `legato.Interrupted`;
3. the worker records the attempt "interrupted" of that kind, and the experiment runs it
   again: a "timeout" uses up one of the job's retries, a "preempted" does not.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Annotated

import typer

from .._inspect._kill import scancel
from .._inspect._procs import job_process
from .._inspect._scan import JobEntry, resolve
from .._jobdir._files import host_name
from .._jobdir._job import JobDir
from ._common import InspectError, open_workdir
from ._jobs import app

__all__ = ["interrupt_job"]


def _signal_slurm(entry: JobEntry) -> str:
    slurm_id = scancel(entry, ["--signal=TERM", "--batch"], "signal")
    return f"SIGTERM to SLURM job {slurm_id}"


def interrupt_job(entry: JobEntry, preempt: bool) -> str:
    """Interrupt the job's running attempt; a one-line account of what was done."""
    if entry.state != "running":
        raise InspectError(f"{entry.short} is not running ({entry.state}): nothing to interrupt")
    slurm = entry.info.get("launcher") == "slurm"
    pid = None if slurm else job_process(entry.info, entry.identifier)
    if not slurm and pid is None:
        host = entry.info.get("host")
        if isinstance(host, str) and host and host != host_name():
            raise InspectError(
                f"{entry.short}: it runs on {host}, where this command cannot see processes; "
                "run `legato jobs interrupt` there"
            )
        raise InspectError(f"{entry.short}: its process has not started yet (or just ended); retry")
    if preempt:
        kind, reason = "preempted", "preempted by `legato jobs interrupt --preempt`"
    else:
        kind, reason = "timeout", "interrupted as at a time limit by `legato jobs interrupt`"
    JobDir(entry.path).request_interrupt(
        {"kind": kind, "reason": reason, "time": time.time(), "by": "legato"}, durable=False
    )
    if slurm:
        how = _signal_slurm(entry)
    else:
        assert pid is not None
        try:
            os.kill(pid, signal.SIGTERM)  # the worker only, as SLURM's warning signal does
        except ProcessLookupError:
            raise InspectError(f"{entry.short}: its process {pid} ended meanwhile") from None
        how = f"SIGTERM to pid {pid}"
    return f"{entry.short}: interrupted ({kind}; {how})"


@app.command("interrupt")
def interrupt(
    ctx: typer.Context,
    jobs: Annotated[
        list[str],
        typer.Argument(metavar="ID", help="Identifier prefixes, optionally TYPE/PREFIX."),
    ],
    preempt: Annotated[
        bool,
        typer.Option(
            "--preempt",
            help="As a preemption (does not use up a retry) rather than a time limit.",
        ),
    ] = False,
) -> None:
    """Interrupt running jobs as a time limit (or, with --preempt, a preemption) would:
    the task sees legato.Interrupted, saves its checkpoint, and runs again if it may."""
    workdir = open_workdir(ctx.obj)
    entries = {entry.name: entry for entry in (resolve(workdir, spec) for spec in jobs)}
    failed = False
    for entry in entries.values():
        try:
            sys.stdout.write(interrupt_job(entry, preempt) + "\n")
        except InspectError as exc:
            failed = True
            sys.stderr.write(f"legato: error: {exc}\n")
        sys.stdout.flush()
    if failed:
        raise typer.Exit(1)
