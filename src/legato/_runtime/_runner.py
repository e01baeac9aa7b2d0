"""One job's run on the experiment side, once it holds a slot (`_scheduler.py` decides
when): take the job's lock, launch, and read the verdict from the job directory; launch
again while an interrupted attempt (a time limit, a preemption, `legato.Requeue`) has
retries left, keeping the lock and the slot in between, so that a retried job never runs
twice at the same time.

Disk work happens in worker threads, a few calls per job, so the event loop never waits
on the filesystem. All a run sees of its experiment is a `RunContext` (`_context.py`), and
it changes its job only through the transitions of `_job.py`.
"""

from __future__ import annotations

import contextvars
import errno
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec

from .._jobdir._files import bound_text
from .._jobdir._job import JobDir
from .._jobdir._layout import DONE, LOCK, REASON_MAX
from .._jobdir._maindir import main_lock_free, try_main_lock
from .._jobdir._names import RUN_STATE_ENV
from .._launchers._launcher import Exit, LaunchSpec
from ._attempts import Prepared, after_attempt, prepare_run, write_unwritten_state
from ._context import RunContext
from ._job import Job, JobState, finish, mark_ready, mark_running
from ._resources import Grant

__all__ = ["record_unrun", "run_job"]

_POLL_MIN, _POLL_MAX = 0.05, 2.0
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)
_log = logging.getLogger("legato")


def _new_failure(fd: int, job_dir: Path, before: int | None) -> dict[str, Any] | None:
    """After taking the lock another run held (closing `fd`): the failure record that run
    wrote, or None if it left none (died without a verdict). Disk work, for a thread."""
    os.close(fd)
    jd = JobDir(job_dir)
    if jd.failure_mtime() == before:
        return None
    return jd.failure() or {}


def _try_lock(job_dir: Path, prepare: Callable[[bool], Prepared] | None = None) -> tuple[str, Any]:
    """("done", None), ("busy", failure record mtime) or ("locked", fd); with `prepare`,
    ("locked", (fd, what `prepare(new)` returned once the lock is held)), in the same trip
    to a thread. `new`: the job directory holds nothing but its lock, so nothing of an
    earlier run can be there to look for (on a small cloud machine a file system lookup,
    found or not, can cost a millisecond of CPU: a first run is spared ten of them, for one
    listing). The experiment made the directory when the job was submitted, to show it
    while it waits; a `cancel` marker, another run's files, may have come in since."""
    jd = JobDir(job_dir)
    new = _make_dir(job_dir)
    if not new and jd.is_done():
        return "done", None
    fd = jd.try_lock()
    if fd is None:
        return "busy", jd.failure_mtime()
    if not new:
        names = os.listdir(job_dir)
        if DONE in names:  # finished between our check and the lock
            os.close(fd)
            return "done", None
        new = names == [LOCK]
    if prepare is None:
        return "locked", fd
    try:
        return "locked", (fd, prepare(new))
    except BaseException:
        os.close(fd)
        raise


def _make_dir(path: Path) -> bool:
    """Make the job directory; whether this call made it."""
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        return False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path)
        return True
    except FileExistsError:
        return False


def record_unrun(job_dir: Path, record: dict[str, Any]) -> None:
    """Leave `record` as the failed.json of a job that did not run here (a dependency
    failed, its experiment ended first, it could not be launched), so `legato jobs show`
    can say why. Only with the job's lock free and no `done`: another process that runs
    the job keeps its own verdict."""
    jd = JobDir(job_dir)
    try:
        fd = jd.try_lock()
    except OSError:
        return  # no directory (removed meanwhile), or a read-only workdir: nothing to say
    if fd is None:
        return
    try:
        if not jd.is_done():
            record = {**record, "ended": time.time()}
            record["reason"] = bound_text(str(record.get("reason") or ""), REASON_MAX)
            jd.write_failure(record, durable=False)
    except OSError:
        pass
    finally:
        os.close(fd)


def _record_cancelled(
    job_dir: Path,
    reason: str = "cancelled",
    overwrite: bool = True,
    handed: dict[str, Any] | None = None,
) -> None:
    jd = JobDir(job_dir)
    if jd.is_done():
        return
    write_unwritten_state(jd, handed)
    if not overwrite and jd.failure() is not None:
        return  # `legato jobs kill` recorded it already
    jd.write_failure({"state": "cancelled", "reason": reason, "ended": time.time()})


async def run_job(ctx: RunContext, job: Job, grant: Grant) -> None:
    """Drive a READY job that holds `grant` to a final state, or back in line when the
    process that ran it elsewhere died without a verdict; never raises except cancellation.
    Gives `grant` back whatever happens, once: here, unless a run that waits for another
    process gave it back already."""
    try:
        await _run_sharing(ctx, job, grant)
    except anyio.get_cancelled_exc_class():
        ctx.stop()  # the experiment is being left: start nothing more
        finish(job, JobState.CANCELLED, "cancelled")
        raise
    except Exception as exc:  # a bug or a disk error: fail this job, keep the others
        if isinstance(exc, OSError) and exc.errno in _UNWRITABLE:  # read-only, full
            _log.warning("job %s/%s: %s", job.type_name, job.identifier, exc)
            why = f"cannot write its job directory {job.path}: {exc.strerror}"
        else:
            _log.exception("job %s/%s: internal error", job.type_name, job.identifier)
            why = f"legato could not run the job: {exc!r}"
        finish(job, JobState.FAILED, why)
    finally:
        if not grant.released:
            ctx.release(grant)


_main_lock: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "legato_main_lock", default=None
)
"""In a job's run: the fd holding its main task directory's lock, which a local job's
process inherits (as it does the job's lock) so that it outlives a killed experiment."""


async def _run_sharing(ctx: RunContext, job: Job, grant: Grant) -> None:
    """`_run_holding`, holding first the lock of the job's main task directory when it
    shares one (`_partials.py`). When another process holds that lock, the job lets its
    slot go and waits, holding nothing, then goes back in line."""
    main = ctx.main_of(job)
    if main is None:
        await _run_holding(ctx, job, grant)
        return
    fd = await anyio.to_thread.run_sync(try_main_lock, main)
    if fd is None:
        ctx.release(grant)
        ctx.main_released(main)
        delay = _POLL_MIN
        while not await anyio.to_thread.run_sync(main_lock_free, main):
            await anyio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX)
        ctx.requeue(job)
        return
    token = _main_lock.set(fd)
    try:
        await _run_holding(ctx, job, grant)
    finally:
        _main_lock.reset(token)
        os.close(fd)
        ctx.main_released(main)


async def _run_holding(ctx: RunContext, job: Job, grant: Grant) -> None:
    launcher = job.launcher or ctx.launcher
    info = {"experiment": ctx.name, "launcher": launcher.name, "submitted": time.time()}

    # The params hold every configuration the task reaches (a chain of a thousand tasks: a
    # thousand): written in the thread, not in the event loop. The usual case (nothing to
    # adopt, not cancelled) takes the lock and prepares the run in one trip to a thread.
    hand = bool(getattr(launcher, "hands_state", False))

    def prepare(new: bool) -> Prepared:
        return prepare_run(job, lambda: ctx.params(job), info, new=new, hand=hand)

    kind, value = await anyio.to_thread.run_sync(_try_lock, job.path, prepare)
    if kind == "done":
        finish(job, JobState.DONE)
        return
    if kind == "locked":
        fd, prepared = value
        await _run_locked(ctx, job, fd, grant, prepared, info)
        return
    # Another process runs this job: let the slot go, wait for that process to let go of
    # the job, then take its outcome.
    ctx.release(grant)
    mark_running(job)
    failed_before = value
    delay = _POLL_MIN
    while True:
        await anyio.sleep(delay)
        delay = min(delay * 1.5, _POLL_MAX)
        kind, fd = await anyio.to_thread.run_sync(_try_lock, job.path)
        if kind == "done":
            finish(job, JobState.DONE)
            return
        if kind == "locked":
            record = await anyio.to_thread.run_sync(_new_failure, fd, job.path, failed_before)
            if record is not None and record.get("state") != "interrupted":
                finish(job, JobState.FAILED, str(record.get("reason") or "failed"))
                return
            # That run died without a verdict, or between two attempts: ours now, in a slot.
            ctx.requeue(job)
            return


async def _run_locked(
    ctx: RunContext,
    job: Job,
    fd: int,
    grant: Grant,
    prepared: Prepared,
    info: dict[str, Any],
) -> None:
    handed = prepared.handed
    try:
        launcher = job.launcher or ctx.launcher
        spec = LaunchSpec(
            job_dir=job.path,
            argv=ctx.argv(job.path),
            env=ctx.env_for(grant),
            requires=job.requires,
            lock_fd=fd,
            main_lock_fd=_main_lock.get(),
            on_started=lambda info: _started(job, info),
            on_progress=lambda fraction, desc: _progressed(job, fraction, desc),
            on_done=lambda: _done(ctx, job, grant),
            session=ctx.session,
        )
        step, previous, attempt, _ = prepared
        if handed is not None:  # the job's process writes its first state.json
            spec.env = {**spec.env, RUN_STATE_ENV: msgspec.json.encode(handed).decode()}
        exit: Exit | None = None
        if step == "adopt" and previous is not None:
            exit = await launcher.adopt(spec, previous)
            if exit is None:
                step, previous, attempt, _ = await anyio.to_thread.run_sync(
                    lambda: prepare_run(job, lambda: ctx.params(job), info, False)
                )
        if step == "cancelled":
            why = "cancelled by `legato jobs kill` before it started"
            await anyio.to_thread.run_sync(_record_cancelled, job.path, why, False)
            finish(job, JobState.CANCELLED, why)
            return
        if exit is None:
            job.attempts = attempt
            exit = await launcher.launch(spec)
        while True:
            if exit.done:  # the launcher saw `done` on disk: no trip to a thread to look
                finish(job, JobState.DONE)
                return
            verdict, reason, attempt = await anyio.to_thread.run_sync(
                after_attempt, job, exit, info, handed
            )
            handed = None  # written by now, by the job's process or by `after_attempt`
            if verdict is not None:
                job.attempts = attempt
                finish(job, verdict, reason)
                return
            _log.info(
                "%s/%s: attempt %d ended (%s); attempt %d",
                job.type_name,
                job.identifier[:12],
                attempt - 1,
                reason,
                attempt,
            )
            job.attempts = attempt
            mark_ready(job)
            spec.env = ctx.env_for(grant)  # the next attempt's record is in state.json
            exit = await launcher.launch(spec)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_record_cancelled, job.path, "cancelled", True, handed)
        raise
    except Exception as exc:  # it could not be launched: say why in its directory
        record = {"state": "failed", "stage": "launch",
                  "reason": f"legato could not run the job: {exc!r}"}  # fmt: skip
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_write_locked, job.path, record, handed)
        raise
    finally:
        os.close(fd)


def _write_locked(
    job_dir: Path, record: dict[str, Any], handed: dict[str, Any] | None = None
) -> None:
    """A failure record written while holding the job's lock (best effort: the job fails
    anyway, and an unwritable directory is often why), with the run's state.json if its
    process, which was to write it (`handed`), did not."""
    jd = JobDir(job_dir)
    if jd.is_done():
        return
    record = {**record, "ended": time.time()}
    record["reason"] = bound_text(str(record["reason"]), REASON_MAX)
    try:
        jd.write_failure(record, durable=False)
        write_unwritten_state(jd, handed)
    except OSError:
        pass


def _done(ctx: RunContext, job: Job, grant: Grant) -> None:
    """The job's process says it wrote `done`, and is exiting: the job is DONE. A job that
    holds nothing but its slot gives it back now, so that the next starts while the kernel
    tears this process down; one that holds resources (GPUs, memory) keeps them until its
    process is gone, as what it used is freed only then."""
    finish(job, JobState.DONE)
    if not job.requires and not grant.released:
        ctx.release(grant)


def _started(job: Job, info: dict[str, Any]) -> None:
    pid = info.get("pid")
    mark_running(job, pid if isinstance(pid, int) else None)


def _progressed(job: Job, fraction: float, desc: str | None) -> None:
    job.progress = fraction
    job.progress_desc = desc
