"""One job's run on the experiment side, once it holds a slot (`_scheduler.py` decides
when): take the job's lock, launch, and read the verdict from the job directory.

Disk work happens in worker threads, a few calls per job, so the event loop never waits
on the filesystem.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ._job import Job, JobState
from ._launcher import Exit, LaunchSpec
from ._resources import Grant
from ._workdir import (
    CANCEL,
    DONE,
    FAILED,
    LOCK,
    PARAMS,
    PROGRESS,
    STATE,
    atomic_write,
    read_json,
    write_json,
)

if TYPE_CHECKING:
    from ._experiment import Experiment

__all__ = ["run_job"]

_POLL_MIN, _POLL_MAX = 0.05, 2.0


def _new_failure(fd: int, job_dir: Path, before: int | None) -> dict[str, Any] | None:
    """After taking the lock another run held (closing `fd`): the failure record that run
    wrote, or None if it left none (died without a verdict). Disk work, for a thread."""
    os.close(fd)
    if _mtime(job_dir / FAILED) == before:
        return None
    return read_json(job_dir / FAILED) or {}


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _try_lock(job_dir: Path) -> tuple[str, Any]:
    """("done", None), ("busy", failure record mtime) or ("locked", fd)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    if os.path.exists(job_dir / DONE):
        return "done", None
    fd = os.open(job_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return "busy", _mtime(job_dir / FAILED)
    if os.path.exists(job_dir / DONE):  # finished between our check and the lock
        os.close(fd)
        return "done", None
    return "locked", fd


def _cancelled_since(job_dir: Path, since: float) -> bool:
    """Whether `legato jobs kill` asked, after `since`, that the job not run.

    Older markers are from earlier runs: a job cancelled then runs again now."""
    marker = job_dir / CANCEL
    try:
        when = os.stat(marker).st_mtime
    except FileNotFoundError:
        return False
    record = read_json(marker)
    if record is not None and isinstance(record.get("time"), (int, float)):
        when = float(record["time"])
    return when >= since


def _start_run(job_dir: Path, params: bytes, state: dict[str, Any]) -> None:
    """With the lock held: a fresh run's params and state; old verdicts go."""
    atomic_write(job_dir / PARAMS, params, durable=False)
    for name in (FAILED, PROGRESS, CANCEL):
        try:
            os.unlink(job_dir / name)
        except FileNotFoundError:
            pass
    write_json(job_dir / STATE, state, durable=False)


def _verdict(job_dir: Path, exit: Exit) -> tuple[JobState, str | None]:
    if os.path.exists(job_dir / DONE):
        return JobState.DONE, None
    record = read_json(job_dir / FAILED)
    if record is not None and exit.reason is None:
        if record.get("state") == "cancelled":
            return JobState.CANCELLED, str(record.get("reason") or "cancelled")
        return JobState.FAILED, str(record.get("reason") or "failed")
    if os.path.exists(job_dir / CANCEL):
        write_json(
            job_dir / FAILED,
            {
                "state": "cancelled",
                "reason": "cancelled by request",
                "signal": exit.signal,
                "ended": time.time(),
            },
        )
        return JobState.CANCELLED, "cancelled by request"
    if exit.reason is not None:
        reason = exit.reason
    elif exit.signal is not None:
        reason = f"killed by signal {exit.signal} ({_signame(exit.signal)})"
    else:
        reason = f"exited with code {exit.exit_code} without a verdict"
    write_json(
        job_dir / FAILED,
        {
            "state": "failed",
            "reason": reason,
            "exit_code": exit.exit_code,
            "signal": exit.signal,
            "ended": time.time(),
        },
    )
    return JobState.FAILED, reason


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "unknown"


def _record_cancelled(job_dir: Path, reason: str = "cancelled", overwrite: bool = True) -> None:
    if os.path.exists(job_dir / DONE):
        return
    if not overwrite and read_json(job_dir / FAILED) is not None:
        return  # `legato jobs kill` recorded it already
    write_json(job_dir / FAILED, {"state": "cancelled", "reason": reason, "ended": time.time()})


async def run_job(xp: Experiment, job: Job, grant: Grant) -> None:
    """Drive a READY job that holds `grant` to a final state, or back in line when the
    process that ran it elsewhere died without a verdict; never raises except cancellation.
    Gives `grant` back whatever happens."""
    try:
        await _run_holding(xp, job, grant)
    except anyio.get_cancelled_exc_class():
        xp._scheduler.stop()  # the experiment is being left: start nothing more
        if not job.state.final:
            job._finish(JobState.CANCELLED, "cancelled")
            xp._job_finished(job)
        raise
    except Exception as exc:  # a bug or a disk error: fail this job, keep the others
        xp._log.exception("job %s/%s: internal error", job.type_name, job.identifier)
        job._finish(JobState.FAILED, f"legato could not run the job: {exc!r}")
        xp._job_finished(job)
    else:
        if job.state.final:
            xp._job_finished(job)
    finally:
        xp._scheduler.release(grant)


async def _run_holding(xp: Experiment, job: Job, grant: Grant) -> None:
    kind, value = await anyio.to_thread.run_sync(_try_lock, job.path)
    if kind == "done":
        job._finish(JobState.DONE)
        return
    if kind == "locked":
        await _run_locked(xp, job, value, grant.gpus)
        return
    # Another process runs this job: let the slot go, wait for that process to let go of
    # the job, then take its outcome.
    xp._scheduler.release(grant)
    job.state = JobState.RUNNING
    failed_before = value
    delay = _POLL_MIN
    while True:
        await anyio.sleep(delay)
        delay = min(delay * 1.5, _POLL_MAX)
        kind, fd = await anyio.to_thread.run_sync(_try_lock, job.path)
        if kind == "done":
            job._finish(JobState.DONE)
            return
        if kind == "locked":
            record = await anyio.to_thread.run_sync(_new_failure, fd, job.path, failed_before)
            if record is not None:
                job._finish(JobState.FAILED, str(record.get("reason") or "failed"))
                return
            xp._scheduler.requeue(job)  # that run died without a verdict: ours now, in a slot
            return


async def _run_locked(xp: Experiment, job: Job, fd: int, gpus: list[int]) -> None:
    try:
        launcher = job.launcher or xp.launcher
        env = xp._job_env
        if "gpu" in xp._pool.totals:
            env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}
        spec = LaunchSpec(
            job_dir=job.path,
            argv=xp._worker_argv(job.path),
            env=env,
            requires=job.requires,
            lock_fd=fd,
            on_started=lambda info: _started(job, info),
            on_progress=lambda fraction, desc: _progressed(job, fraction, desc),
        )
        previous = await anyio.to_thread.run_sync(read_json, job.path / STATE)
        exit: Exit | None = None
        if previous and previous.get("launcher") == launcher.name:
            exit = await launcher.adopt(spec, previous)
        if exit is None and await anyio.to_thread.run_sync(_cancelled_since, job.path, xp.started):
            why = "cancelled by `legato jobs kill` before it started"
            await anyio.to_thread.run_sync(_record_cancelled, job.path, why, False)
            job._finish(JobState.CANCELLED, why)
            return
        if exit is None:
            info = {"experiment": xp.name, "launcher": launcher.name, "submitted": time.time()}
            # The params hold every configuration the task reaches (a chain of a thousand
            # tasks: a thousand): written in the thread, not in the event loop.
            await anyio.to_thread.run_sync(lambda: _start_run(job.path, xp._params(job), info))
            exit = await launcher.launch(spec)
        verdict, reason = await anyio.to_thread.run_sync(_verdict, job.path, exit)
        job._finish(verdict, reason)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_record_cancelled, job.path)
        raise
    finally:
        os.close(fd)


def _started(job: Job, info: dict[str, Any]) -> None:
    job.state = JobState.RUNNING
    pid = info.get("pid")
    job.pid = pid if isinstance(pid, int) else None


def _progressed(job: Job, fraction: float, desc: str | None) -> None:
    job.progress = fraction
    job.progress_desc = desc
