"""`open_experiment()`: an experiment that stays open across the cells of a notebook.

`async with experiment(...)` works in one cell (Jupyter runs cells in an asyncio loop,
where top-level `await` works). A block cannot span cells, though: each cell runs as its
own asyncio task, and a task group must be left by the task that entered it. So here the
experiment's block runs in a task of its own, started in the kernel's event loop, and
stays open until `await xp.close()`: a cell submits jobs, the next cell submits more
while the first ones run, and a later one reads their results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from .._errors import LegatoError
from .._launchers._launcher import Launcher
from ._experiment import Experiment, close_with, experiment, opened

__all__ = ["open_experiment"]


async def open_experiment(
    workdir: str | os.PathLike[str],
    name: str,
    *,
    max_jobs: int | None = None,
    resources: Mapping[str, int] | None = None,
    launcher: Launcher | None = None,
    raise_on_failure: bool = True,
    keep_finished: int | None = 10_000,
    on_default_change: Literal["raise", "warn"] = "raise",
) -> Experiment:
    """Open an experiment that stays open until `await xp.close()`: for notebooks.

    Takes the arguments of `experiment()`. Until it is closed, `await task.submit()`
    outside any `async with experiment()` block submits to it (to the latest opened, if
    several are open; `await xp.submit(task)` names one); its live view shows in the
    cell that opened it. `await xp.close()` does what leaving an
    `async with experiment(...)` block does: it waits for every job, and raises
    `ExperimentFailed` if some failed (and `raise_on_failure`);
    `await xp.close(cancel=True)` terminates the running jobs instead.

    Runs in an asyncio event loop (Jupyter's); elsewhere, prefer `async with experiment()`.

    Raises:
        LegatoError: Outside an asyncio event loop.
        LauncherError, ResourceError, ValueError: As `experiment()` does.
    """
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise LegatoError(
            "open_experiment() runs in an asyncio event loop (a Jupyter kernel's, or "
            "asyncio.run); elsewhere use `async with experiment(...)`"
        ) from None
    ready: asyncio.Future[Experiment] = loop.create_future()
    closing = asyncio.Event()

    async def hold() -> None:
        try:
            async with experiment(
                workdir,
                name,
                max_jobs=max_jobs,
                resources=resources,
                launcher=launcher,
                raise_on_failure=raise_on_failure,
                keep_finished=keep_finished,
                on_default_change=on_default_change,
            ) as xp:
                ready.set_result(xp)
                await closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
                return
            raise

    task = loop.create_task(hold(), name=f"legato experiment {name}")
    xp = await ready

    async def close(cancel: bool) -> None:
        if cancel:
            task.cancel()
        closing.set()
        try:
            await task
        except asyncio.CancelledError:
            if not cancel:
                raise
        finally:
            if xp in opened:
                opened.remove(xp)

    close_with(xp, close)
    opened.append(xp)
    return xp
