"""`legato jobs kill`: end running jobs, the way the scheduler does, and mark them CANCELLED.

The protocol shared with the scheduler and the job worker:

1. write the `cancel` marker into the job directory, so whoever sees the job end (its
   worker, which catches SIGTERM; the experiment, which reads the verdict) records
   "cancelled" rather than "failed";
2. SIGTERM the job's process group (a local job leads its own session), or `scancel` its
   SLURM job; wait for it to end; SIGKILL the group after a grace period;
3. if the job ended without a verdict (SIGKILL, or no process to signal), write
   `failed.json` {"state": "cancelled"} unless `done` exists.

The job's lock is never taken: an experiment may be trying it at that instant.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

from .._jobdir._files import host_name
from .._jobdir._job import JobDir
from .._launchers._launcher import killpg
from ._errors import InspectError
from ._procs import Locks, job_process, process_alive
from ._scan import UNRUN_STATES, JobEntry, read_job

__all__ = ["kill_job", "scancel"]

_POLL = 0.05
_START_WAIT = 5.0
"""How long a job whose lock is held but whose process is not up yet may take to start."""


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds or `timeout` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def _reread(entry: JobEntry) -> JobEntry:
    return read_job(entry.type_name, entry.identifier, entry.dir, Locks()) or entry


def _mark_cancelled(entry: JobEntry, reason: str) -> bool:
    """Record the verdict if nobody did: False when the job is DONE after all."""
    job = JobDir(entry.path)
    if job.is_done():
        return False
    record = job.failure()
    if record is None or record.get("state") not in UNRUN_STATES:
        job.write_failure(
            {"state": "cancelled", "reason": reason, "ended": time.time(), "by": "legato"}
        )
    return True


def _write_marker(entry: JobEntry) -> None:
    JobDir(entry.path).request_cancel(pid=os.getpid(), host=host_name())


def _end_local(entry: JobEntry, pid: int, grace: float) -> str:
    """SIGTERM the job's group, SIGKILL it after `grace`; how it ended."""
    _write_marker(entry)  # again: a run starting meanwhile clears an earlier marker
    killpg(pid, signal.SIGTERM)
    how = "SIGTERM"
    if not _wait(lambda: not process_alive(pid), grace):
        killpg(pid, signal.SIGKILL)
        how = "SIGKILL"
        if not _wait(lambda: not process_alive(pid), 10.0):
            raise InspectError(f"{entry.short}: process {pid} survived SIGKILL")
    killpg(pid, signal.SIGKILL)  # what the job started in its group, if any is left
    return f"{how}, pid {pid}"


def scancel(entry: JobEntry, options: list[str], doing: str) -> str:
    """Run `scancel OPTIONS ID` on the job's SLURM job (`legato jobs kill`, `jobs
    interrupt`); returns the id. `doing` says what for, in errors: "cancel", "signal"."""
    slurm_id = entry.info.get("slurm_id")
    if slurm_id is None:
        raise InspectError(f"{entry.short}: state.json has no slurm_id; cannot {doing} it")
    if shutil.which("scancel") is None:
        raise InspectError(
            f"{entry.short}: scancel is not on PATH; cannot {doing} SLURM job {slurm_id}"
        )
    argv = ["scancel", *options, str(slurm_id)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise InspectError(f"{entry.short}: {' '.join(argv)} failed: {why}")
    return str(slurm_id)


def _end_slurm(entry: JobEntry, grace: float) -> str:
    slurm_id = scancel(entry, [], "cancel")
    if "pid" in entry.info:
        # The worker runs: it records the verdict when SLURM's SIGTERM reaches it.
        _wait(lambda: _reread(entry).final, grace + 30.0)
    return f"scancel {slurm_id}"  # a job still queued never started: nothing to wait for


def kill_job(entry: JobEntry, grace: float) -> str:
    """End the job if it runs and leave it CANCELLED; a one-line account of what was done."""
    if entry.state == "done":
        return f"{entry.short}: already done, nothing to cancel"
    if entry.state in UNRUN_STATES:
        return f"{entry.short}: already {entry.state}, nothing to cancel"
    _write_marker(entry)
    if entry.info.get("launcher") == "slurm":
        how = _end_slurm(entry, grace)
    else:
        pid = job_process(entry.info, entry.identifier)
        if pid is None and entry.state == "running":
            # An experiment holds the lock: the job's process is about to start.
            def started() -> bool:
                nonlocal pid, entry
                entry = _reread(entry)
                pid = job_process(entry.info, entry.identifier)
                return pid is not None or entry.state != "running"

            _wait(started, _START_WAIT)
        if pid is not None:
            how = _end_local(entry, pid, grace)
        elif entry.final:
            return f"{entry.short}: {entry.state} before it could be cancelled"
        else:
            host = entry.info.get("host")
            if isinstance(host, str) and host and host != host_name():
                raise InspectError(
                    f"{entry.short}: its last run was on {host}, where this command cannot "
                    "see processes; run `legato jobs kill` there"
                )
            if entry.state == "running":
                raise InspectError(
                    f"{entry.short}: an experiment holds its lock but its process did not "
                    "start; try again"
                )
            how = "no process was running"
    if not _mark_cancelled(entry, "cancelled by `legato jobs kill`"):
        return f"{entry.short}: done before it could be cancelled"
    final = _reread(entry)
    return f"{entry.short}: {final.state} ({how})"
