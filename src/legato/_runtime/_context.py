"""`RunContext`: all that running a job needs of its experiment, and all it may do to it.

The experiment builds one when it opens and hands it to every `run_job` (`_runner.py`),
which sees nothing else of the experiment: what to launch (the default launcher, the
environment, the worker's command line, the params), and the scheduler's few operations
a run makes (give its grant back, go back in line, the line of a shared main directory).
A run tells the experiment that its job became final through the job itself
(`_job.finish`), never through this context.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .._core._identity import current_workdir
from .._core._serialize import dumps
from .._launchers._launcher import Launcher, Session
from ._job import Job
from ._resources import GPU, Grant
from ._scheduler import Scheduler

__all__ = ["RunContext"]


class RunContext:
    """One experiment's side of running its jobs.

    Args:
        name: The experiment's name, recorded in each job's state.json.
        workdir: The workdir: paths in params count relative to it.
        launcher: Where a job submitted without a launcher of its own runs.
        env: The environment of every job's process (`CUDA_VISIBLE_DEVICES` aside).
        session: What launchers keep for this experiment (a warm server).
        scheduler: The experiment's line of jobs.
    """

    __slots__ = ("_cuda", "_scheduler", "env", "launcher", "name", "session", "workdir")

    def __init__(
        self,
        *,
        name: str,
        workdir: Path,
        launcher: Launcher,
        env: dict[str, str],
        session: Session,
        scheduler: Scheduler,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.launcher = launcher
        self.env = env
        self.session = session
        self._scheduler = scheduler
        self._cuda = GPU in scheduler.pool.totals

    def env_for(self, grant: Grant) -> dict[str, str]:
        """The environment of a job that holds `grant`: its GPUs are the ones it sees."""
        if not self._cuda:
            return self.env
        return {**self.env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, grant.gpus))}

    def argv(self, job_dir: Path) -> list[str]:
        """The command line of a job's process."""
        return [sys.executable, "-m", "legato._jobside._worker", str(job_dir)]

    def params(self, job: Job) -> bytes:
        """The job's params file: every configuration its task reaches, paths inside the
        workdir relative to it. Disk-free but long for a long chain: for a thread."""
        token = current_workdir.set(self.workdir)
        try:
            return dumps(job.task)
        finally:
            current_workdir.reset(token)

    def release(self, grant: Grant) -> None:
        """Give back a run's grant, once. The pool ignores a second release, which would
        hide a runner that lost track of what it holds: here it raises."""
        if grant.released:
            raise RuntimeError("legato released a job's slot twice")
        self._scheduler.release(grant)

    def requeue(self, job: Job) -> None:
        """The job must run here after all: READY, first in line."""
        self._scheduler.requeue(job)

    def main_of(self, job: Job) -> Path | None:
        """The main task directory whose lock the job's run must take, if it shares one."""
        return self._scheduler.main_of(job)

    def main_released(self, main: Path) -> None:
        """A run let go of `main`'s lock (or never got it)."""
        self._scheduler.main_released(main)

    def stop(self) -> None:
        """Start nothing more: the experiment is being left."""
        self._scheduler.stop()
