"""`legato experiments ls` and `legato status` (a live view of running experiments)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer

from .._inspect._procs import Locks
from .._inspect._query import tag_text
from .._inspect._scan import (
    ExperimentEntry,
    experiment_jobs,
    list_experiments,
    number,
    progress,
    scan_jobs,
)
from .._jobdir._experimentdir import count_groups
from .._jobdir._files import remove_tree
from ._common import EXIT_USAGE, InspectError, format_duration, format_time, open_workdir, table

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["app", "status"]

app = typer.Typer(
    help="List experiments.", no_args_is_help=True, add_completion=False, rich_markup_mode=None
)

_MAX_ROWS = 20


def _number(info: dict[str, Any] | None, key: str) -> float | None:
    return number((info or {}).get(key))


def _experiment_json(xp: ExperimentEntry) -> dict[str, Any]:
    info = xp.info or {}
    return {
        "name": xp.name,
        "status": xp.status,
        "counts": xp.counts,
        "pid": info.get("pid"),
        "host": info.get("host"),
        "started": _number(info, "started"),
        "updated": _number(info, "updated"),
        "path": str(xp.path),
    }


@app.command("ls")
def ls(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List experiments: status, job counts, start and last update."""
    workdir = open_workdir(ctx.obj)
    experiments = list_experiments(workdir)
    if as_json:
        for xp in experiments:
            sys.stdout.write(msgspec.json.encode(_experiment_json(xp)).decode() + "\n")
        return
    if not experiments:
        sys.stderr.write("no experiments\n")
        return
    rows = []
    for xp in experiments:
        s = count_groups(xp.counts)
        rows.append(
            (
                xp.name,
                xp.status,
                str(sum(s.values())),
                str(s["done"]),
                str(s["running"]),
                str(s["failed"]),
                str(s["cancelled"]),
                str(s["waiting"]),
                format_time(_number(xp.info, "started")),
                format_time(_number(xp.info, "updated")),
            )
        )
    headers = ("NAME", "STATUS", "JOBS", "DONE", "RUNNING", "FAILED", "CANCELLED", "WAITING",
               "STARTED", "UPDATED")  # fmt: skip
    sys.stdout.write(table(headers, rows, colour_column=1) + "\n")


@app.command("rm")
def rm(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(metavar="NAME", help="Experiment names.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Only say what would be removed.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove experiments' records (never a running one's); their jobs stay, for
    `legato clean --orphans` to remove those no other experiment refers to."""
    workdir = open_workdir(ctx.obj)
    known = {xp.name: xp for xp in list_experiments(workdir)}
    chosen = []
    for name in dict.fromkeys(names):  # check all first: a typo removes nothing
        xp = known.get(name)
        if xp is None:
            raise InspectError(f"no experiment named {name!r} in {workdir}", EXIT_USAGE)
        if xp.status == "running":
            raise InspectError(f"experiment {name!r} is running (pid {(xp.info or {}).get('pid')})")
        chosen.append(xp)
    verb = "would remove" if dry_run else "removing"
    for xp in chosen:
        sys.stdout.write(f"{verb} experiment {xp.name} ({xp.status}, {xp.path})\n")
    if dry_run:
        return
    sys.stdout.flush()
    question = f"Remove {len(chosen)} experiment record(s)?"
    if not yes and sys.stdin.isatty() and not typer.confirm(question, default=False):
        sys.stdout.write("nothing removed\n")
        raise typer.Exit(1)
    for xp in chosen:
        error = remove_tree(xp.path)
        if error is not None:
            raise InspectError(f"cannot remove {xp.path}: {error.strerror}")
    sys.stdout.write(
        f"{len(chosen)} experiment(s) removed; their jobs are kept "
        "(`legato clean --orphans` removes the jobs no experiment refers to)\n"
    )


# -- status ---------------------------------------------------------------------------


def render(workdir: Path) -> RenderableType:
    """The running experiments, their counts and their running jobs' progress."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    running = [xp for xp in list_experiments(workdir) if xp.status == "running"]
    if not running:
        return Text(f"no running experiment in {workdir}")
    now = time.time()
    parts: list[RenderableType] = []
    locks = Locks()
    for xp in running:
        info = xp.info or {}
        started = _number(info, "started")
        # Counts from the job directories: the experiment's own refresh every few seconds.
        jobs = scan_jobs(workdir, only=experiment_jobs(workdir, xp.name), locks=locks)
        states = [e.state for e in jobs]
        failed = states.count("failed") + states.count("dependency_failed")
        cancelled = states.count("cancelled")
        head = Text.assemble(
            (xp.name, "bold"),
            f"  pid {info.get('pid')} on {info.get('host')}, started {format_time(started)}"
            f" ({format_duration(now - started if started else None)} ago)\n",
            (f"{states.count('done')} done", "green"),
            ", ",
            (f"{states.count('running')} running", "cyan"),
            ", ",
            (f"{failed} failed", "red" if failed else ""),
            ", ",
            (f"{cancelled} cancelled", "yellow" if cancelled else ""),
            f", {states.count('incomplete')} pending",
        )
        parts.append(head)
        jobs = [e for e in jobs if e.state == "running"]
        if jobs:
            grid = Table(box=None, padding=(0, 1), show_header=True, header_style="dim")
            for column in ("JOB", "TAGS", "PROGRESS", "", "ELAPSED"):
                grid.add_column(column)
            for entry in jobs[:_MAX_ROWS]:
                report = progress(entry)
                bar: RenderableType = Text("")
                label = ""
                if report is not None:
                    bar = ProgressBar(total=1.0, completed=report[0], width=20)
                    label = f"{report[0]:.0%}" + (f" {report[1]}" if report[1] else "")
                tags = " ".join(f"{k}={tag_text(v)}" for k, v in entry.tags().items())
                grid.add_row(entry.short, tags, bar, label, format_duration(entry.duration))
            parts.append(grid)
            if len(jobs) > _MAX_ROWS:
                parts.append(Text(f"  … and {len(jobs) - _MAX_ROWS} more running", "dim"))
        parts.append(Text(""))
    return Group(*parts)


def status(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Print the view once and exit.")] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.1, metavar="SECONDS", help="Seconds between refreshes."),
    ] = 1.0,
) -> None:
    """Live view of running experiments, refreshed until Ctrl-C (printed once off a terminal)."""
    from rich.console import Console
    from rich.live import Live

    workdir = open_workdir(ctx.obj)
    console = Console()
    if once or not console.is_terminal:
        console.print(render(workdir))
        return
    try:
        with Live(render(workdir), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(workdir), refresh=True)
    except KeyboardInterrupt:
        pass
