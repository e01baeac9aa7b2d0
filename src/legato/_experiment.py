"""`experiment()`: an async context manager that owns a task group running jobs."""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from msgspec.structs import force_setattr

from ._config import ConfigBase
from ._display import follow
from ._errors import ExperimentFailed, LegatoError, NoExperimentError
from ._graph import dependencies
from ._identity import current_workdir
from ._job import Job, JobState
from ._launcher import Launcher
from ._local import LocalLauncher
from ._resources import Grant, ResourcePool
from ._runner import run_job
from ._scheduler import Scheduler
from ._serialize import dumps
from ._task import Task, has_output_config, mark_output
from ._workdir import DONE, JOBS_LIST, STATE, experiment_dir, host_name, job_dir, write_json

__all__ = ["Experiment", "current_experiment", "experiment"]

logging.getLogger("legato").addHandler(logging.NullHandler())
_LOG_LEVELS = {JobState.DONE: logging.DEBUG, JobState.FAILED: logging.WARNING}

_current: contextvars.ContextVar[Experiment | None] = contextvars.ContextVar(
    "legato_experiment", default=None
)


def current_experiment() -> Experiment:
    """The innermost experiment open in this task, or `NoExperimentError`."""
    xp = _current.get()
    if xp is None:
        raise NoExperimentError(
            "submit() needs an open experiment: use `async with experiment(workdir, name):`"
        )
    return xp


class Experiment:
    """What `async with experiment(...) as xp` gives: submitted jobs and their states.

    Created by `experiment()`, never directly. It outlives its block: after the block,
    `xp.jobs` holds every job in its final state.
    """

    def __init__(
        self,
        workdir: Path,
        name: str,
        max_jobs: int,
        resources: Mapping[str, int] | None,
        launcher: Launcher,
    ) -> None:
        self.workdir = workdir
        """The absolute workdir that job directories are under."""
        self.name = name
        """The experiment's name: its record is `<workdir>/experiments/<name>/`."""
        self.launcher = launcher
        """The launcher of every job submitted without one of its own."""
        self.path = experiment_dir(workdir, name)
        """The experiment's record directory (`jobs.txt`, `state.json`)."""
        self._pool = ResourcePool(max_jobs, resources)
        self._scheduler = Scheduler(self._pool, self._start, self._job_finished)
        self._jobs: dict[str, Job] = {}
        self._pending: list[Job] = []  # submitted, not checked against the disk yet
        self._draining = False
        self._unfinished = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._tg: TaskGroup | None = None
        self._log = logging.getLogger("legato")
        self.started = time.time()
        """When the experiment was opened (seconds since the epoch)."""
        self._job_env = _job_env(workdir, name)

    @property
    def jobs(self) -> list[Job]:
        """Every job submitted to this experiment, in submission order."""
        return list(self._jobs.values())

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state, keyed by `JobState` value (`"done"`), zeros
        included: what the live view and `legato status` show."""
        counts = {state.value: 0 for state in JobState}
        for job in self._jobs.values():
            counts[job.state.value] += 1
        return counts

    async def submit(
        self,
        task: Task,
        *,
        launcher: Launcher | None = None,
        requires: Mapping[str, int] | None = None,
    ) -> Any:
        """Submit `task` to this experiment rather than to the innermost open one.

        `await task.submit()` is the usual spelling; this one names the experiment, for
        code that keeps several open or submits from a task the experiment's block did not
        start. Arguments and result are those of `Task.submit`.
        """
        if not isinstance(task, Task):
            raise TypeError(f"submit() takes a Task, not {type(task).__name__}")
        if self._tg is None:
            raise LegatoError(f"experiment {self.name!r} is closed")
        if launcher is not None and not isinstance(launcher, Launcher):
            raise TypeError(f"launcher must implement legato.Launcher, got {launcher!r}")
        amounts = self._pool.check(requires)
        token = current_workdir.set(self.workdir)
        try:
            identifier = task.__identifier__
            deps = [_job_of(dep) for dep in dependencies(task)]
        finally:
            current_workdir.reset(token)
        job = self._jobs.get(identifier)
        path = job.path if job else job_dir(self.workdir, task.__legato_type_name__, identifier)
        _resolve_paths(task, path)
        if job is None:
            job = Job(task, identifier, path, deps, dict(requires or {}), launcher)
            job._amounts = amounts
            self._jobs[identifier] = job
            self._unfinished += 1
            self._idle = anyio.Event() if self._idle.is_set() else self._idle
            self._pending.append(job)
            if not self._draining:
                self._draining = True
                self._tg.start_soon(self._drain)
        task.__dict__["__legato_job__"] = job
        output = task.config() if has_output_config(task) else task
        await anyio.lowlevel.checkpoint()
        return mark_output(output, task)

    async def _drain(self) -> None:
        """Check submitted jobs against the disk in batches: one thread hop per batch
        keeps resubmitting a finished sweep fast."""
        try:
            while self._pending:
                await anyio.lowlevel.checkpoint()
                batch, self._pending = self._pending, []
                done = await anyio.to_thread.run_sync(self._check_batch, batch)
                for i, (job, is_done) in enumerate(zip(batch, done, strict=True)):
                    if i % 256 == 255:
                        self._scheduler.settle()
                        await anyio.lowlevel.checkpoint()  # keep the loop responsive
                    if is_done:
                        job._finish(JobState.DONE)
                        self._job_finished(job)
                    else:
                        self._scheduler.add(job)
                self._scheduler.settle()
        finally:
            self._draining = False

    def _start(self, job: Job, grant: Grant) -> None:
        assert self._tg is not None
        self._tg.start_soon(run_job, self, job, grant, name=f"legato job {job}")

    async def _cancel_unstarted(self) -> None:
        """After the task group: jobs that never got a slot end CANCELLED."""
        for i, job in enumerate(self._jobs.values()):
            if not job.state.final:
                job._finish(JobState.CANCELLED, "cancelled")
                self._job_finished(job)
            if i % 1024 == 1023:
                await anyio.lowlevel.checkpoint()

    def _check_batch(self, batch: list[Job]) -> list[bool]:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / JOBS_LIST, "a", encoding="utf-8") as f:
            f.writelines(f"{job.type_name}/{job.identifier}\n" for job in batch)
        exists = os.path.exists
        done = [exists(job.path / DONE) for job in batch]
        for job, is_done in zip(batch, done, strict=True):
            if not is_done:  # the directory shows the job to `legato jobs` while it waits
                os.makedirs(job.path, exist_ok=True)
        return done

    def _job_finished(self, job: Job) -> None:
        self._unfinished -= 1
        level = _LOG_LEVELS.get(job.state, logging.INFO)
        self._log.log(level, "%s/%s %s", job.type_name, job.identifier[:12], job.state.name)
        if self._unfinished == 0:
            self._idle.set()

    async def wait(self) -> None:
        """Wait until every job submitted so far is final (failures do not raise here)."""
        while self._unfinished:
            await self._idle.wait()

    def _params(self, job: Job) -> bytes:
        token = current_workdir.set(self.workdir)
        try:
            return dumps(job.task)
        finally:
            current_workdir.reset(token)

    def _worker_argv(self, path: Path) -> list[str]:
        return [sys.executable, "-m", "legato._worker", str(path)]

    def failed(self) -> list[Job]:
        """The jobs that ended FAILED, DEPENDENCY_FAILED or CANCELLED so far, in submission
        order: those that `ExperimentFailed` names."""
        bad = (JobState.FAILED, JobState.DEPENDENCY_FAILED, JobState.CANCELLED)
        return [job for job in self._jobs.values() if job.state in bad]

    def _state(self, status: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": os.getpid(),
            "host": host_name(),
            "started": self.started,
            "status": status,
            "updated": time.time(),
            "counts": self.counts(),
        }

    async def _write_state(self, status: str) -> None:
        state = self._state(status)

        def write() -> None:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self.path / STATE, state, durable=False)

        await anyio.to_thread.run_sync(write)

    def __repr__(self) -> str:
        return f"<Experiment {self.name!r} at {self.workdir} ({len(self._jobs)} jobs)>"


def _job_of(task: ConfigBase) -> Job:
    job: Job = task.__dict__["__legato_job__"]
    return job


def _resolve_paths(task: Task, path: Path) -> None:
    task.__dict__["__legato_taskdir__"] = path
    plan = type(task).__legato_plan__ or type(task)._legato_compile()
    for name, generator in plan.pathgens.items():
        relative = generator.name if isinstance(generator.name, str) else generator.name(task)
        force_setattr(task, name, path / relative)


def _job_env(workdir: Path, name: str) -> dict[str, str]:
    """The job inherits the environment and the import path of the experiment."""
    env = dict(os.environ)
    paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["LEGATO_WORKDIR"] = str(workdir)
    env["LEGATO_EXPERIMENT"] = name
    env.pop("LEGATO_PROGRESS_FD", None)
    return env


@asynccontextmanager
async def experiment(
    workdir: str | os.PathLike[str],
    name: str,
    *,
    max_jobs: int | None = None,
    resources: Mapping[str, int] | None = None,
    launcher: Launcher | None = None,
    raise_on_failure: bool = True,
) -> AsyncIterator[Experiment]:
    """Open an experiment, `async with experiment(workdir, name) as xp:`, that runs the
    tasks submitted in its block as jobs under `workdir`.

    The block owns the jobs: leaving it normally waits for every job, and an exception or
    a cancellation in it (Ctrl-C, a timeout) terminates the running ones instead, so no
    job outlives it. It runs in any anyio event loop (asyncio or trio) and never blocks it.

    Args:
        workdir: Where job directories go (`jobs/<type name>/<identifier>`): experiments
            that share a workdir share finished jobs. `~` is expanded.
        name: Names the experiment's record, `<workdir>/experiments/<name>/`; a plain
            name (no `/`, not starting with `.`).
        max_jobs: How many jobs run (or wait in a cluster's queue) at once; when None,
            the launcher's `default_max_jobs` if it has one (500 for `SlurmLauncher`),
            else `os.cpu_count()`.
        resources: Counted resources that jobs take with `submit(requires=...)`, as
            `{"gpu": 2, "mem_gb": 64}`; `"gpu"` units are device indices, handed to jobs
            in `CUDA_VISIBLE_DEVICES`.
        launcher: Where jobs run unless `submit(launcher=...)` says otherwise; a
            `LocalLauncher()` when None. Its `check()` runs here, so a launcher that cannot
            work fails before anything is submitted.
        raise_on_failure: Raise `ExperimentFailed` on leaving the block if any job did not
            end DONE; with False, look at `xp.jobs` instead.

    Raises:
        ExperimentFailed: On leaving the block, when jobs failed and `raise_on_failure`.
        LauncherError: When the launcher cannot work here.
        ResourceError: When `max_jobs` or `resources` are not positive/non-negative ints.
        ValueError: When `name` is not a plain name.
        LegatoError: When opened inside a running job (a script without a
            `if __name__ == "__main__":` guard).
    """
    if os.environ.get("LEGATO_WORKER"):
        raise LegatoError(
            "experiment() was opened inside a running job: guard the script's entry point "
            "with `if __name__ == '__main__':` so jobs can import it"
        )
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"experiment name must be a plain non-empty name, got {name!r}")
    root = Path(workdir).expanduser().absolute()  # noqa: ASYNC240 - no I/O
    launcher = launcher if launcher is not None else LocalLauncher()
    if not isinstance(launcher, Launcher):
        raise TypeError(f"launcher must implement legato.Launcher, got {launcher!r}")
    if max_jobs is None:
        # Local jobs share this machine's CPUs; a cluster launcher says what suits it.
        max_jobs = getattr(launcher, "default_max_jobs", None) or os.cpu_count() or 1
    xp = Experiment(root, name, max_jobs, resources, launcher)
    await launcher.check()
    await xp._write_state("running")
    token = _current.set(xp)
    wtoken = current_workdir.set(root)
    status = "cancelled"
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            xp._tg = tg
            tg.start_soon(follow, xp)
            try:
                yield xp
                await xp.wait()
                status = "failed" if xp.failed() else "done"
            except BaseException as exc:
                body_error = exc
            xp._scheduler.stop()
            tg.cancel_scope.cancel()
        if body_error is not None:
            raise body_error
    finally:
        xp._scheduler.stop()
        xp._tg = None
        _current.reset(token)
        current_workdir.reset(wtoken)
        with anyio.CancelScope(shield=True):
            await xp._cancel_unstarted()
            await xp._write_state(status)
    failed = xp.failed()
    if failed and raise_on_failure:
        raise ExperimentFailed(
            name,
            [(j.type_name, j.identifier, j.error_log, j.failure_reason or "") for j in failed],
        )
