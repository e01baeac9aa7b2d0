"""The exceptions legato raises: one base class, grouped by cause."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._runtime._job import Job

__all__ = [
    "ConfigError",
    "DeserializationError",
    "ExperimentFailed",
    "Interrupted",
    "JobFailed",
    "LauncherError",
    "LegatoError",
    "NoExperimentError",
    "Requeue",
    "ResourceError",
    "ResultError",
    "ShippingError",
    "ValidationError",
    "WorkdirError",
]


class LegatoError(Exception):
    """Base class of every error legato raises on purpose."""


class ConfigError(LegatoError, TypeError):
    """A Config or Task class is declared wrongly, or a field is set that users may not set."""


class ValidationError(LegatoError, TypeError, ValueError):
    """A field value does not match its declared type (raised at construction or submit).

    A `TypeError` and a `ValueError` both, so that code written for either catches it.

    Attributes:
        path: Where the value sits, from the class down: `Learn.model.hidden`, `Sweep.lrs[2]`.
        expected: The declared type the value had to match (or be converted to).
        value: The value as given.
    """

    path: str
    expected: Any
    value: Any

    def __init__(self, path: str, expected: Any, value: Any, reason: str = "") -> None:
        self.path = path
        self.expected = expected
        self.value = value
        shown = getattr(expected, "__name__", None) or repr(expected)
        extra = f" ({reason})" if reason else ""
        super().__init__(
            f"{path}: expected {shown}, got {type(value).__name__} {value!r:.200}{extra}"
        )


class DeserializationError(LegatoError, ValueError):
    """A params file or `legato.loads` input cannot be turned back into configurations."""


class NoExperimentError(LegatoError, RuntimeError):
    """`submit()` was called outside `async with experiment(...)`."""


class ResourceError(LegatoError, ValueError):
    """A job requires more of a counted resource than the experiment declares."""


class LauncherError(LegatoError, RuntimeError):
    """A launcher cannot work here (e.g. `sbatch` is not on PATH); raised at experiment start."""


class WorkdirError(LegatoError, OSError):
    """legato had to write to the workdir and could not (a read-only mount, no permission).

    Reading finished work never needs to write: an experiment whose jobs are all done, and
    `@cache` hits, work on a read-only workdir. The message names the file or directory."""


class ResultError(LegatoError, TypeError):
    """A job's result cannot be stored or read back: `execute()` returned a value of a
    type a result cannot hold, or too large a one (the job then fails with this reason),
    or `load_result()` found the job not DONE or its result file gone."""


class ShippingError(LegatoError, TypeError):
    """At submit: a task's class is defined where its job cannot import it (a notebook,
    `python -c`, standard input, a function's body) and cannot be shipped with the job,
    because cloudpickle is not installed or the class refers to something that cannot be
    pickled."""


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


class Interrupted(BaseException):
    """Raised inside a running job, in its main thread, when it is asked to stop: SIGTERM
    at a time limit (`submit(timeout=...)`, SLURM's `time`), a preemption, a cancellation,
    or `legato jobs interrupt`.

    A `BaseException`, as `KeyboardInterrupt` is, so that `except Exception:` in user code
    does not swallow it: catch it to save a checkpoint, then re-raise it. Whether the job
    runs again is decided by why it was interrupted, not by what `execute` does with it
    (see docs/how-to/time-limits.md). An `async def execute` sees it as the cancellation
    of the await in progress (`asyncio.CancelledError`), as `asyncio.run` cancels its tasks
    on the way out.
    """


class Requeue(LegatoError):
    """Raise it from `execute` to end this attempt and ask for another (its argument says
    why): the job runs again, from the same job directory, while `submit(retries=...)`
    allows; out of retries, the job ends FAILED with that reason."""
