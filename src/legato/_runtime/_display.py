"""Following an experiment: a live rich display on a terminal or in a Jupyter notebook,
log lines elsewhere, and the experiment's state.json kept fresh for `legato status`."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from .._jobdir._experimentdir import count_groups
from .._jobdir._names import DISPLAY_ENV, LOG_INTERVAL_ENV
from ._job import JobState

if TYPE_CHECKING:
    from ._experiment import Experiment

__all__ = ["follow", "summary"]

_STATE_INTERVAL = 2.0
_LOG_INTERVAL = float(os.environ.get(LOG_INTERVAL_ENV, "30"))
_log = logging.getLogger("legato")


def summary(xp: Experiment) -> str:
    c = xp.counts()
    g = count_groups(c)
    return (
        f"{xp.name}: {g['done']} done, {g['running']} running, "
        f"{g['failed'] + g['cancelled']} failed, {g['waiting']} waiting ({sum(c.values())} jobs)"
    )


WriteState = Callable[[str], Awaitable[None]]
"""Writes the experiment's state.json with the given status (`"running"`)."""


async def follow(xp: Experiment, write_state: WriteState) -> None:
    """Runs for the experiment's life in its task group; cancelled when it closes. Reads
    the experiment through its public face (`name`, `jobs`, `counts()`) only."""
    shown = os.environ.get(DISPLAY_ENV, "1") != "0"
    if shown and _in_jupyter():
        await _notebook(xp, write_state)
    elif shown and sys.stdout.isatty():
        await _live(xp, write_state)
    else:
        await _plain(xp, write_state)


def _in_jupyter() -> bool:
    """In a Jupyter kernel (IPython's ZMQ shell), where a cell's output is HTML. Asked of
    IPython itself, already imported there, rather than of rich: importing rich is file
    reading on the event loop's thread."""
    if "ipykernel" not in sys.modules:
        return False
    ipython: Any = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


async def _plain(xp: Experiment, write_state: WriteState) -> None:
    last_log = last_state = time.monotonic()
    while True:
        await anyio.sleep(0.5)
        now = time.monotonic()
        if now - last_state >= _STATE_INTERVAL:
            last_state = now
            await write_state("running")
        if now - last_log >= _LOG_INTERVAL and xp.jobs:
            last_log = now
            _log.info("%s", summary(xp))


def _render(xp: Experiment) -> Any:
    from rich.console import Group, NewLine
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    c = xp.counts()
    total = sum(c.values())
    g = count_groups(c)
    finished = g["done"] + g["failed"] + g["cancelled"]
    header = Text(summary(xp), style="bold")
    bar = ProgressBar(total=max(total, 1), completed=finished, width=60)
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("job")
    table.add_column("progress", justify="right")
    table.add_column("desc")
    running = [j for j in xp.jobs if j.state is JobState.RUNNING]
    for job in running[:20]:
        pct = f"{job.progress * 100:5.1f}%" if job.progress is not None else "  ... "
        table.add_row(f"{job.type_name}/{job.identifier[:8]}", pct, job.progress_desc or "")
    if len(running) > 20:
        table.add_row(f"... and {len(running) - 20} more", "", "")
    # A progress bar ends without a newline: without one, the first job's row would
    # continue the bar's line and be cut at the terminal's width.
    return Group(header, bar, NewLine(), table)


async def _live(xp: Experiment, write_state: WriteState) -> None:
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
                    await write_state("running")
        finally:
            live.update(_render(xp), refresh=True)  # leave the final counts on screen


class _Snapshot:
    """The live view as a notebook shows it: rich's rendering, as HTML and as text."""

    def __init__(self, renderable: Any) -> None:
        import io

        from rich.console import Console

        console = Console(
            file=io.StringIO(), record=True, width=100, force_jupyter=False, color_system="standard"
        )
        console.print(renderable)
        self.text = console.export_text(clear=False)
        self.html = console.export_html(
            inline_styles=True,
            code_format='<pre style="white-space: pre; font-family: monospace">{code}</pre>',
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html}


async def _notebook(xp: Experiment, write_state: WriteState) -> None:
    """In the cell that opened the experiment: one output, updated in place (no widget
    library and no thread, unlike rich's `Live`, which needs ipywidgets there)."""
    import importlib

    display: Any = importlib.import_module("IPython.display").display
    handle = display(_Snapshot(_render(xp)), display_id=True)
    last_state = time.monotonic()
    try:
        while True:
            await anyio.sleep(0.5)
            handle.update(_Snapshot(_render(xp)))
            now = time.monotonic()
            if now - last_state >= _STATE_INTERVAL:
                last_state = now
                await write_state("running")
    finally:
        handle.update(_Snapshot(_render(xp)))  # leave the final counts in the cell
