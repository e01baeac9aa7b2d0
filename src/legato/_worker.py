"""The job entry point: `python -m legato._worker <job dir>`, in the job's own process.

Whatever launched it (a local subprocess, a SLURM batch script), it rebuilds the task from
the params file, runs `execute` with the job directory as working directory and its output
in the job's log files, and leaves exactly one verdict: the `done` marker, written
atomically only after `execute` returned, or a failure record. Imports are kept to what a
job needs: every job pays them.
"""

from __future__ import annotations

import gc
import inspect
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from ._workdir import (
    CANCEL,
    DONE,
    FAILED,
    LOCK,
    PARAMS,
    STATE,
    STDERR,
    STDOUT,
    host_name,
    read_json,
    write_json,
)

EXIT_FAILED = 1
EXIT_BUSY = 75
"""Another process holds the job's lock (only with `--lock`), or another SLURM job runs
it: nothing was run."""
_SLURM_RECORD_WAIT = 60.0


class Terminated(BaseException):
    """SIGTERM reached the job (cancellation, or its experiment died)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the verdict be written
    raise Terminated(f"terminated by signal {signum} ({signal.Signals(signum).name})")


def _die_with_parent() -> None:
    """Linux: SIGTERM when the experiment process dies, so a killed experiment leaves no
    job running unlocked; the next run of the experiment reruns it."""
    parent = os.environ.get("LEGATO_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        raise Terminated("the experiment process ended before the job started")


def _redirect_output(job_dir: Path) -> None:
    """Keep the launcher's stdout as the progress channel; send fd 1 and 2 to the logs."""
    sys.stdout.flush()
    progress_fd = os.dup(1)
    os.environ["LEGATO_PROGRESS_FD"] = str(progress_fd)
    for fd, name in ((1, STDOUT), (2, STDERR)):
        target = os.open(job_dir / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)


def _take_lock(job_dir: Path) -> bool:
    import fcntl

    fd = os.open(job_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    os.environ["LEGATO_LOCK_FD"] = str(fd)
    return True


def _run_state(job_dir: Path) -> dict[str, Any] | None:
    """state.json to extend with this run's pid and host; None if this run must not go on.

    Under SlurmLauncher the experiment records the SLURM id in state.json once sbatch has
    answered, which may be after this job started: wait for that record, so that neither
    write loses the other's keys. A different id there means another submission owns the job.
    """
    info = read_json(job_dir / STATE) or {}
    if os.environ.get("LEGATO_LAUNCHER") != "slurm" or "SLURM_JOB_ID" not in os.environ:
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
        info = read_json(job_dir / STATE) or {}
    info["slurm_id"] = mine
    return info


def run(job_dir: Path) -> int:
    """Run the job; return the process exit status."""
    started = time.time()
    try:
        _die_with_parent()
        from ._serialize import loads

        task = loads((job_dir / PARAMS).read_bytes())
        prepare_task(task, job_dir)
        result = task.execute()
        if inspect.isawaitable(result):
            import asyncio

            async def _await() -> Any:
                return await result

            asyncio.run(_await())
    except BaseException as exc:
        import traceback

        tb = traceback.format_exc()
        sys.stderr.write(tb)
        sys.stderr.flush()
        code = 128 + signal.SIGTERM if isinstance(exc, Terminated) else EXIT_FAILED
        if isinstance(exc, SystemExit) and isinstance(exc.code, int) and exc.code != 0:
            code = exc.code
        cancelled = isinstance(exc, Terminated) and os.path.exists(job_dir / CANCEL)
        write_json(
            job_dir / FAILED,
            {
                "state": "cancelled" if cancelled else "failed",
                "reason": f"{type(exc).__name__}: {exc}".rstrip(": "),
                "exit_code": code,
                "traceback": tb,
                "ended": time.time(),
                "pid": os.getpid(),
            },
        )
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    ended = time.time()
    write_json(job_dir / DONE, {"ended": ended, "duration": ended - started})
    return 0


def prepare_task(task: Any, job_dir: Path) -> None:
    """What a job sees: its directory, its tags, absolute path generators inside it."""
    from msgspec.structs import force_setattr

    from ._task import Task

    task.__dict__["__legato_taskdir__"] = job_dir
    if isinstance(task, Task):
        plan = type(task).__legato_plan__ or type(task)._legato_compile()
        for name, generator in plan.pathgens.items():
            relative = generator.name if isinstance(generator.name, str) else generator.name(task)
            force_setattr(task, name, job_dir / relative)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write("usage: python -m legato._worker JOB_DIR [--lock]\n")
        return 2
    job_dir = Path(args[0]).resolve()
    # What is loaded so far lives as long as the process: the cyclic garbage collector need
    # not go through it again, during the job nor at exit (6 ms of a trivial job's 80 on a
    # 2-core machine). The task's module, loaded below, and what the job creates are
    # collected as usual.
    gc.freeze()
    os.environ["LEGATO_WORKER"] = "1"
    os.environ["LEGATO_JOB_DIR"] = str(job_dir)
    if "--lock" in args[1:] and not _take_lock(job_dir):
        return EXIT_BUSY
    _redirect_output(job_dir)
    info = _run_state(job_dir)
    if info is None:
        return EXIT_BUSY
    info.update(pid=os.getpid(), host=host_name(), started=time.time())
    write_json(job_dir / STATE, info, durable=False)
    os.chdir(job_dir)
    signal.signal(signal.SIGTERM, _on_sigterm)
    return run(job_dir)


if __name__ == "__main__":
    sys.exit(main())
