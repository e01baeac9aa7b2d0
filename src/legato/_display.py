"""Following an experiment: a live rich display on a terminal, log lines elsewhere, and
the experiment's state.json kept fresh for `legato status`."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio

from ._job import JobState

if TYPE_CHECKING:
    from ._experiment import Experiment

__all__ = ["follow", "summary"]

_STATE_INTERVAL = 2.0
_LOG_INTERVAL = float(os.environ.get("LEGATO_LOG_INTERVAL", "30"))
_log = logging.getLogger("legato")


def summary(xp: Experiment) -> str:
    c = xp.counts()
    waiting = c["waiting"] + c["ready"]
    failed = c["failed"] + c["dependency_failed"] + c["cancelled"]
    return (
        f"{xp.name}: {c['done']} done, {c['running']} running, {failed} failed, "
        f"{waiting} waiting ({sum(c.values())} jobs)"
    )


async def follow(xp: Experiment) -> None:
    """Runs for the experiment's life in its task group; cancelled when it closes."""
    if sys.stdout.isatty() and os.environ.get("LEGATO_DISPLAY", "1") != "0":
        await _live(xp)
    else:
        await _plain(xp)


async def _plain(xp: Experiment) -> None:
    last_log = last_state = time.monotonic()
    while True:
        await anyio.sleep(0.5)
        now = time.monotonic()
        if now - last_state >= _STATE_INTERVAL:
            last_state = now
            await xp._write_state("running")
        if now - last_log >= _LOG_INTERVAL and xp._jobs:
            last_log = now
            _log.info("%s", summary(xp))


def _render(xp: Experiment) -> Any:
    from rich.console import Group, NewLine
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    c = xp.counts()
    total = sum(c.values())
    finished = c["done"] + c["failed"] + c["dependency_failed"] + c["cancelled"]
    header = Text(summary(xp), style="bold")
    bar = ProgressBar(total=max(total, 1), completed=finished, width=60)
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("job")
    table.add_column("progress", justify="right")
    table.add_column("desc")
    running = [j for j in xp._jobs.values() if j.state is JobState.RUNNING]
    for job in running[:20]:
        pct = f"{job.progress * 100:5.1f}%" if job.progress is not None else "  ... "
        table.add_row(f"{job.type_name}/{job.identifier[:8]}", pct, job.progress_desc or "")
    if len(running) > 20:
        table.add_row(f"... and {len(running) - 20} more", "", "")
    # A progress bar ends without a newline: without one, the first job's row would
    # continue the bar's line and be cut at the terminal's width.
    return Group(header, bar, NewLine(), table)


async def _live(xp: Experiment) -> None:
    from rich.live import Live

    last_state = time.monotonic()
    with Live(_render(xp), refresh_per_second=4, transient=False) as live:
        try:
            while True:
                await anyio.sleep(0.25)
                live.update(_render(xp))
                now = time.monotonic()
                if now - last_state >= _STATE_INTERVAL:
                    last_state = now
                    await xp._write_state("running")
        finally:
            live.update(_render(xp), refresh=True)  # leave the final counts on screen
