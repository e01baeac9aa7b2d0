"""`experiment()`: an async context manager that owns a task group running jobs."""

from __future__ import annotations

import contextvars
import datetime
import errno
import logging
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from .._core._config import ConfigBase
from .._core._defaults import DefaultChanged, DefaultChangedWarning, changed_defaults, read_params
from .._core._graph import dependencies
from .._core._identity import current_workdir
from .._core._ship import check as ship_check
from .._core._task import (
    Task,
    attempt_limits,
    check_executable,
    has_output_config,
    has_subparams,
    mark_output,
    no_experiment,
    resolve_paths,
    set_submitter_lookup,
)
from .._errors import LegatoError
from .._jobdir._experimentdir import RUN_HEADER, start_run_record, write_experiment_state
from .._jobdir._files import append_lines, host_name
from .._jobdir._job import JobDir
from .._jobdir._layout import JOBS_LIST, PARAMS, experiment_dir, job_dir
from .._jobdir._maindir import record_users
from .._jobdir._names import (
    EXPERIMENT_ENV,
    JOB_KEY,
    PROGRESS_FD_ENV,
    WORKDIR_ENV,
    WORKER_ENV,
)
from .._launchers._launcher import Launcher, Session
from .._launchers._local import LocalLauncher
from ._context import RunContext
from ._display import follow
from ._job import Job, JobState, cause, finish
from ._resources import Grant, ResourcePool
from ._runner import record_unrun, run_job
from ._scheduler import Scheduler

__all__ = ["Experiment", "ExperimentFailed", "close_with", "current_experiment", "experiment"]

logging.getLogger("legato").addHandler(logging.NullHandler())
_LOG_LEVELS = {JobState.DONE: logging.DEBUG, JobState.FAILED: logging.WARNING}
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
_RERUN = (JobState.FAILED, JobState.CANCELLED, JobState.DEPENDENCY_FAILED)

_current: contextvars.ContextVar[Experiment | None] = contextvars.ContextVar(
    "legato_experiment", default=None
)


opened: list[Experiment] = []
"""Experiments of `open_experiment()` still open, latest last: what `submit()` uses
outside any `async with experiment()` block (a notebook cell runs in a task of its own,
so no context variable set in one cell reaches the next)."""


def current_experiment() -> Experiment:
    """The innermost experiment open in this task, else the latest of
    `open_experiment()` still open; or `NoExperimentError`."""
    xp = _current.get()
    if xp is None and opened:
        xp = opened[-1]
    if xp is None:
        no_experiment()
    return xp


set_submitter_lookup(current_experiment)


class ExperimentFailed(LegatoError):
    """An experiment ended with failed jobs and `raise_on_failure` was set.

    Raised when the `async with experiment(...)` block exits, after every other job ended,
    so that one failure never hides the others.

    Attributes:
        failed: One `(type name, identifier, error log, failure reason)` tuple per job that
            did not end DONE (FAILED, DEPENDENCY_FAILED or CANCELLED), in submission order.
    """

    failed: list[tuple[str, str, Path, str]]

    def __init__(self, name: str, failed: list[tuple[str, str, Path, str]], more: int = 0) -> None:
        self.failed = failed
        lines = [
            f"  {type_name}/{ident[:12]}: {reason or 'failed'} (see {log})"
            for type_name, ident, log, reason in failed
        ]
        if more:
            lines.append(
                f"  ... and {more} more that the experiment no longer keeps in memory "
                "(legato jobs ls --state failed)"
            )
        count = len(failed) + more
        super().__init__(f"experiment {name!r}: {count} job(s) failed\n" + "\n".join(lines))


class Experiment:
    """What `async with experiment(...) as xp` gives: submitted jobs and their states.

    Created by `experiment()`, never directly. It outlives its block: after the block,
    `xp.jobs` holds its jobs in their final states (all of them, unless more than
    `keep_finished` ended: then the latest `keep_finished`).
    """

    def __init__(
        self,
        workdir: Path,
        name: str,
        max_jobs: int,
        resources: Mapping[str, int] | None,
        launcher: Launcher,
        keep_finished: int | None = None,
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
        self._scheduler = Scheduler(self._pool, self._start)
        self._on_final = self._job_finished  # every job's hook (one bound method for all)
        self._jobs: dict[str, Job] = {}  # unfinished ones, and the latest finished ones
        self._keep = keep_finished
        self._finished: deque[Job] = deque()  # in the order they ended (some replaced since)
        self._forgotten = {state.value: 0 for state in JobState}  # final, out of `_jobs`
        # Submitted, not checked against the disk yet; with whether jobs.txt needs a line.
        self._pending: list[tuple[Job, bool]] = []
        self._records: list[tuple[Path, dict[str, Any]]] = []  # for jobs that never ran
        self._recording = False
        self._run_opened = False
        self._unwritable: OSError | None = None
        self._draining = False
        self._unfinished = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._tg: TaskGroup | None = None
        self._log = logging.getLogger("legato")
        self.started = time.time()
        """When the experiment was opened (seconds since the epoch)."""
        self._closer: Callable[[bool], Awaitable[None]] | None = None  # open_experiment's
        self._session = Session()  # what launchers keep for this experiment (a warm server)
        self._run = RunContext(
            name=name,
            workdir=workdir,
            launcher=launcher,
            env=_job_env(workdir, name),
            session=self._session,
            scheduler=self._scheduler,
        )

    @property
    def jobs(self) -> list[Job]:
        """The jobs submitted to this experiment, in submission order: every unfinished
        one, and the finished ones but for the oldest beyond `keep_finished` (a job
        submitted again is listed once, at its latest submission)."""
        return list(self._jobs.values())

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state, keyed by `JobState` value (`"done"`), zeros
        included: what the live view and `legato status` show. Finished jobs that
        `xp.jobs` no longer lists are counted too."""
        counts = dict(self._forgotten)
        for job in self._jobs.values():
            counts[job.state.value] += 1
        return counts

    async def submit(
        self,
        task: Task,
        *,
        launcher: Launcher | None = None,
        requires: Mapping[str, int] | None = None,
        retries: int = 0,
        timeout: float | datetime.timedelta | None = None,  # noqa: ASYNC109 - the job's, not this call's
        max_preemptions: int = 100,
    ) -> Any:
        """Submit `task` to this experiment rather than to the innermost open one.

        `await task.submit()` is the usual spelling; this one names the experiment, for
        code that keeps several open or submits from a task the experiment's block did not
        start. Arguments and result are those of `Task.submit`.
        """
        if not isinstance(task, Task):
            raise TypeError(f"submit() takes a Task, not {type(task).__name__}")
        check_executable(task)
        if self._tg is None:
            raise LegatoError(f"experiment {self.name!r} is closed")
        if launcher is not None and not isinstance(launcher, Launcher):
            raise TypeError(f"launcher must implement legato.Launcher, got {launcher!r}")
        amounts = self._pool.check(requires)
        limits = attempt_limits(retries, timeout, max_preemptions)
        token = current_workdir.set(self.workdir)
        try:
            identifier = task.__identifier__
            deps = [self._latest(_job_of(dep)) for dep in dependencies(task)]
        finally:
            current_workdir.reset(token)
        ship_check(task)  # a class its job cannot import fails here, not in the job
        job = self._jobs.get(identifier)
        # A job that ended otherwise than DONE runs again; one that waits or runs is the
        # same job; a DONE one too, unless its directory was removed since (`legato jobs
        # rm`): a stat, in a thread, that only a job submitted again pays.
        rerun = job is not None and job.state in _RERUN
        if job is not None and job.state is JobState.DONE:
            rerun = not await anyio.to_thread.run_sync(JobDir(job.path).is_done)
            if self._tg is None:
                raise LegatoError(f"experiment {self.name!r} is closed")
            if self._jobs.get(identifier) is not job:  # submitted meanwhile: start over
                return await self.submit(
                    task,
                    launcher=launcher,
                    requires=requires,
                    retries=retries,
                    timeout=timeout,
                    max_preemptions=max_preemptions,
                )
        path = job.path if job else job_dir(self.workdir, task.__legato_type_name__, identifier)
        resolve_paths(task, path)
        if job is None or rerun:
            listed = job is not None
            if job is not None:
                del self._jobs[identifier]  # listed again at its new submission
            job = Job(
                task,
                identifier,
                path,
                deps,
                dict(requires or {}),
                launcher,
                amounts=amounts,
                on_final=self._on_final,
            )
            job.retries, job.timeout, job.max_preemptions = limits
            self._jobs[identifier] = job
            self._unfinished += 1
            self._idle = anyio.Event() if self._idle.is_set() else self._idle
            self._pending.append((job, not listed))
            if not self._draining:
                self._draining = True
                self._tg.start_soon(self._drain)
        task.__dict__[JOB_KEY] = job
        output = task.config() if has_output_config(task) else task
        await anyio.lowlevel.checkpoint()
        return mark_output(output, task)

    def _latest(self, dep: Job) -> Job:
        """The job a dependency stands for now: its latest submission here, if any (a
        failed dependency submitted again is waited for again)."""
        latest = self._jobs.get(dep.identifier)
        return latest if latest is not None and latest.type_name == dep.type_name else dep

    async def _drain(self) -> None:
        """Check submitted jobs against the disk in batches: one thread hop per batch
        keeps resubmitting a finished sweep fast."""
        try:
            while self._pending:
                await anyio.lowlevel.checkpoint()
                batch, self._pending = self._pending, []
                done = await anyio.to_thread.run_sync(self._check_batch, batch)
                for i, ((job, _), is_done) in enumerate(zip(batch, done, strict=True)):
                    if i % 256 == 255:
                        self._scheduler.settle()
                        await anyio.lowlevel.checkpoint()  # keep the loop responsive
                    if is_done is True:
                        self._reuse(job)
                    elif is_done is False:
                        self._scheduler.add(job)
                    else:  # its directory cannot be made: it cannot run
                        finish(job, JobState.FAILED, is_done)
                self._scheduler.settle()
        finally:
            self._draining = False

    def _start(self, job: Job, grant: Grant) -> None:
        assert self._tg is not None
        self._tg.start_soon(run_job, self._run, job, grant, name=f"legato job {job}")

    async def _cancel_unstarted(self) -> None:
        """After the task group: jobs that never got a slot end CANCELLED, and say so in
        their directories."""
        why = "cancelled before it started: its experiment ended first"
        for i, job in enumerate(list(self._jobs.values())):
            if not job.state.final:
                finish(job, JobState.CANCELLED, why)
                self._records.append((job.path, {"state": "cancelled", "reason": why}))
            if i % 1024 == 1023:
                await anyio.lowlevel.checkpoint()
        records, self._records = self._records, []
        if records:
            await anyio.to_thread.run_sync(_write_records, records)

    def _check_batch(self, batch: list[tuple[Job, bool]]) -> list[bool | str]:
        """Per job: True if DONE on disk, False if it must run (its directory made), or
        why it cannot run (its directory cannot be made)."""
        self._list_jobs([job for job, listed in batch if listed])
        done: list[bool | str] = [JobDir(job.path).is_done() for job, _ in batch]
        self._check_defaults([job for job, _ in batch], done)
        for i, (job, _) in enumerate(batch):
            if not done[i]:  # the directory shows the job to `legato jobs` while it waits
                try:
                    os.makedirs(job.path, exist_ok=True)
                except OSError as exc:
                    done[i] = f"cannot make its job directory {job.path}: {exc.strerror}"
        try:
            users: dict[Path, list[str]] = {}
            for job, _ in batch:
                if has_subparams(job.task):
                    users.setdefault(job.main_path, []).append(f"{job.type_name}/{job.identifier}")
            record_users(users)
        except OSError as exc:  # a read-only workdir: nothing of theirs can run here anyway
            if exc.errno not in _READ_ONLY:
                raise
        return done

    def _list_jobs(self, jobs: list[Job]) -> None:
        """Add the jobs to the experiment's record of its latest run (jobs.txt). A
        workdir that cannot be written is fine as long as nothing has to run."""
        if not jobs or self._unwritable is not None:
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if not self._run_opened:
                self._run_opened = True
                header = (
                    f"{RUN_HEADER}{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(self.started))}Z"
                    f" pid {os.getpid()} host {host_name()}"
                )
                start_run_record(self.path / JOBS_LIST, header)
            append_lines(
                self.path / JOBS_LIST, (f"{job.type_name}/{job.identifier}\n" for job in jobs)
            )
        except OSError as exc:
            if exc.errno not in _READ_ONLY:
                raise
            self._unwritable = exc

    _on_default_change = "raise"
    _changed_defaults: dict[str, DefaultChanged] | None = None

    def _check_defaults(self, batch: list[Job], done: list[bool | str]) -> None:
        """The default-change guard, in `_check_batch`'s thread: of the jobs DONE on disk,
        note those whose params record a default that their class now declares otherwise
        (docs/how-to/failures.md)."""
        for job, is_done in zip(batch, done, strict=True):
            params = read_params(f"{job.path}/{PARAMS}") if is_done is True else None
            if params is not None:
                changed = changed_defaults(params, f"job {job.type_name}/{job.identifier[:12]}")
                if changed is not None:
                    if self._changed_defaults is None:
                        self._changed_defaults = {}
                    self._changed_defaults[job.identifier] = changed

    def _reuse(self, job: Job) -> None:
        """A job DONE on disk ends DONE here, unless a default changed since it ran: then
        it ends FAILED, untouched, unless the experiment was told to warn instead."""
        changed = self._changed_defaults and self._changed_defaults.pop(job.identifier, None)
        if changed and self._on_default_change == "raise":
            finish(job, JobState.FAILED, str(changed))
        else:
            if changed:
                warnings.warn(f"{changed} (reused anyway)", DefaultChangedWarning, stacklevel=1)
            finish(job, JobState.DONE)

    def _job_finished(self, job: Job) -> None:
        """Every job's `on_final` hook: the job became final (`_job.finish`)."""
        self._unfinished -= 1
        level = _LOG_LEVELS.get(job.state, logging.INFO)
        self._log.log(level, "%s/%s %s", job.type_name, job.identifier[:12], job.state.name)
        if job.state is JobState.DEPENDENCY_FAILED:
            self._record(job.path, _dependency_record(job))
        if self._keep is not None:
            self._finished.append(job)
            while len(self._finished) > self._keep:
                old = self._finished.popleft()
                if self._jobs.get(old.identifier) is old:
                    del self._jobs[old.identifier]
                    self._forgotten[old.state.value] += 1
        if self._unfinished == 0:
            self._idle.set()

    def _record(self, path: Path, record: dict[str, Any]) -> None:
        """Write a failure record for a job that never ran, in a worker thread, soon."""
        self._records.append((path, record))
        if not self._recording and self._tg is not None:
            self._recording = True
            self._tg.start_soon(self._write_records)

    async def _write_records(self) -> None:
        try:
            while self._records:
                with anyio.CancelScope(shield=True):  # not lost if the experiment ends now
                    records, self._records = self._records, []
                    await anyio.to_thread.run_sync(_write_records, records)
        finally:
            self._recording = False

    async def wait(self) -> None:
        """Wait until every job submitted so far is final (failures do not raise here)."""
        while self._unfinished:
            await self._idle.wait()

    def failed(self) -> list[Job]:
        """The jobs that ended FAILED, DEPENDENCY_FAILED or CANCELLED so far, in submission
        order: those that `ExperimentFailed` names (of those `xp.jobs` still lists)."""
        return [job for job in self._jobs.values() if job.state in _RERUN]

    def _forgotten_failures(self) -> int:
        return sum(self._forgotten[state.value] for state in _RERUN)

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
            if self._unwritable is not None:
                return
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                write_experiment_state(self.path, state)
            except OSError as exc:
                # A finished sweep published read-only can still be read through its
                # experiment: only jobs that must run need the workdir writable.
                if exc.errno not in _READ_ONLY:
                    raise
                self._unwritable = exc
                self._log.info("%s: %s; the experiment's record is not kept", self.path, exc)

        await anyio.to_thread.run_sync(write)

    async def close(self, *, cancel: bool = False) -> None:
        """End an experiment that `legato.open_experiment()` opened, as leaving an
        `async with experiment(...)` block would: wait for every job (or, with `cancel`,
        terminate the running ones), then raise `ExperimentFailed` if jobs failed.

        Raises:
            LegatoError: For an experiment of `async with experiment(...)`: its block
                closes it.
        """
        if self._closer is None:
            raise LegatoError(
                f"experiment {self.name!r} was opened by `async with experiment(...)`: "
                "it closes when its block ends"
            )
        await self._closer(cancel)

    def __repr__(self) -> str:
        return f"<Experiment {self.name!r} at {self.workdir} ({len(self._jobs)} jobs)>"


def close_with(xp: Experiment, close: Callable[[bool], Awaitable[None]]) -> None:
    """Make `xp.close()` end the experiment through `close` (`open_experiment()`, whose
    task holds the experiment's block open)."""
    xp._closer = close


def _dependency_record(job: Job) -> dict[str, Any]:
    """What a DEPENDENCY_FAILED job's failed.json says: the dependency that did not end
    DONE and, up the chain, the job that failed first (whose log explains it)."""
    failed = next((d for d in job.dependencies if d.state is not JobState.DONE), None)
    first = cause(job) or failed

    def describe(dep: Job | None) -> dict[str, Any] | None:
        if dep is None:
            return None
        return {"type": dep.type_name, "id": dep.identifier, "path": str(dep.path),
                "state": dep.state.value}  # fmt: skip

    return {
        "state": "dependency_failed",
        "reason": job.failure_reason,
        "dependency": describe(failed),
        "cause": describe(first),
    }


def _write_records(records: list[tuple[Path, dict[str, Any]]]) -> None:
    for path, record in records:
        record_unrun(path, record)


def _job_of(task: ConfigBase) -> Job:
    job: Job = task.__dict__[JOB_KEY]
    return job


def _job_env(workdir: Path, name: str) -> dict[str, str]:
    """The job inherits the environment and the import path of the experiment."""
    env = dict(os.environ)
    paths = [os.path.abspath(p) if p else os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env[WORKDIR_ENV] = str(workdir)
    env[EXPERIMENT_ENV] = name
    env.pop(PROGRESS_FD_ENV, None)
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
    keep_finished: int | None = 10_000,
    on_default_change: Literal["raise", "warn"] = "raise",
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
        keep_finished: How many finished jobs `xp.jobs` keeps, the latest ones (unfinished
            ones are always kept); None keeps all. It bounds the memory of an experiment
            that stays open for weeks (a web service): a job it no longer keeps is found
            on disk when submitted again, as in a new run.
        on_default_change: What to do with a job found DONE on disk whose class now
            declares another default for a field its identity left out (the default-change
            guard, docs/how-to/failures.md): `"raise"` ends it FAILED with a
            `DefaultChanged` reason naming class, field, old and new default, leaving its
            directory as it is; `"warn"` reuses it with a `DefaultChangedWarning`.

    Raises:
        ExperimentFailed: On leaving the block, when jobs failed and `raise_on_failure`.
        LauncherError: When the launcher cannot work here.
        ResourceError: When `max_jobs` or `resources` are not positive/non-negative ints.
        ValueError: When `name` is not a plain name, or `on_default_change` is unknown.
        LegatoError: When opened inside a running job (a script without a
            `if __name__ == "__main__":` guard).
    """
    if os.environ.get(WORKER_ENV):
        raise LegatoError(
            "experiment() was opened inside a running job: guard the script's entry point "
            "with `if __name__ == '__main__':` so jobs can import it"
        )
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"experiment name must be a plain non-empty name, got {name!r}")
    if on_default_change not in ("raise", "warn"):
        raise ValueError(f'on_default_change must be "raise" or "warn", not {on_default_change!r}')
    root = Path(workdir).expanduser().absolute()  # noqa: ASYNC240 - no I/O
    launcher = launcher if launcher is not None else LocalLauncher()
    if not isinstance(launcher, Launcher):
        raise TypeError(f"launcher must implement legato.Launcher, got {launcher!r}")
    if max_jobs is None:
        # Local jobs share this machine's CPUs; a cluster launcher says what suits it.
        max_jobs = getattr(launcher, "default_max_jobs", None) or os.cpu_count() or 1
    if keep_finished is not None and (
        not isinstance(keep_finished, int) or isinstance(keep_finished, bool) or keep_finished < 0
    ):
        raise ValueError(f"keep_finished must be a non-negative int or None, got {keep_finished!r}")
    xp = Experiment(root, name, max_jobs, resources, launcher, keep_finished)
    xp._on_default_change = on_default_change
    await launcher.check()
    await xp._write_state("running")
    token = _current.set(xp)
    wtoken = current_workdir.set(root)
    status = "cancelled"
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            xp._tg = tg
            tg.start_soon(follow, xp, xp._write_state)
            try:
                yield xp
                await xp.wait()
                status = "failed" if xp.failed() or xp._forgotten_failures() else "done"
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
            await xp._session.aclose()
            await xp._write_state(status)
    failed = xp.failed()
    more = xp._forgotten_failures()
    if (failed or more) and raise_on_failure:
        raise ExperimentFailed(
            name,
            [(j.type_name, j.identifier, j.error_log, j.failure_reason or "") for j in failed],
            more,
        )
