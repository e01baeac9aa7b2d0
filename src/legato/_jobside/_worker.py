"""The job entry point: `python -m legato._jobside._worker <job dir>`, in the job's own process.

Whatever launched it (a local subprocess, a SLURM batch script), it rebuilds the task from
the params file, runs `execute` with the job directory as working directory and its output
in the job's log files, and leaves exactly one verdict: the `done` marker, written
atomically only after `execute` returned and its result, if any, was stored (see
`legato._core._result`), or a failure record. Imports are kept to what a job needs: every job
pays them.

An attempt that is stopped from outside (SIGTERM at a time limit, a preemption, a
cancellation) sees `legato.Interrupted` raised in its main thread, so `execute` can save a
checkpoint. Its record then says why it ended: "cancelled" (a `cancel` marker), or
"interrupted" with a kind (`interrupt` marker, a SLURM signal, `legato.Requeue`), which
the experiment (`_runner.py`) turns into another attempt or a failure.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec

from .._errors import Interrupted, Requeue
from .._jobdir._files import bound_text, decode_json, host_name
from .._jobdir._job import JobDir
from .._jobdir._layout import FAILED, INTERRUPT, PROGRESS, REASON_MAX, STDERR, STDOUT, TRACEBACK_MAX
from .._jobdir._names import (
    ATTEMPT_ENV,
    DEADLINE_ENV,
    GRACE_PERIOD_ENV,
    JOB_DIR_ENV,
    LAUNCHER_ENV,
    LOCK_FD_ENV,
    PARENT_PID_ENV,
    PROGRESS_FD_ENV,
    RUN_STATE_ENV,
    TIME_LIMIT_ENV,
    WORKER_ENV,
)

EXIT_FAILED = 1
EXIT_BUSY = 75
"""Another process holds the job's lock (only with `--lock`), or another SLURM job runs
it: nothing was run."""
_SLURM_RECORD_WAIT = 60.0
DEFAULT_GRACE = 5.0
"""Seconds between the SIGTERM of a time limit and the end of the attempt, when the
launcher does not say (`LEGATO_GRACE_PERIOD`)."""
DEFAULT_MAX_PREEMPTIONS = 100
_SLURM_SIGNAL_SLACK = 65.0
"""SLURM sends the warning signal up to a minute early: a SIGTERM this close to the SLURM
time limit (plus the grace period) is taken for it."""

_verdict = threading.Lock()
"""Held by whoever writes the attempt's verdict: the main thread, or the time limit's
thread when the task outlives its grace period."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the verdict be written
    raise Interrupted(f"terminated by signal {signum} ({signal.Signals(signum).name})")


def _env_seconds(name: str) -> float | None:
    try:
        value = float(os.environ[name])
    except (KeyError, ValueError):
        return None
    return value if value > 0 else None


class _Limits:
    """The attempt's time limits: `submit(timeout=...)`, enforced here on any launcher,
    and SLURM's own `--time`, which SLURM enforces (`LEGATO_TIME_LIMIT`, in seconds)."""

    def __init__(self, info: dict[str, Any], started: float) -> None:
        timeout = info.get("timeout")
        self.timeout = float(timeout) if isinstance(timeout, (int, float)) else None
        grace = os.environ.get(GRACE_PERIOD_ENV, "")
        self.grace = float(grace) if grace.replace(".", "", 1).isdigit() else DEFAULT_GRACE
        self.slurm = _env_seconds(TIME_LIMIT_ENV) if "SLURM_JOB_ID" in os.environ else None
        self.slurm_deadline = started + self.slurm if self.slurm else None

    def start(self, job_dir: Path) -> None:
        """At the start of `execute`: the deadline `legato.remaining_time()` reads, and
        the timer of `timeout`."""
        now = time.time()
        ends = [now + self.timeout] if self.timeout is not None else []
        ends += [self.slurm_deadline] if self.slurm_deadline is not None else []
        if ends:
            os.environ[DEADLINE_ENV] = repr(min(ends))
        if self.timeout is not None:
            timer = threading.Timer(self.timeout, self._reached, (job_dir,))
            timer.daemon = True
            timer.start()

    def _reached(self, job_dir: Path) -> None:
        """At the time limit: as `legato jobs interrupt` does, the `interrupt` marker then
        SIGTERM; after the grace period, the end of the process, with its verdict."""
        reason = f"time limit of {self.timeout:g} s reached"
        jd = JobDir(job_dir)
        jd.request_interrupt({"kind": "timeout", "reason": reason, "time": time.time()})
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(self.grace)
        if not _verdict.acquire(blocking=False):
            return  # the main thread is writing its verdict
        sys.stderr.write(
            f"legato: the job was still running {self.grace:g} s after the SIGTERM of its "
            "time limit: killed\n"
        )
        with contextlib.suppress(Exception):  # what it printed last, kept in its log
            sys.stdout.flush()
        sys.stderr.flush()
        jd.write_failure(
            {
                "state": "interrupted",
                "kind": "timeout",
                "reason": f"{reason} (killed {self.grace:g} s after SIGTERM)",
                "exit_code": 128 + signal.SIGKILL,
                "ended": time.time(),
                "pid": os.getpid(),
            },
        )
        os._exit(128 + signal.SIGKILL)

    def near_slurm_limit(self) -> bool:
        return self.slurm_deadline is not None and (
            time.time() >= self.slurm_deadline - self.grace - _SLURM_SIGNAL_SLACK
        )


def _interruption(job_dir: Path, exc: BaseException, limits: _Limits) -> tuple[str, str] | None:
    """(kind, reason) when the attempt was interrupted rather than failed or cancelled."""
    if isinstance(exc, Requeue):
        return "requeue", f"Requeue: {exc}".rstrip(": ")
    jd = JobDir(job_dir)
    if not isinstance(exc, Interrupted) or jd.has_cancel():
        return None
    marker = jd.interrupt_requested()
    if marker is not None and marker.get("kind") in ("timeout", "preempted"):
        return str(marker["kind"]), str(marker.get("reason") or "interrupted")
    if os.environ.get(LAUNCHER_ENV) == "slurm" and "SLURM_JOB_ID" in os.environ:
        if limits.near_slurm_limit():
            return "timeout", f"SLURM time limit of {limits.slurm:g} s reached"
        return "preempted", "SIGTERM from SLURM (preemption, requeue or node failure)"
    return None


def _die_with_parent() -> None:
    """Linux: SIGTERM when the experiment process dies, so a killed experiment leaves no
    job running unlocked; the next run of the experiment reruns it."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent:
        return
    prctl = libc_function("prctl")
    if prctl is None:
        return
    prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        raise Interrupted("the experiment process ended before the job started")


_libc: dict[str, Any] = {}


def libc_function(name: str) -> Any:
    """The C library's function `name` (`prctl`, `fflush`; Linux), or None. Looked up once
    a process: the warm server looks up its jobs' before forking, so that they do not load
    ctypes' wrappers each (0.5 ms a job)."""
    if name not in _libc:
        function = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                function = getattr(ctypes.CDLL(None, use_errno=True), name)
            except (OSError, AttributeError):
                pass
        _libc[name] = function
    return _libc[name]


def flush_c_stdio() -> None:
    """Write out what C code left in its stdio buffers (`fflush(NULL)`), which an
    `os._exit` would drop: a forked process's way out, and the warm server's before each
    fork, whose children would each print it again."""
    fflush = libc_function("fflush")
    if fflush is not None:
        fflush(None)


def _watch_parent() -> None:
    """If the experiment process dies, SIGKILL this job's process group once the grace
    period has passed: a job that ignores the SIGTERM of its parent's death (or catches
    `Interrupted` and goes on) must not run on unwatched, holding its lock.

    A thread that looks at the parent pid twice a second: it costs nothing while the job
    runs, and it works whatever the job does with its signals. A bare `_thread` one: a
    `threading.Thread` costs a forked job 1.5 ms more to start (its bookkeeping, and a
    wait until it runs), and the job need not see it in `threading.enumerate()`."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent:
        return
    try:
        grace = float(os.environ.get(GRACE_PERIOD_ENV, "5"))
    except ValueError:
        grace = 5.0
    import _thread

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(0.5)
        time.sleep(grace)
        try:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        except OSError:
            os.kill(os.getpid(), signal.SIGKILL)

    _thread.start_new_thread(watch, ())


def _redirect_output(job_dir: Path) -> None:
    """Keep the launcher's stdout as the progress channel; send fd 1 and 2 to the logs."""
    sys.stdout.flush()
    progress_fd = os.dup(1)
    os.environ[PROGRESS_FD_ENV] = str(progress_fd)
    jd = JobDir(job_dir)
    for fd, name in ((1, STDOUT), (2, STDERR)):
        target = jd.open_log(name)
        os.dup2(target, fd)
        os.close(target)


def _take_lock(job_dir: Path) -> bool:
    fd = JobDir(job_dir).try_lock()
    if fd is None:
        return False
    os.environ[LOCK_FD_ENV] = str(fd)
    return True


def _run_state(job_dir: Path) -> dict[str, Any] | None:
    """state.json to extend with this run's pid and host; None if this run must not go on.

    Under SlurmLauncher the experiment records the SLURM id in state.json once sbatch has
    answered, which may be after this job started: wait for that record, so that neither
    write loses the other's keys. A different id there means another submission owns the job.
    """
    jd = JobDir(job_dir)
    handed = os.environ.pop(RUN_STATE_ENV, None)  # the job's own processes need not see it
    # What is on disk comes first: a process of this run that started before (its warm
    # server died under it) wrote the record, with its `started`, which makes this one
    # its next attempt.
    info = jd.state() or (_handed_state(handed) if handed else None) or {}
    if os.environ.get(LAUNCHER_ENV) != "slurm" or "SLURM_JOB_ID" not in os.environ:
        return info
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    mine = f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    deadline = time.monotonic() + _SLURM_RECORD_WAIT
    while info.get("slurm_id") != mine:
        if time.monotonic() > deadline:
            if "slurm_id" not in info:
                break  # its experiment died before recording it: run, and say who we are
            sys.stderr.write(f"legato: SLURM job {info['slurm_id']} runs this job, not {mine}\n")
            return None
        time.sleep(0.05)
        info = jd.state() or {}
    info["slurm_id"] = mine
    return info


def _handed_state(text: str) -> dict[str, Any] | None:
    """The record the experiment handed over instead of writing state.json (a first run;
    `LEGATO_RUN_STATE`), or None if it cannot be read."""
    try:
        info = decode_json(text)
    except msgspec.DecodeError:
        return None
    return info if isinstance(info, dict) else None


def run(job_dir: Path, limits: _Limits | None = None) -> int:
    """Run the job; return the process exit status."""
    started = time.time()
    stored: str | None = None
    jd = JobDir(job_dir)
    try:
        _die_with_parent()
        from .._core._serialize import loads
        from .._core._task import resolve_paths

        task = loads(jd.read_params())
        resolve_paths(task, job_dir)
        if limits is not None:
            limits.start(job_dir)
        result = task.execute()
        if inspect.isawaitable(result):
            import asyncio

            async def _await() -> Any:
                return await result

            result = asyncio.run(_await())
        if result is not None:  # before `done`, which names it: never DONE without it
            from .._core._result import store_result

            stored = store_result(job_dir, result)
    except BaseException as exc:
        try:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        except Interrupted:  # the one SIGTERM, as the attempt ended otherwise: that counts
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        import traceback

        tb = traceback.format_exc()
        sys.stderr.write(tb)
        sys.stderr.flush()
        code = 128 + signal.SIGTERM if isinstance(exc, Interrupted) else EXIT_FAILED
        if isinstance(exc, SystemExit) and isinstance(exc.code, int) and exc.code != 0:
            code = exc.code
        _verdict.acquire()  # for good: past this point, the time limit's thread stands down
        interruption = _interruption(job_dir, exc, limits or _Limits({}, started))
        cancelled = isinstance(exc, Interrupted) and jd.has_cancel()
        if cancelled:
            reason = "cancelled by `legato jobs kill`"
        else:
            reason = bound_text(f"{type(exc).__name__}: {exc}".rstrip(": "), REASON_MAX)
        record = {
            "state": "cancelled" if cancelled else "failed",
            "reason": reason,
            "exit_code": code,
            "traceback": bound_text(tb, TRACEBACK_MAX),
            "ended": time.time(),
            "pid": os.getpid(),
        }
        if interruption is not None:
            record.update(state="interrupted", kind=interruption[0], reason=interruption[1])
        jd.write_failure(record)
        return code
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # done is done: a late SIGTERM changes nothing
    _verdict.acquire()
    sys.stdout.flush()
    sys.stderr.flush()
    ended = time.time()
    marker: dict[str, Any] = {"ended": ended, "duration": ended - started}
    if stored is not None:
        marker["result"] = stored
    jd.write_done(marker)
    return 0


def _begin_attempt(job_dir: Path, info: dict[str, Any]) -> str | None:
    """Number this attempt in `info` (state.json); the failure reason when it must not run.

    The experiment numbers the attempts it launches. A worker that finds its state.json
    already claimed by a worker before it was restarted by SLURM itself (a preemption, a
    requeue, a node failure), with no experiment involved: it archives that attempt, counts
    a preemption and stops once there were more than `max_preemptions`.
    """
    restarts = os.environ.get("SLURM_RESTART_COUNT", "")
    restarted = "started" in info or (
        restarts.isdigit() and int(restarts) > int(info.get("slurm_restarts") or 0)
    )
    if restarts.isdigit():
        info["slurm_restarts"] = int(restarts)
    attempt = int(info.get("attempt") or 1)
    if restarted:
        jd = JobDir(job_dir)
        record = jd.failure()
        jd.archive_attempt(attempt, (STDOUT, STDERR, FAILED))
        if record is None or record.get("state") != "interrupted":
            record = {"state": "interrupted", "ended": time.time()}
        record.update(kind="preempted", reason="requeued by SLURM")
        jd.write_attempt_failure(attempt, record)
        jd.discard(INTERRUPT, PROGRESS)
        attempt += 1
        preempted = int(info.get("preempted") or 0) + 1
        info.update(attempt=attempt, preempted=preempted)
        limit = info.get("max_preemptions", DEFAULT_MAX_PREEMPTIONS)
        if isinstance(limit, int) and preempted > limit:
            return (
                f"preempted {preempted} times, more than max_preemptions={limit}, "
                f"{attempt - 1} attempts"
            )
    info["attempt"] = attempt
    os.environ[ATTEMPT_ENV] = str(attempt)
    return None


def main(argv: list[str] | None = None, *, resolved: bool = False) -> int:
    """`resolved`: the job directory given is a real path already (the warm server's)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write("usage: python -m legato._jobside._worker JOB_DIR [--lock]\n")
        return 2
    job_dir = Path(args[0]) if resolved else Path(args[0]).resolve()
    # What is loaded so far lives as long as the process: the cyclic garbage collector need
    # not go through it again, during the job nor at exit (6 ms of a trivial job's 80 on a
    # 2-core machine). The task's module, loaded below, and what the job creates are
    # collected as usual.
    gc.freeze()
    os.environ[WORKER_ENV] = "1"
    os.environ[JOB_DIR_ENV] = str(job_dir)
    if "--lock" in args[1:] and not _take_lock(job_dir):
        return EXIT_BUSY
    info = _run_state(job_dir)
    if info is None:
        return EXIT_BUSY
    refused = _begin_attempt(job_dir, info)  # before the logs: it may archive the last ones
    _redirect_output(job_dir)
    started = time.time()
    info.update(pid=os.getpid(), host=host_name(), started=started)
    jd = JobDir(job_dir)
    jd.write_state(info)
    if refused is not None:
        sys.stderr.write(f"legato: {refused}\n")
        jd.write_failure({"state": "failed", "reason": refused, "ended": time.time()})
        return EXIT_FAILED
    limits = _Limits(info, started)
    os.chdir(job_dir)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _watch_parent()
    return run(job_dir, limits)


if __name__ == "__main__":
    sys.exit(main())
