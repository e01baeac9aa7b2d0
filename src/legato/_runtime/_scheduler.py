"""When jobs start: dependencies counted down, READY jobs in line for a slot and resources.

A job has a task only while it holds a slot (`run_job`, started by the experiment). Until
then it is a count of unfinished dependencies with a callback on each, then an entry in
the line of READY jobs: a sweep of thousands of waiting jobs costs a few small objects
each, so the garbage collector, and with it the caller's event loop, never pauses long.

Jobs that share a main task directory (tasks that differ only in `SubParam` fields) also
wait in a line of their own, in submission order: only its first may start, and only once
the run before it has let go of the directory's lock, so none of them holds a slot (or a
cluster's queue place) while it waits for another.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

from .._core._task import has_subparams
from ._job import Job, JobState, after_dependencies, amounts, mark_ready, skip, when_final
from ._resources import SLOTS, Grant, ResourcePool

__all__ = ["Scheduler"]


class Scheduler:
    """The line of jobs of one experiment.

    Args:
        pool: The experiment's slots and counted resources.
        start: Starts a job that was granted what it requires (its task releases the
            grant through `release` when done).
        finished: Told of each job this scheduler ends (DEPENDENCY_FAILED), after the
            job's own `on_final` hook: for a line used without an experiment.
    """

    def __init__(
        self,
        pool: ResourcePool,
        start: Callable[[Job, Grant], None],
        finished: Callable[[Job], None] | None = None,
    ) -> None:
        self.pool = pool
        self._start = start
        self._finished = finished
        self._unblocked: deque[Job] = deque()  # every dependency final: READY, or not?
        self._ready: deque[Job] = deque()  # READY, in submission order
        self._settling = False
        self._mains: dict[Job, Path] = {}  # main task directory of each sharing job
        self._lines: dict[Path, deque[Job]] = {}  # its unfinished jobs, in submission order
        self._busy: set[Path] = set()  # main directories that a run of ours holds
        self.stopped = False
        """Set when the experiment is left early: nothing starts any more."""

    def add(self, job: Job) -> None:
        """A submitted job that is not DONE on disk: in line once its dependencies end.

        Call `settle` after adding."""
        if has_subparams(job.task):
            self._join_line(job)
        if after_dependencies(job, self._unblock):
            self._unblocked.append(job)

    def _unblock(self, job: Job) -> None:
        self._unblocked.append(job)
        self.settle()

    def settle(self) -> None:
        """Unblocked jobs become READY, or DEPENDENCY_FAILED when a dependency did not end
        DONE (their own dependents follow in this loop, not by recursion, however long
        the chain); then start what fits."""
        if self._settling or self.stopped:
            return
        self._settling = True
        try:
            while self._unblocked:
                job = self._unblocked.popleft()
                failed = next((d for d in job.dependencies if d.state is not JobState.DONE), None)
                if failed is None:
                    mark_ready(job)
                    self._ready.append(job)
                    continue
                skip(job, failed)
                if self._finished is not None:
                    self._finished(job)
            self._dispatch()
        finally:
            self._settling = False

    def _dispatch(self) -> None:
        """Start READY jobs, first fit in submission order: a job that waits for a large
        amount of a resource does not hold back smaller requests behind it."""
        if self.stopped:
            return
        ready, pool, mains = self._ready, self.pool, self._mains
        i = 0
        while i < len(ready) and pool.free[SLOTS]:
            if mains and not self._may_start(ready[i]):
                i += 1
                continue
            grant = pool.take(amounts(ready[i]))
            if grant is None:
                i += 1
                continue
            job = ready[i]
            del ready[i]
            if mains and job in mains:
                self._busy.add(mains[job])
            self._start(job, grant)

    def release(self, grant: Grant) -> None:
        """Give back a running job's grant (again: no effect), and start what now fits."""
        self.pool.release(grant)
        self._dispatch()

    def requeue(self, job: Job) -> None:
        """A job that must run after all (another process held it, and died without a
        verdict): READY again, first in line."""
        mark_ready(job)
        self._ready.appendleft(job)
        self._dispatch()

    def _join_line(self, job: Job) -> None:
        main = job.main_path
        self._mains[job] = main
        self._lines.setdefault(main, deque()).append(job)
        when_final(job, lambda: self._leave_line(job))

    def _leave_line(self, job: Job) -> None:
        main = self._mains.pop(job)
        line = self._lines[main]
        line.remove(job)
        if not line:
            del self._lines[main]

    def _may_start(self, job: Job) -> bool:
        """Whether a READY job may take a slot: one that shares a main task directory
        only when it is first of those jobs and no run of ours holds the directory."""
        main = self._mains.get(job)
        return main is None or (main not in self._busy and self._lines[main][0] is job)

    def main_of(self, job: Job) -> Path | None:
        """The main task directory whose lock the job's run must take, if it shares one."""
        return self._mains.get(job)

    def main_released(self, main: Path) -> None:
        """A run of ours let go of `main`'s lock (or never got it): the next job in that
        directory's line may start."""
        self._busy.discard(main)
        self._dispatch()

    def stop(self) -> None:
        """Start nothing more: the experiment is being left."""
        self.stopped = True
