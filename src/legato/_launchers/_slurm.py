"""`SlurmLauncher`: each job a SLURM batch job, on a cluster that shares the workdir's
filesystem. The launcher is a set of resources; the submitting, polling and cancelling is
done by the event loop's `SlurmQueue` (`_slurm_queue.py`) for every launcher at once.

The experiment keeps holding each job's lock; the job's process does not take it. A job
whose experiment died goes on under SLURM, and the next run of the experiment adopts it
(`adopt`) from the "slurm_id" recorded in its state.json instead of submitting it again.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from typing import Any

from .._errors import LauncherError
from .._jobdir._names import GRACE_PERIOD_ENV, TIME_LIMIT_ENV
from ._launcher import Exit, LaunchSpec
from ._slurm_batch import count, format_time, sbatch_args, seconds, time_seconds
from ._slurm_queue import this_loops_queue

__all__ = ["SlurmLauncher"]


class SlurmLauncher:
    """Runs jobs as SLURM batch jobs.

    `partition`, `time` (a SLURM time string, minutes, or a `timedelta`), `cpus` (per
    task), `mem` (MiB, or a size such as "4G"), `gpus` (a count, or "type:count") and
    `options` (more sbatch arguments, e.g. `("--qos=high", "--account=lab")`) apply to every
    job of this launcher; use one launcher per set of resources (`submit(launcher=...)`).
    Jobs ready within `batch_window` seconds of each other with the same resources go out
    as one job array (at most `max_array_size` jobs). `squeue` runs every `poll_interval`
    seconds while jobs change state, less often (up to `max_poll_interval`) while they do
    not. A cancelled experiment waits up to `cancel_timeout` for its scancelled jobs to
    leave the queue.

    With a `time` limit, a job gets SIGTERM `grace_period` seconds before it (SLURM's
    `--signal=B:TERM@<grace_period>`, when the limit is long enough for SLURM to send it
    that early: `grace_period` plus two minutes), so that `execute` sees
    `legato.Interrupted` and can save a checkpoint; without that, SLURM's own SIGTERM at the
    limit leaves it the cluster's `KillWait` (30 s by default). The job then runs again if
    `submit(retries=...)` allows. A job preempted or requeued by SLURM runs again without
    using up its retries (`submit(max_preemptions=...)` bounds those).
    """

    name = "slurm"
    default_max_jobs = 500
    """`experiment(max_jobs=None)` with this launcher: how many jobs may be queued or
    running at once. SLURM schedules them; the bound keeps clusters' per-user submission
    limits and the experiment's open lock files in check."""

    def __init__(
        self,
        partition: str | None = None,
        time: Any = None,
        cpus: int | None = None,
        mem: int | str | None = None,
        gpus: int | str | None = None,
        options: Sequence[str] = (),
        *,
        poll_interval: float = 1.0,
        max_poll_interval: float = 10.0,
        batch_window: float = 0.1,
        max_array_size: int = 1000,
        cancel_timeout: float = 60.0,
        grace_period: float = 60.0,
    ) -> None:
        args = sbatch_args(partition, time, cpus, mem, gpus, options)
        self.grace_period = seconds("grace_period", grace_period, zero=True)
        limit = time_seconds(format_time(time)) if time is not None else _time_option(options)
        signalled = any(option.startswith("--signal") for option in options)
        if limit is not None and limit >= self.grace_period + 120 and not signalled:
            args.append(f"--signal=B:TERM@{math.ceil(self.grace_period)}")
        self.args = tuple(args)
        """The sbatch options these resources make."""
        self.worker_env = {GRACE_PERIOD_ENV: repr(self.grace_period)}
        """What the job's worker is told of its limits (`_worker.py`)."""
        if limit is not None:
            self.worker_env[TIME_LIMIT_ENV] = repr(limit)
        self.partition, self.time, self.cpus, self.mem, self.gpus = partition, time, cpus, mem, gpus
        self.options = tuple(options)
        self.poll_interval = seconds("poll_interval", poll_interval)
        self.max_poll_interval = seconds("max_poll_interval", max_poll_interval)
        if max_poll_interval < poll_interval:
            raise ValueError("SlurmLauncher: max_poll_interval must be >= poll_interval")
        self.batch_window = seconds("batch_window", batch_window, zero=True)
        self.max_array_size = count("max_array_size", max_array_size, 1)
        self.cancel_timeout = seconds("cancel_timeout", cancel_timeout)

    async def check(self) -> None:
        missing = [cmd for cmd in ("sbatch", "squeue", "scancel") if shutil.which(cmd) is None]
        if missing:
            raise LauncherError(
                f"SlurmLauncher: {', '.join(missing)} not found on PATH; run the experiment "
                "on a machine that can submit SLURM jobs (a login node), or load SLURM's "
                "environment module first"
            )

    async def launch(self, spec: LaunchSpec) -> Exit:
        return await this_loops_queue().launch(self, spec)

    async def adopt(self, spec: LaunchSpec, info: dict[str, Any]) -> Exit | None:
        """Follow the SLURM job recorded in `info` while squeue lists it; None when it is
        gone (the runner then submits the job again, unless it is done)."""
        slurm_id = info.get("slurm_id")
        if not isinstance(slurm_id, str) or not slurm_id.replace("_", "").isdigit():
            return None
        return await this_loops_queue().adopt(self, spec, slurm_id)

    def __repr__(self) -> str:
        shown = [
            f"{name}={getattr(self, name)!r}"
            for name in ("partition", "time", "cpus", "mem", "gpus")
            if getattr(self, name) is not None
        ]
        shown += [f"options={self.options!r}"] if self.options else []
        return f"SlurmLauncher({', '.join(shown)})"


def _time_option(options: Sequence[str]) -> float | None:
    """The time limit given as an sbatch option rather than as `time`: the job must know
    it, or SLURM's SIGTERM at the limit would pass for a preemption."""
    options = list(options)
    for i, option in enumerate(options):
        value = None
        if option.startswith("--time="):
            value = option.removeprefix("--time=")
        elif option in ("--time", "-t") and i + 1 < len(options):
            value = options[i + 1]
        elif option.startswith("-t") and len(option) > 2:
            value = option[2:]
        if value is not None:
            return time_seconds(value)
    return None
