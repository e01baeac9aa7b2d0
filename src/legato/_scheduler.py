"""When jobs start: dependencies counted down, READY jobs in line for a slot and resources.

A job has a task only while it holds a slot (`run_job`, started by the experiment). Until
then it is a count of unfinished dependencies with a callback on each, then an entry in
the line of READY jobs: a sweep of thousands of waiting jobs costs a few small objects
each, so the garbage collector, and with it the caller's event loop, never pauses long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ._job import Job, JobState
from ._resources import SLOTS, Grant, ResourcePool

__all__ = ["Scheduler"]


class Scheduler:
    """The line of jobs of one experiment.

    Args:
        pool: The experiment's slots and counted resources.
        start: Starts a job that was granted what it requires (its task releases the
            grant through `release` when done).
        finished: Told of each job this scheduler ends (DEPENDENCY_FAILED).
    """

    def __init__(
        self,
        pool: ResourcePool,
        start: Callable[[Job, Grant], None],
        finished: Callable[[Job], None],
    ) -> None:
        self.pool = pool
        self._start = start
        self._finished = finished
        self._unblocked: deque[Job] = deque()  # every dependency final: READY, or not?
        self._ready: deque[Job] = deque()  # READY, in submission order
        self._settling = False
        self.stopped = False
        """Set when the experiment is left early: nothing starts any more."""

    def add(self, job: Job) -> None:
        """A submitted job that is not DONE on disk: in line once its dependencies end.

        Call `settle` after adding."""
        for dep in job.dependencies:
            if not dep.state.final:
                job._blockers += 1
                dep._when_final(lambda: self._dependency_final(job))
        if not job._blockers:
            self._unblocked.append(job)

    def _dependency_final(self, job: Job) -> None:
        job._blockers -= 1
        if not job._blockers and not job.state.final:
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
                    job.state = JobState.READY
                    self._ready.append(job)
                    continue
                job._cause = failed._cause or failed
                job._finish(
                    JobState.DEPENDENCY_FAILED,
                    f"dependency {failed.type_name}/{failed.identifier[:12]} ended "
                    f"{failed.state.name}",
                )
                self._finished(job)
            self._dispatch()
        finally:
            self._settling = False

    def _dispatch(self) -> None:
        """Start READY jobs, first fit in submission order: a job that waits for a large
        amount of a resource does not hold back smaller requests behind it."""
        if self.stopped:
            return
        ready, pool = self._ready, self.pool
        i = 0
        while i < len(ready) and pool.free[SLOTS]:
            grant = pool.take(ready[i]._amounts)
            if grant is None:
                i += 1
                continue
            job = ready[i]
            del ready[i]
            self._start(job, grant)

    def release(self, grant: Grant) -> None:
        """Give back a running job's grant (again: no effect), and start what now fits."""
        self.pool.release(grant)
        self._dispatch()

    def requeue(self, job: Job) -> None:
        """A job that must run after all (another process held it, and died without a
        verdict): READY again, first in line."""
        job.state = JobState.READY
        self._ready.appendleft(job)
        self._dispatch()

    def stop(self) -> None:
        """Start nothing more: the experiment is being left."""
        self.stopped = True
