"""The `Launcher` protocol: the one seam between the scheduler and where jobs run.

The scheduler decides *when* a job runs (dependencies, slots, resources, the job lock);
a launcher decides *where* and *how*: it starts the job entry point
(`python -m legato._jobside._worker <job dir>`), reports progress, and returns how the process
ended. Whatever the launcher, the job process writes the same job directory, so the
outcome (DONE or not) is always read from the directory's markers, never from the launcher.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["Exit", "LaunchSpec", "Launcher", "Session", "killpg"]


@dataclass(frozen=True)
class Exit:
    """How a job's process ended, as far as the launcher knows."""

    exit_code: int | None = None
    """The process's exit status, when it exited."""
    signal: int | None = None
    """The signal that killed it, when one did."""
    reason: str | None = None
    """Set when the launcher knows better than the exit status (sbatch rejected the job)."""
    interruption: str | None = None
    """Set, with `reason`, when the process was stopped before it could record why (SIGKILL
    at a time limit, a lost node): "timeout" or "preempted". The job may then run again,
    as one whose attempt recorded that interruption."""
    cancelled: bool = False
    """Set when the cluster says the job was cancelled there (a bare `scancel`): a SIGTERM
    that the job cannot tell from a preemption, which must not make it run again."""
    done: bool = False
    """Set when the launcher saw the job's `done` marker in its directory once the process
    had ended (the warm server looks): the job is DONE, with no further look needed."""


class Session:
    """What launchers keep for one experiment's jobs (a warm server), for as long as the
    experiment: the experiment closes it when it ends."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}

    def get(self, key: str, factory: Callable[[], Any]) -> Any:
        """The item under `key`, made by `factory()` the first time; one with an
        `async aclose()` method is closed with the session."""
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = factory()
        return item

    async def aclose(self) -> None:
        items, self._items = list(self._items.values()), {}
        for item in reversed(items):
            close = getattr(item, "aclose", None)
            if close is not None:
                await close()


@dataclass
class LaunchSpec:
    """Everything a launcher needs to start one job."""

    job_dir: Path
    """The job directory: the process's working directory."""
    argv: list[str]
    """The command to run, `python -m legato._jobside._worker <job dir>`, with the experiment's
    interpreter."""
    env: dict[str, str]
    """The process's whole environment: the experiment's, its import path as `PYTHONPATH`,
    `LEGATO_WORKDIR`, `LEGATO_EXPERIMENT`, and `CUDA_VISIBLE_DEVICES` when the experiment
    declares GPUs."""
    requires: dict[str, int]
    """The counted resources the job holds (`submit(requires=...)`), for a launcher that
    asks its own scheduler for them."""
    lock_fd: int | None = None
    """An fd holding the job's flock; a local child inherits it so the lock outlives a
    killed experiment for as long as the job runs."""
    main_lock_fd: int | None = None
    """An fd holding the flock of the job's main task directory, when its task has
    sub-parameters; a local child inherits it too."""
    on_started: Callable[[dict[str, Any]], None] = field(default=lambda info: None)
    """Call once the job is queued or running, with what identifies the run (pid, SLURM id)."""
    on_progress: Callable[[float, str | None], None] = field(default=lambda f, d: None)
    """Call with each `legato.progress()` report the job makes (fraction, description)."""
    on_done: Callable[[], None] = field(default=lambda: None)
    """Call when the job's process says it wrote its `done` marker and is exiting (a warm
    local job does): the job is DONE, and its dependents may start before `launch`
    returns, which waits for the process to be gone."""
    session: Session | None = None
    """The experiment's `Session`, where a launcher keeps what outlives one job."""


@runtime_checkable
class Launcher(Protocol):
    """Starts job processes. Implementations: `LocalLauncher`, `SlurmLauncher`."""

    name: str
    """Recorded in the job's state.json as "launcher"."""

    async def check(self) -> None:
        """Raise a clear error if this launcher cannot work here (called at experiment start)."""

    async def launch(self, spec: LaunchSpec) -> Exit:
        """Run the job to its end and say how it ended.

        On cancellation, end the job (terminate, then kill after a grace period) before
        re-raising; never leave it running.
        """

    async def adopt(self, spec: LaunchSpec, info: dict[str, Any]) -> Exit | None:
        """Follow a run that a previous (crashed) experiment started, described by the
        `info` it recorded; None when that run is gone and the job must be launched anew."""


def killpg(pgid: int, sig: int) -> None:
    """Signal a job's process group; nothing if it is gone (or, after a pid was reused, not
    ours to signal)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
