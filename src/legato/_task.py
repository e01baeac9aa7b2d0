"""`Task`: a configuration that does work, once, in its own job directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._config import ConfigBase
from ._identity import forget_identifier

if TYPE_CHECKING:
    from ._job import Job
    from ._launcher import Launcher

__all__ = ["Task", "has_output_config", "mark_output"]


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

        Returns:
            `self.config()` when the class defines `config()`, else the task itself.

        Raises:
            NoExperimentError: Outside `async with experiment(...)`.
            ResourceError: When `requires` asks for more than the experiment declares.
        """
        from ._experiment import current_experiment

        return await current_experiment().submit(self, launcher=launcher, requires=requires)

    @property
    def __job__(self) -> Job:
        """The job handle; set by `submit()`."""
        job: Job | None = self.__dict__.get("__legato_job__")
        if job is None:
            raise AttributeError(f"{type(self).__name__} has not been submitted")
        return job

    @property
    def __taskdir__(self) -> Path:
        """The job directory: set at submission and inside the running job."""
        path: Path | None = self.__dict__.get("__legato_taskdir__")
        if path is None:
            raise AttributeError(f"{type(self).__name__} has no job directory yet")
        return path


def has_output_config(task: Task) -> bool:
    return type(task).config is not Task.config


def mark_output(output: Any, task: Task) -> Any:
    """Record that `output` stands for `task`'s result: it depends on it
    (docs/configurations.md, identity rule 7)."""
    if isinstance(output, ConfigBase) and output is not task:
        output.__dict__["__legato_producer__"] = task
        forget_identifier(output)
    return output
