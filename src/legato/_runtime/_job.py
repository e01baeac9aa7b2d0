"""`Job`: the handle an experiment gives each submitted task (`task.__job__`), and the
transitions the runtime makes it go through (`mark_ready`, `mark_running`, `finish`,
`skip`): functions of this module, so that the handle users read shows none of them."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._errors import LegatoError
from .._jobdir._layout import STDERR, STDOUT

if TYPE_CHECKING:
    from .._core._task import Task
    from .._launchers._launcher import Launcher

__all__ = [
    "Job",
    "JobFailed",
    "JobState",
    "after_dependencies",
    "amounts",
    "cause",
    "finish",
    "mark_ready",
    "mark_running",
    "skip",
    "submitted",
    "when_final",
]


class JobFailed(LegatoError):
    """`await job.wait()` found the job in a final state other than DONE.

    Attributes:
        job: The job, for its `state`, `failure_reason` and `error_log` (the file to read).
    """

    job: Job

    def __init__(self, job: Job) -> None:
        self.job = job
        reason = job.failure_reason or ""
        super().__init__(
            f"job {job.type_name}/{job.identifier[:12]} ended {job.state.name}"
            + (f": {reason}" if reason else "")
            + f" (error log: {job.error_log})"
        )


class JobState(enum.Enum):
    """Where a job is in its life; the last four are final."""

    WAITING = "waiting"
    """Submitted; some dependency is not DONE yet."""
    READY = "ready"
    """Dependencies done; waiting for a slot, a resource, the job's lock, or (under
    `SlurmLauncher`) in the cluster's queue."""
    RUNNING = "running"
    """Its process runs (here, or in another experiment that this one waits for)."""
    DONE = "done"
    """`execute` returned and the `done` marker is written; never run again."""
    FAILED = "failed"
    """`execute` raised, or the process exited non-zero or was killed; runs again next time."""
    CANCELLED = "cancelled"
    """Its experiment was cancelled (Ctrl-C, a cancelled scope) or `legato jobs kill` ended
    it; runs again next time."""
    DEPENDENCY_FAILED = "dependency_failed"
    """A task whose output it holds did not end DONE, so it never ran; its `failed.json`
    names that task."""

    @property
    def final(self) -> bool:
        """True for the states a job never leaves in this experiment."""
        return self in _FINAL


_FINAL = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.DEPENDENCY_FAILED})


class Job:
    """One task's run in an experiment: its identity, directory, state and outcome.

    The experiment creates it at `submit()` (as `task.__job__`, and in `xp.jobs`) and
    updates it as the job runs; read it, never build or change it. Everything it knows that
    outlives the experiment is in the job directory, `path`.
    """

    __slots__ = (
        "_amounts",
        "_blockers",
        "_cause",
        "_done",
        "_hook",
        "_on_final",
        "_submitted",
        "attempts",
        "dependencies",
        "failure_reason",
        "identifier",
        "launcher",
        "max_preemptions",
        "path",
        "pid",
        "progress",
        "progress_desc",
        "requires",
        "retries",
        "state",
        "task",
        "timeout",
        "type_name",
    )

    def __init__(
        self,
        task: Task,
        identifier: str,
        path: Path,
        dependencies: list[Job],
        requires: dict[str, int],
        launcher: Launcher | None,
        *,
        amounts: dict[str, int] | None = None,
        on_final: Callable[[Job], None] | None = None,
    ) -> None:
        self.task = task
        """The submitted task (the first one, when the same job was submitted twice)."""
        self.type_name: str = type(task).__legato_type_name__
        """The task's type name, the parent directory of `path` (`first.Learn`)."""
        self.identifier = identifier
        """The task's 64-hex-digit identifier, the name of `path`."""
        self.path = path
        """The job directory, `<workdir>/jobs/<type name>/<identifier>`."""
        self.dependencies = dependencies
        """The jobs of the tasks whose outputs the task holds; it starts once they are DONE."""
        self.requires = requires
        """The counted resources it takes while it runs (`submit(requires=...)`)."""
        self.launcher = launcher
        """The launcher given to `submit()`, or None for the experiment's."""
        self.state = JobState.WAITING
        """Where the job is; final states (`state.final`) do not change any more."""
        self.failure_reason: str | None = None
        """Why it did not end DONE (`"ValueError: diverged"`, `"killed by signal 9
        (SIGKILL)"`); None while it runs and when it is DONE."""
        self.progress: float | None = None
        """The last fraction the job reported with `legato.progress()`, or None."""
        self.progress_desc: str | None = None
        """The description that came with `progress`."""
        self.pid: int | None = None
        """The process id its launcher reported when the job started (a local job's), else
        None."""
        self.retries = 0
        """How many interrupted attempts (time limit, `legato.Requeue`) may be run again
        (`submit(retries=...)`)."""
        self.timeout: float | None = None
        """Seconds one attempt may run (`submit(timeout=...)`), or None."""
        self.max_preemptions = 100
        """How many preemptions (and lost nodes) the job may go through: they do not use
        up `retries` (`submit(max_preemptions=...)`)."""
        self.attempts = 0
        """Attempts started so far in this run of the job (1 first; 0 before it starts):
        more than one when it was interrupted and run again."""
        # A waiting job holds no task and no event, only these: a sweep of thousands of
        # jobs keeps the garbage collector's work, and so the event loop's pauses, small.
        self._done: anyio.Event | None = None  # made by the first wait() before the end
        self._on_final: list[Callable[[], None]] | None = None
        self._blockers = 0  # dependencies not final yet (`after_dependencies`)
        self._amounts: dict[str, int] = amounts or {}  # what it takes, one slot included
        self._hook = on_final  # the experiment's "a job became final"
        self._cause: Job | None = None
        self._submitted = time.time()  # a `legato jobs kill` before this is an older run's

    @property
    def tags(self) -> dict[str, Any]:
        """Tags of the task and of every task it depends on."""
        return self.task.__tags__

    @property
    def main_path(self) -> Path:
        """The main task directory (`task.__maintaskdir__`): `<workdir>/partials/<type
        name>/<main identifier>/`, shared with the jobs whose tasks differ from this one only
        in `SubParam` fields, none of which runs while this one does; `path` for a class
        without sub-parameters."""
        return self.task.__maintaskdir__

    @property
    def stdout_path(self) -> Path:
        """What `execute` printed to standard output."""
        return self.path / STDOUT

    @property
    def stderr_path(self) -> Path:
        """Standard error of the job's process; a failed job's traceback ends it."""
        return self.path / STDERR

    @property
    def error_log(self) -> Path:
        """Where to look first when the job did not end DONE.

        A job skipped because a dependency failed never ran and has no log of its own: the
        log that explains it is the one of the job that failed first up the chain.
        """
        return (self._cause or self).stderr_path

    def _finish(self, state: JobState, reason: str | None = None) -> None:
        """The one way into a final state: wakes `wait()`, tells the jobs and lines that
        wait for this one (`_when_final`), then the experiment (its hook), once. A final
        state does not change any more: a second verdict is ignored."""
        if self.state.final:
            return
        self.state = state
        self.failure_reason = reason
        if self._done is not None:
            self._done.set()
        callbacks, self._on_final = self._on_final, None
        for callback in callbacks or ():
            callback()
        if self._hook is not None:
            self._hook(self)

    def _when_final(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this job, not final yet, reaches a final state."""
        if self._on_final is None:
            self._on_final = []
        self._on_final.append(callback)

    def _after_dependencies(self, then: Callable[[Job], None]) -> bool:
        """Count the dependencies not final yet; call `then(self)` when the last of them
        becomes final. True (and `then` is never called) when none is left to wait for."""
        for dep in self.dependencies:
            if not dep.state.final:
                self._blockers += 1
                dep._when_final(lambda: self._dependency_final(then))
        return not self._blockers

    def _dependency_final(self, then: Callable[[Job], None]) -> None:
        self._blockers -= 1
        if not self._blockers and not self.state.final:
            then(self)

    async def wait(self) -> Job:
        """Return the job once it is final; raise `JobFailed` unless it is DONE.

        For code inside the experiment's block that needs a result before submitting
        more; leaving the block waits for every job anyway.
        """
        if self.state.final:
            await anyio.lowlevel.checkpoint()
        else:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()
        if self.state is not JobState.DONE:
            raise JobFailed(self)
        return self

    async def result(self) -> Any:
        """What the job's `execute()` returned (None if it returned nothing), once DONE.

        Waits for the job like `wait()`; the value is read from the job directory (see
        `legato.load_result`), so a job found DONE from an earlier run has its result too.

        Raises:
            JobFailed: When the job ends in a state other than DONE.
            ResultError: When its result file was deleted or is corrupt.
        """
        await self.wait()
        from .._core._result import load_result

        return await anyio.to_thread.run_sync(load_result, self.path)

    def __repr__(self) -> str:
        return f"<Job {self.type_name}/{self.identifier[:12]} {self.state.name}>"


# What the runtime does to a job, as functions of this module rather than methods of `Job`:
# users read a job through its attributes and never change it, so the handle they see
# shows no transitions. Every change of state goes through one of these.


def mark_ready(job: Job) -> None:
    """WAITING (dependencies done), or RUNNING (its attempt was interrupted, or a run
    elsewhere died without a verdict): in line for a slot again."""
    job.state = JobState.READY
    job.pid = None


def mark_running(job: Job, pid: int | None = None) -> None:
    """Its process started (`pid`, when the launcher knows it), or another process runs
    it and this experiment waits for that run."""
    job.state = JobState.RUNNING
    job.pid = pid


def finish(job: Job, state: JobState, reason: str | None = None) -> None:
    """A final state, with why it is not DONE; tells whoever waits, the experiment last.
    A job already final keeps its first verdict."""
    job._finish(state, reason)


def skip(job: Job, failed: Job) -> None:
    """DEPENDENCY_FAILED, because `failed` (one of its dependencies) did not end DONE;
    its error log is then the one of the job that failed first up the chain."""
    job._cause = failed._cause or failed
    job._finish(
        JobState.DEPENDENCY_FAILED,
        f"dependency {failed.type_name}/{failed.identifier[:12]} ended {failed.state.name}",
    )


def when_final(job: Job, callback: Callable[[], None]) -> None:
    """Call `callback` once `job`, not final yet, reaches a final state."""
    job._when_final(callback)


def after_dependencies(job: Job, then: Callable[[Job], None]) -> bool:
    """True when every dependency of `job` is final already; else `then(job)` is called
    once the last one becomes final (unless `job` became final first)."""
    return job._after_dependencies(then)


def amounts(job: Job) -> dict[str, int]:
    """What the job takes while it runs: one slot and its `requires`, checked."""
    return job._amounts


def submitted(job: Job) -> float:
    """When the job was submitted: a `legato jobs kill` before that was meant for an
    earlier run of it."""
    return job._submitted


def cause(job: Job) -> Job | None:
    """For a DEPENDENCY_FAILED job, the job that failed first up the chain."""
    return job._cause
