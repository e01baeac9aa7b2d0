"""`Task`: a configuration that does work, once, in its own job directory."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from msgspec.structs import force_setattr

from .._errors import NoExperimentError
from .._jobdir._layout import main_dir, workdir_of
from .._jobdir._names import JOB_KEY, MAINTASKDIR_KEY, PRODUCER_KEY, TASKDIR_KEY
from ._config import ConfigBase
from ._identity import current_workdir, forget_identifier, main_identifier

if TYPE_CHECKING:
    from .._launchers._launcher import Launcher

__all__ = [
    "Submitter",
    "Task",
    "attempt_limits",
    "check_executable",
    "has_output_config",
    "has_subparams",
    "main_task_dir",
    "mark_output",
    "no_experiment",
    "resolve_paths",
    "set_submitter_lookup",
]


class Submitter(Protocol):
    """What `Task.submit` hands its task to: the open experiment. The runtime, a layer
    above this one, registers how to find it (`set_submitter_lookup`)."""

    async def submit(
        self,
        task: Task,
        *,
        launcher: Launcher | None,
        requires: dict[str, int] | None,
        retries: int,
        timeout: float | datetime.timedelta | None,
        max_preemptions: int,
    ) -> Any: ...


def no_experiment() -> NoReturn:
    raise NoExperimentError(
        "submit() needs an open experiment: use `async with experiment(workdir, name):`"
    )


_find_submitter: Callable[[], Submitter] = no_experiment


def set_submitter_lookup(lookup: Callable[[], Submitter]) -> None:
    """Make `Task.submit` find the open experiment with `lookup`: the runtime calls it when
    it is imported, and no experiment can be open before that."""
    global _find_submitter
    _find_submitter = lookup


class Task(ConfigBase):
    """A configuration with an `execute` method that legato runs in a subprocess.

    Define `config()` to hand later tasks a configuration describing the output (a
    trained model, say) rather than the task itself.
    """

    def execute(self) -> Any:
        """The work; runs in the job's own process with the job directory as cwd."""
        raise NotImplementedError(f"{type(self).__name__} does not define execute()")

    def config(self) -> Any:
        """What `submit()` returns to the caller: by default the task itself."""
        return self

    async def submit(
        self,
        *,
        launcher: Launcher | None = None,
        requires: dict[str, int] | None = None,
        retries: int = 0,
        timeout: float | datetime.timedelta | None = None,
        max_preemptions: int = 100,
    ) -> Any:
        """Make this task a job of the current experiment; return what later tasks hold.

        Returns at once and never waits for the job to run: the experiment starts it once
        the tasks whose outputs its fields hold (at any depth) are DONE. Hand on the value
        returned here, not `self.config()` called again: only the returned value carries the
        dependency on this job.

        Args:
            launcher: Run this job with this launcher rather than the experiment's.
            requires: Counted resources the job holds while it runs, among those the
                experiment declares, as `{"gpu": 1}`.
            retries: How many times an *interrupted* attempt may be run again: one that
                reached its time limit or raised `legato.Requeue`. An exception from
                `execute` is never retried. Each attempt runs in the same job directory, so
                it can resume from the checkpoints the last one saved.
            timeout: Seconds (or a `timedelta`) one attempt may run, on any launcher: then
                `execute` sees `legato.Interrupted` (SIGTERM), and is killed after the
                launcher's grace period.
            max_preemptions: How many times the job may be preempted (or lose its node)
                and run again; preemptions do not use up `retries`.

        Returns:
            `self.config()` when the class defines `config()`, else the task itself.

        Raises:
            NoExperimentError: Outside `async with experiment(...)`.
            ConfigError: When the class defines no `execute()` (an abstract base task).
            ResourceError: When `requires` asks for more than the experiment declares.
            ValueError: When `retries`, `timeout` or `max_preemptions` is out of range.
        """
        return await _find_submitter().submit(
            self,
            launcher=launcher,
            requires=requires,
            retries=retries,
            timeout=timeout,
            max_preemptions=max_preemptions,
        )

    @property
    def __job__(self) -> Any:
        """The `legato.Job` handle; set by `submit()`. (Typed `Any` because the
        configuration core is a layer below the runtime that defines `Job`.)"""
        job: Any = self.__dict__.get(JOB_KEY)
        if job is None:
            raise AttributeError(f"{type(self).__name__} has not been submitted")
        return job

    @property
    def __taskdir__(self) -> Path:
        """The job directory: set at submission and inside the running job."""
        path: Path | None = self.__dict__.get(TASKDIR_KEY)
        if path is None:
            raise AttributeError(f"{type(self).__name__} has no job directory yet")
        return path

    @property
    def __maintaskdir__(self) -> Path:
        """The directory that this task shares with every task of its class that differs
        from it only in `SubParam` fields, `<workdir>/partials/<type name>/<main
        identifier>/`; the job directory itself for a class without sub-parameters. Jobs
        that share it never run at the same time."""
        taskdir = self.__taskdir__
        kept: tuple[Path, Path] | None = self.__dict__.get(MAINTASKDIR_KEY)
        if kept is None or kept[0] != taskdir:  # computed for this job directory, once
            kept = self.__dict__[MAINTASKDIR_KEY] = (taskdir, main_task_dir(self, taskdir))
        return kept[1]


def check_executable(task: Task) -> None:
    """Refuse, at submission, a task whose class defines no `execute` (an abstract base
    class, say): its job would fail only once it ran."""
    if type(task).execute is Task.execute:
        from .._errors import ConfigError

        raise ConfigError(
            f"{type(task).__qualname__} defines no execute() method: only tasks that do can "
            "be submitted"
        )


def has_output_config(task: Task) -> bool:
    return type(task).config is not Task.config


def mark_output(output: Any, task: Task) -> Any:
    """Record that `output` stands for `task`'s result: it depends on it
    (docs/configurations.md, identity rule 7)."""
    if isinstance(output, ConfigBase) and output is not task:
        output.__dict__[PRODUCER_KEY] = task
        forget_identifier(output)
    return output


def attempt_limits(
    retries: Any, timeout: Any, max_preemptions: Any
) -> tuple[int, float | None, int]:
    """`submit()`'s retries, timeout (in seconds) and max_preemptions, checked."""
    for name, value in (("retries", retries), ("max_preemptions", max_preemptions)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"submit(): {name} must be an int >= 0, got {value!r}")
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout < math.inf
    ):
        raise ValueError(
            f"submit(): timeout must be a number of seconds > 0 or a timedelta, got {timeout!r}"
        )
    return retries, None if timeout is None else float(timeout), max_preemptions


def resolve_paths(task: ConfigBase, job_dir: Path) -> None:
    """What a task sees of its job directory, at submit, in its job and in `legato.load`:
    `__taskdir__`, and its path generators as absolute paths inside it (wherever the
    workdir lies now)."""
    task.__dict__[TASKDIR_KEY] = job_dir
    if isinstance(task, Task):
        for name, generator in type(task).__legato_get_plan__().pathgens.items():
            relative = generator.name if isinstance(generator.name, str) else generator.name(task)
            force_setattr(task, name, job_dir / relative)


def has_subparams(task: Task) -> bool:
    """Whether the task's class declares `SubParam` fields (then its jobs share a main
    directory with their siblings)."""
    plan = type(task).__legato_get_plan__()
    return bool(plan.subparams)


def main_task_dir(task: Task, job_dir: Path) -> Path:
    """`task.__maintaskdir__` for a task whose job directory is `job_dir`: the job directory
    itself for a class without sub-parameters."""
    if not has_subparams(task):
        return job_dir
    workdir = workdir_of(job_dir)
    # Paths inside the workdir count relative to it, as they did for the identifier.
    token = current_workdir.set(workdir)
    try:
        ident = main_identifier(task)
    finally:
        current_workdir.reset(token)
    return main_dir(workdir, type(task).__legato_type_name__, ident)
