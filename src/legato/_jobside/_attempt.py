"""What a running job knows of its attempt: which one it is, and how long it has left.

The job's worker (`_worker.py`) sets both in its environment before `execute` runs, so
they cost nothing to read and child processes that the task starts see them too.
"""

from __future__ import annotations

import os
import time

from .._jobdir._names import ATTEMPT_ENV, DEADLINE_ENV

__all__ = ["attempt", "remaining_time"]


def attempt() -> int:
    """The number of this attempt of the running job: 1 the first time, 2 when it runs
    again after an interruption (a time limit, a preemption, `legato.Requeue`), and so on.

    1 outside a job (a task's `execute` called directly, in a test, is a first attempt).
    Whether to resume is better decided by whether a checkpoint exists: a job whose
    earlier run failed starts again at attempt 1 with the files that run left.
    """
    try:
        return max(1, int(os.environ[ATTEMPT_ENV]))
    except (KeyError, ValueError):
        return 1


def remaining_time() -> float | None:
    """Seconds before the running job's attempt reaches its time limit (0.0 once past
    it), or None when it has none (or outside a job).

    The limit is `submit(timeout=...)`, or `SlurmLauncher(time=...)`, whichever ends
    first. Use it to stop starting work that cannot end in time: save a checkpoint and
    `raise legato.Requeue("out of time")`, rather than wait for the SIGTERM.
    """
    try:
        deadline = float(os.environ[DEADLINE_ENV])
    except (KeyError, ValueError):
        return None
    return max(0.0, deadline - time.time())
