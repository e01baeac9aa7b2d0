"""The exceptions legato raises: one base class, grouped by cause."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "DeserializationError",
    "Interrupted",
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
