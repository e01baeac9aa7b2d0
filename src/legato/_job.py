"""`Job`: the handle an experiment gives each submitted task (`task.__job__`)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ._errors import JobFailed
from ._workdir import STDERR, STDOUT

if TYPE_CHECKING:
    from ._launcher import Launcher
    from ._task import Task

__all__ = ["Job", "JobState"]


class JobState(enum.Enum):
    """Where a job is in its life; the last four are final."""

    WAITING = "waiting"
    """Submitted; some dependency is not DONE yet."""
    READY = "ready"
    """Dependencies done; waiting for a slot, a resource or the job's lock."""
    RUNNING = "running"
    """Its process runs (here, or in another experiment that this one waits for)."""
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEPENDENCY_FAILED = "dependency_failed"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.DEPENDENCY_FAILED})


class Job:
    """One task's run in an experiment: its identity, directory, state and outcome."""

    __slots__ = (
        "_amounts",
        "_cause",
        "_done",
        "dependencies",
        "failure_reason",
        "identifier",
        "launcher",
        "path",
        "pid",
        "progress",
        "progress_desc",
        "requires",
        "state",
        "task",
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
    ) -> None:
        self.task = task
        self.type_name: str = type(task).__legato_type_name__
        self.identifier = identifier
        self.path = path
        self.dependencies = dependencies
        self.requires = requires
        self.launcher = launcher
        self.state = JobState.WAITING
        self.failure_reason: str | None = None
        self.progress: float | None = None
        self.progress_desc: str | None = None
        self.pid: int | None = None
        self._done = anyio.Event()
        self._amounts: dict[str, int] = {}
        self._cause: Job | None = None

    @property
    def tags(self) -> dict[str, Any]:
        """Tags of the task and of every task it depends on."""
        return self.task.__tags__

    @property
    def stdout_path(self) -> Path:
        return self.path / STDOUT

    @property
    def stderr_path(self) -> Path:
        return self.path / STDERR

    @property
    def error_log(self) -> Path:
        """Where to look first when the job did not end DONE.

        A job skipped because a dependency failed never ran and has no log of its own: the
        log that explains it is the one of the job that failed first up the chain.
        """
        return (self._cause or self).stderr_path

    def _finish(self, state: JobState, reason: str | None = None) -> None:
        self.state = state
        self.failure_reason = reason
        self._done.set()

    async def wait(self) -> Job:
        """Return once the job is final; raise `JobFailed` unless it is DONE."""
        await self._done.wait()
        if self.state is not JobState.DONE:
            raise JobFailed(self)
        return self

    def __repr__(self) -> str:
        return f"<Job {self.type_name}/{self.identifier[:12]} {self.state.name}>"
