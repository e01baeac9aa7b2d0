"""One job's run on the experiment side, once it holds a slot (`_scheduler.py` decides
when): take the job's lock, launch, and read the verdict from the job directory.

Disk work happens in worker threads, a few calls per job, so the event loop never waits
on the filesystem.
"""

from __future__ import annotations

import contextvars
import errno
import fcntl
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ._job import Job, JobState
from ._launcher import Exit, LaunchSpec
from ._partials import main_lock_free, try_main_lock
from ._resources import Grant
from ._workdir import (
    CANCEL,
    DONE,
    FAILED,
    LOCK,
    PARAMS,
    PROGRESS,
    REASON_MAX,
    STATE,
    atomic_write,
    bound_text,
    read_json,
    write_json,
)

if TYPE_CHECKING:
    from ._experiment import Experiment

__all__ = ["record_unrun", "run_job"]

_POLL_MIN, _POLL_MAX = 0.05, 2.0
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


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
        return JobState.FAILED, bound_text(str(record.get("reason") or "failed"), REASON_MAX)
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


def record_unrun(job_dir: Path, record: dict[str, Any]) -> None:
    """Leave `record` as the failed.json of a job that did not run here (a dependency
    failed, its experiment ended first, it could not be launched), so `legato jobs show`
    can say why. Only with the job's lock free and no `done`: another process that runs
    the job keeps its own verdict."""
    try:
        fd = os.open(job_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return  # no directory (removed meanwhile), or a read-only workdir: nothing to say
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        if not os.path.exists(job_dir / DONE):
            record = {**record, "ended": time.time()}
            record["reason"] = bound_text(str(record.get("reason") or ""), REASON_MAX)
            write_json(job_dir / FAILED, record, durable=False)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        await _run_sharing(xp, job, grant)
    except anyio.get_cancelled_exc_class():
        xp._scheduler.stop()  # the experiment is being left: start nothing more
        if not job.state.final:
            job._finish(JobState.CANCELLED, "cancelled")
            xp._job_finished(job)
        raise
    except Exception as exc:  # a bug or a disk error: fail this job, keep the others
        if isinstance(exc, OSError) and exc.errno in _UNWRITABLE:  # read-only, full
            xp._log.warning("job %s/%s: %s", job.type_name, job.identifier, exc)
            why = f"cannot write its job directory {job.path}: {exc.strerror}"
        else:
            xp._log.exception("job %s/%s: internal error", job.type_name, job.identifier)
            why = f"legato could not run the job: {exc!r}"
        job._finish(JobState.FAILED, why)
        xp._job_finished(job)
    else:
        if job.state.final:
            xp._job_finished(job)
    finally:
        xp._scheduler.release(grant)


_main_lock: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "legato_main_lock", default=None
)
"""In a job's run: the fd holding its main task directory's lock, which a local job's
process inherits (as it does the job's lock) so that it outlives a killed experiment."""


async def _run_sharing(xp: Experiment, job: Job, grant: Grant) -> None:
    """`_run_holding`, holding first the lock of the job's main task directory when it
    shares one (`_partials.py`). When another process holds that lock, the job lets its
    slot go and waits, holding nothing, then goes back in line."""
    main = xp._scheduler.main_of(job)
    if main is None:
        await _run_holding(xp, job, grant)
        return
    fd = await anyio.to_thread.run_sync(try_main_lock, main)
    if fd is None:
        xp._scheduler.release(grant)
        xp._scheduler.main_released(main)
        delay = _POLL_MIN
        while not await anyio.to_thread.run_sync(main_lock_free, main):
            await anyio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX)
        xp._scheduler.requeue(job)
        return
    token = _main_lock.set(fd)
    try:
        await _run_holding(xp, job, grant)
    finally:
        _main_lock.reset(token)
        os.close(fd)
        xp._scheduler.main_released(main)


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
            os.close(fd)
            if _mtime(job.path / FAILED) != failed_before:
                record = read_json(job.path / FAILED) or {}
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
            main_lock_fd=_main_lock.get(),
            on_started=lambda info: _started(job, info),
            on_progress=lambda fraction, desc: _progressed(job, fraction, desc),
        )
        previous = await anyio.to_thread.run_sync(read_json, job.path / STATE)
        exit: Exit | None = None
        if previous and previous.get("launcher") == launcher.name:
            exit = await launcher.adopt(spec, previous)
        if exit is None and await anyio.to_thread.run_sync(
            _cancelled_since, job.path, job._submitted
        ):
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
    except Exception as exc:  # it could not be launched: say why in its directory
        record = {"state": "failed", "stage": "launch",
                  "reason": f"legato could not run the job: {exc!r}"}  # fmt: skip
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_write_locked, job.path, record)
        raise
    finally:
        os.close(fd)


def _write_locked(job_dir: Path, record: dict[str, Any]) -> None:
    """A failure record written while holding the job's lock (best effort: the job fails
    anyway, and an unwritable directory is often why)."""
    if os.path.exists(job_dir / DONE):
        return
    record = {**record, "ended": time.time()}
    record["reason"] = bound_text(str(record["reason"]), REASON_MAX)
    try:
        write_json(job_dir / FAILED, record, durable=False)
    except OSError:
        pass


def _started(job: Job, info: dict[str, Any]) -> None:
    job.state = JobState.RUNNING
    pid = info.get("pid")
    job.pid = pid if isinstance(pid, int) else None


def _progressed(job: Job, fraction: float, desc: str | None) -> None:
    job.progress = fraction
    job.progress_desc = desc
