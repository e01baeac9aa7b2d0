"""The experiment's side of a job's attempts: what the end of one means.

An attempt that ended interrupted (a time limit, a preemption, `legato.Requeue`) is
charged to the job's retries or, when the cluster preempted it, to its own generous
budget of preemptions; while the budget lasts the attempt's logs are archived and the
next one is numbered in `state.json`, else the job gets its verdict. A fresh run starts
at attempt 1, or takes up a retry that an earlier run of the experiment did not get to.
The job's own process counts the attempts that SLURM restarts itself
(`_jobside/_worker._begin_attempt`). Plain blocking file work, run in worker threads.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .._jobdir._files import bound_text
from .._jobdir._job import JobDir
from .._jobdir._layout import (
    CANCEL,
    FAILED,
    INTERRUPT,
    PROGRESS,
    REASON_MAX,
    SLURM_ERR,
    SLURM_OUT,
    STDERR,
    STDOUT,
)
from .._launchers._launcher import Exit
from ._job import Job, JobState, submitted

__all__ = ["Prepared", "after_attempt", "prepare_run", "write_unwritten_state"]


_ATTEMPT_FILES = (STDOUT, STDERR, FAILED, SLURM_OUT, SLURM_ERR)
"""What an attempt leaves that the next one would overwrite: moved to `attempts/<N>/`."""
_COUNTERS = ("attempt", "retried", "preempted")
_FIRST_ATTEMPT = {"attempt": 1, "retried": 0, "preempted": 0}
"""The counters of a fresh run."""


def _counters(info: dict[str, Any]) -> dict[str, int]:
    counters = {name: info.get(name) for name in _COUNTERS}
    return {k: v if isinstance(v, int) and v >= 0 else 0 for k, v in counters.items()}


def _attempt_state(job: Job, info: dict[str, Any], counters: dict[str, int]) -> dict[str, Any]:
    return {
        **info,
        **counters,
        "timeout": job.timeout,
        "max_preemptions": job.max_preemptions,
    }


def _start_run(job: Job, params: bytes, info: dict[str, Any], previous: dict[str, Any]) -> int:
    """With the lock held: a fresh run's params and state; old verdicts go. Its attempt
    number.

    A retry that an earlier run of the experiment did not get to (it ended between two
    attempts, or while one ran) is taken up: the attempts go on from there, with what is
    left of the retries. Otherwise the run starts at attempt 1, without old attempts' logs.
    """
    jd = JobDir(job.path)
    jd.write_params(params)
    record = jd.failure()
    counters = _counters(previous)
    if record is not None and record.get("state") == "interrupted" and counters["attempt"]:
        if _charge(record, counters, job) is None:
            jd.archive_attempt(counters["attempt"], _ATTEMPT_FILES)
            counters["attempt"] += 1
        else:
            counters = {}
    elif not (record is None and counters["attempt"] > 1 and "started" not in previous):
        counters = {}  # (else: a retry was set up, then its experiment ended: take it)
    if not counters:
        counters = dict(_FIRST_ATTEMPT)
        jd.clear_attempts()
    jd.discard(FAILED, PROGRESS, CANCEL, INTERRUPT)
    jd.write_state(_attempt_state(job, info, counters))
    return counters["attempt"]


def _charge(record: dict[str, Any], counters: dict[str, int], job: Job) -> str | None:
    """Count an interrupted attempt against its budget; the failure reason when it is
    spent. Preemptions have their own, generous budget: the cluster's doing, not the job's."""
    kind = record.get("kind")
    reason = str(record.get("reason") or "interrupted")
    attempts = counters["attempt"]
    made = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if kind == "preempted":
        counters["preempted"] += 1
        if counters["preempted"] > job.max_preemptions:
            return (
                f"{reason}; preempted {counters['preempted']} times, more than "
                f"max_preemptions={job.max_preemptions}, {made}"
            )
        return None
    counters["retried"] += 1
    if counters["retried"] > job.retries:
        return f"{reason}, {made}"
    return None


def after_attempt(
    job: Job, exit: Exit, info: dict[str, Any], handed: dict[str, Any] | None = None
) -> tuple[JobState | None, str | None, int]:
    """After an attempt: (final state, reason, attempts made), or (None, why it ended,
    next attempt's number) once the next attempt is set up (logs archived, state.json).
    `handed`: the state.json record the attempt's process was to write (a first run)."""
    jd = JobDir(job.path)
    recorded = jd.state()
    counters = _counters(recorded or {})
    attempts = max(1, counters["attempt"])
    if jd.is_done():
        return JobState.DONE, None, attempts
    if recorded is None and handed is not None:  # its process never wrote it
        jd.write_state(handed)
    record = jd.failure()
    if record is None and exit.interruption is not None and not jd.is_done():
        record = {"state": "interrupted", "kind": exit.interruption, "reason": exit.reason}
        record.update(exit_code=exit.exit_code, signal=exit.signal, ended=time.time())
        jd.write_failure(record)
    if jd.is_done() or record is None or record.get("state") != "interrupted":
        state, reason = _verdict(jd, exit)
        return state, reason, attempts
    # (`legato jobs interrupt` signals through scancel too: its marker tells them apart)
    cancelled = exit.cancelled and record.get("kind") == "preempted"
    cancelled = cancelled and not jd.has_interrupt()
    if cancelled or jd.has_cancel():  # `legato jobs kill`, or `scancel`
        reason = "cancelled in SLURM (scancel)" if cancelled else "cancelled by request"
        jd.write_failure({**record, "state": "cancelled", "reason": reason})
        return JobState.CANCELLED, reason, attempts
    spent = _charge(record, counters, job)
    if spent is not None:
        jd.write_failure({**record, "state": "failed", "reason": spent})
        return JobState.FAILED, spent, attempts
    jd.archive_attempt(attempts, _ATTEMPT_FILES)
    jd.discard(PROGRESS, INTERRUPT)
    counters["attempt"] = attempts + 1
    info = {**info, "submitted": time.time()}
    jd.write_state(_attempt_state(job, info, counters))
    return None, str(record.get("reason") or "interrupted"), attempts + 1


class Prepared(NamedTuple):
    """What `prepare_run` found and did."""

    step: str
    """"adopt", "cancelled" or "started"."""
    previous: dict[str, Any] | None
    """The state.json of the run before, if any."""
    attempt: int
    """The number of the attempt to launch (0 unless started)."""
    handed: dict[str, Any] | None = None
    """The state.json record that the job's process is to write, when it was not written
    (`prepare_run`'s `hand`)."""


def prepare_run(
    job: Job,
    params: Callable[[], bytes],
    state: dict[str, Any],
    adopt: bool = True,
    new: bool = False,
    hand: bool = False,
) -> Prepared:
    """With the lock held, before launching: ("adopt", previous state, 0) when the run that
    the same launcher recorded may be followed instead, ("cancelled", None, 0) when
    `legato jobs kill` asked, since the job was submitted, that it not run, else
    ("started", previous state, attempt number) once a fresh run's params and state are
    written (`_start_run`, which takes up a retry an earlier run did not get to).

    `new`: the job directory holds nothing of an earlier run, so there is nothing to look
    for. Its state.json is then left to the job's process when `hand` (the launcher hands
    the job its environment as given): returned as `handed`, it costs the directory one
    file rather than two, the second of which would replace the first."""
    jd = JobDir(job.path)
    if new:  # nothing of an earlier run to adopt, cancel, take up or clear
        jd.write_params(params())
        record = _attempt_state(job, state, _FIRST_ATTEMPT)
        if hand:
            return Prepared("started", None, 1, record)
        jd.write_state(record)
        return Prepared("started", None, 1)
    previous = jd.state()
    if adopt and previous and previous.get("launcher") == state["launcher"]:
        return Prepared("adopt", previous, 0)
    if jd.cancelled_since(submitted(job)):
        return Prepared("cancelled", None, 0)
    return Prepared("started", previous, _start_run(job, params(), state, previous or {}))


def write_unwritten_state(jd: JobDir, handed: dict[str, Any] | None) -> None:
    """The state.json of a first run whose process was to write it (`handed`), and did not
    (it could not be launched, was cancelled first, or died as it started): who ran the
    job, and its attempts, stay on record beside its failure."""
    if handed is not None and jd.state() is None:
        jd.write_state(handed)


def _verdict(jd: JobDir, exit: Exit) -> tuple[JobState, str | None]:
    if jd.is_done():
        return JobState.DONE, None
    record = jd.failure()
    if record is not None and exit.reason is None:
        if record.get("state") == "cancelled":
            return JobState.CANCELLED, str(record.get("reason") or "cancelled")
        return JobState.FAILED, bound_text(str(record.get("reason") or "failed"), REASON_MAX)
    if jd.has_cancel():
        jd.write_failure(
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
    jd.write_failure(
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
