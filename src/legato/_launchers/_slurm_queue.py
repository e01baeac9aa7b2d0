"""The SLURM queue as one event loop sees it: every `SlurmLauncher` job of the loop's
experiments goes through one `SlurmQueue`, so that jobs ready together go out as one
`sbatch --array` and one `squeue` call per poll follows them all, whatever the launcher
instance and whatever the experiment.

No background task makes the SLURM calls: the pending `launch()`/`adopt()` calls elect
one of themselves, the *leader*, which submits, polls and scancels for all while the
others wait on their own event. When the leader's job ends, or its task is cancelled, it
steps down and wakes the others, one of which takes over. Every subprocess thus runs
inside a launch call, in an experiment's task group: nothing outlives the experiments.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from .._jobdir._layout import SLURM_ERR, SLURM_OUT
from .._jobdir._names import WORKDIR_ENV
from ._launcher import Exit, LaunchSpec
from ._slurm_batch import (
    STARTED,
    TERMINAL,
    array_script,
    job_env,
    job_name,
    look,
    make_batch,
    parse_job_id,
    parse_squeue,
    record_ids,
    remove_batches,
    sbatch_message,
    single_script,
    slurm_ending,
    vanished,
    write_cancel,
)

if TYPE_CHECKING:
    from ._slurm import SlurmLauncher

__all__ = ["SlurmQueue", "this_loops_queue"]

_log = logging.getLogger("legato")

_NEW, _SUBMITTING, _QUEUED, _GONE = "new", "submitting", "queued", "gone"
"""Local-job plumbing, meaningless on a compute node (SLURM sets GPUs itself)."""
_COMMAND_TIMEOUT = 120.0
_QUICK = 0.25
_REQUEUE_WAIT = 30.0
"""How long a job that SLURM stopped to requeue may stay out of squeue's list before the
experiment takes it for gone (and submits it again itself)."""
"""Poll delay while a job is just cancelled or out of the queue without a verdict."""

_INTERRUPTIONS = {
    "BOOT_FAIL": "preempted",
    "NODE_FAIL": "preempted",
    "PREEMPTED": "preempted",
    "TIMEOUT": "timeout",
}
"""The last squeue states of a job that SLURM stopped before it could write a verdict:
the kind of interruption, so the job runs again (`Exit.interruption`)."""

_queues: dict[int, SlurmQueue] = {}


def this_loops_queue() -> SlurmQueue:
    """The queue of the event loop running in this thread (one loop per thread)."""
    key = threading.get_ident()
    queue = _queues.get(key)
    if queue is None:
        queue = _queues[key] = SlurmQueue(key)
    return queue


@dataclass(eq=False)
class _Entry:
    """One job followed by the queue."""

    spec: LaunchSpec
    launcher: SlurmLauncher
    slurm_id: str | None = None
    status: str = _NEW
    adopting: bool = False  # adopted, not yet seen in squeue
    started: bool = False  # seen running
    arrived: float = field(default_factory=anyio.current_time)
    wake: anyio.Event = field(default_factory=anyio.Event)
    state: str | None = None  # last squeue state
    exit: Exit | None = None
    batch: Path | None = None  # array directory
    cancel: bool = False
    scancelled: bool = False
    missing: bool = False  # out of the queue without a verdict at the last poll
    requeued: float | None = None  # when it was first seen out of the queue, requeued
    progress: Any = None


class SlurmQueue:
    """Submits, follows and cancels the SLURM jobs of one event loop."""

    def __init__(self, key: int) -> None:
        self._key = key
        self._entries: dict[_Entry, None] = {}  # an ordered set
        self._pending: list[_Entry] = []
        self._leader: _Entry | None = None
        self._kick: anyio.Event | None = None
        self._interval = 0.0  # current poll interval; 0 until the first submission
        self._next_poll = 0.0
        self._batches: dict[Path, int] = {}  # array directory -> its jobs not yet gone
        self._squeue_failures = 0

    async def launch(self, launcher: SlurmLauncher, spec: LaunchSpec) -> Exit:
        entry = _Entry(spec, launcher)
        self._pending.append(entry)
        self._entries[entry] = None
        self._nudge()
        await self._run(entry)
        return entry.exit or Exit(reason=vanished(None, ""))

    async def adopt(self, launcher: SlurmLauncher, spec: LaunchSpec, slurm_id: str) -> Exit | None:
        entry = _Entry(spec, launcher, slurm_id, _QUEUED, adopting=True)
        self._entries[entry] = None
        # The adoptions of a restarted sweep arrive together: one poll answers them all.
        soon = anyio.current_time() + launcher.batch_window
        self._next_poll = soon if self._interval == 0 else min(self._next_poll, soon)
        self._nudge()
        await self._run(entry)
        return entry.exit

    # -- leadership ------------------------------------------------------------------

    async def _run(self, entry: _Entry) -> None:
        try:
            await self._follow(entry)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(entry.launcher.cancel_timeout) as scope:
                    await self._cancel(entry)
                if scope.cancelled_caught:
                    _log.warning("SLURM job %s still queued after scancel", entry.slurm_id)
            raise
        finally:
            self._entries.pop(entry, None)
            if entry in self._pending:
                self._pending.remove(entry)
            if not self._entries and _queues.get(self._key) is self:
                del _queues[self._key]  # nothing of this loop's state outlives its jobs

    async def _cancel(self, entry: _Entry) -> None:
        """scancel the job (with other cancelled ones), wait for it to leave the queue."""
        if entry.status == _NEW:
            self._pending.remove(entry)
            entry.status = _GONE
            return
        entry.cancel = True
        self._nudge()
        await self._follow(entry)

    async def _follow(self, entry: _Entry) -> None:
        """Until the entry is gone: lead if nobody does, else wait to be woken."""
        while entry.status != _GONE:
            if self._leader is None:
                self._leader = entry
                try:
                    await self._lead(entry)
                finally:
                    self._leader = None
                    for other in self._entries:
                        other.wake.set()  # one of them takes over
            else:
                entry.wake = anyio.Event()
                await entry.wake.wait()

    def _nudge(self) -> None:
        if self._kick is not None:
            self._kick.set()

    async def _lead(self, me: _Entry) -> None:
        while me.status != _GONE:
            if self._pending:
                await self._gather()
                batch, self._pending = self._pending, []
                for entry in batch:
                    entry.status = _SUBMITTING
                with anyio.CancelScope(shield=True):  # a submitted job is never lost
                    await self._submit(batch)
            elif self._cancels():
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(min(e.launcher.batch_window for e in self._cancels()))
                    await self._scancel(self._cancels())
            elif anyio.current_time() >= self._next_poll:
                await self._poll()
            else:
                self._kick = anyio.Event()
                try:
                    with anyio.move_on_after(self._next_poll - anyio.current_time()):
                        await self._kick.wait()
                finally:
                    self._kick = None

    async def _gather(self) -> None:
        """Wait until no launch arrived for a batch window (at most ten windows in all)."""
        window = min(e.launcher.batch_window for e in self._pending)
        first = self._pending[0].arrived
        while self._pending:
            deadline = min(self._pending[-1].arrived, first + 9 * window) + window
            if anyio.current_time() >= deadline:
                return
            await anyio.sleep_until(deadline)

    def _cancels(self) -> list[_Entry]:
        return [e for e in self._entries if e.cancel and e.status == _QUEUED and not e.scancelled]

    def _finish(self, entry: _Entry, exit: Exit | None) -> None:
        entry.exit = exit
        entry.status = _GONE
        entry.wake.set()
        if entry.batch is not None:
            self._batches[entry.batch] -= 1

    def _reset_interval(self, entries: Iterable[_Entry]) -> None:
        self._interval = min((e.launcher.poll_interval for e in entries), default=1.0)

    # -- SLURM commands --------------------------------------------------------------

    async def _command(self, argv: list[str], **kwargs: Any) -> tuple[int, bytes, bytes]:
        """Run a SLURM command; OSError and timeouts become a non-zero status."""
        try:
            with anyio.fail_after(_COMMAND_TIMEOUT):
                done = await anyio.run_process(argv, check=False, **kwargs)
        except TimeoutError:
            return -1, b"", f"{argv[0]} did not answer within {_COMMAND_TIMEOUT:g} s".encode()
        except OSError as exc:
            return -1, b"", f"{argv[0]} could not be run: {exc}".encode()
        return done.returncode, done.stdout, done.stderr

    async def _submit(self, batch: list[_Entry]) -> None:
        """One sbatch per group of jobs that can share an array: same resources, same
        environment, same entry point."""
        groups: dict[Any, list[_Entry]] = {}
        for entry in batch:
            spec = entry.spec
            env = {**job_env(spec.env), **entry.launcher.worker_env}
            arrayable = spec.argv[-1:] == [str(spec.job_dir)] and "\n" not in str(spec.job_dir)
            key = (
                (entry.launcher.args, tuple(sorted(env.items())), tuple(spec.argv[:-1]))
                if arrayable
                else id(entry)
            )
            groups.setdefault(key, []).append(entry)
        for group in groups.values():
            size = group[0].launcher.max_array_size
            for start in range(0, len(group), size):
                entries = group[start : start + size]
                try:
                    await self._submit_group(entries)
                except Exception as exc:  # a disk error: fail these jobs, not the others
                    _log.exception("could not submit %d job(s) to SLURM", len(entries))
                    for entry in entries:
                        if entry.status == _SUBMITTING:
                            self._finish(entry, Exit(reason=f"legato could not submit: {exc!r}"))
        self._reset_interval(self._entries)
        self._next_poll = anyio.current_time() + self._interval

    async def _submit_group(self, entries: list[_Entry]) -> None:
        spec = entries[0].spec
        env = {**job_env(spec.env), **entries[0].launcher.worker_env}
        dirs = [entry.spec.job_dir for entry in entries]
        argv = ["sbatch", "--parsable", "--export=ALL", f"--job-name={job_name(dirs)}"]
        argv += entries[0].launcher.args
        batch: Path | None = None
        if len(entries) == 1:
            argv += [f"--output={spec.job_dir / SLURM_OUT}", f"--error={spec.job_dir / SLURM_ERR}"]
            script, cwd = single_script(spec.argv), spec.job_dir
        else:
            workdir = Path(env.get(WORKDIR_ENV) or spec.job_dir.parents[2])
            batch = await anyio.to_thread.run_sync(make_batch, workdir, dirs)
            argv += [
                f"--array=0-{len(entries) - 1}",
                f"--output={batch}/%a/{SLURM_OUT}",
                f"--error={batch}/%a/{SLURM_ERR}",
            ]
            script, cwd = array_script(spec.argv[:-1], batch), batch
        code, out, err = await self._command(argv, input=script.encode(), env=env, cwd=cwd)
        job_id = parse_job_id(out) if code == 0 else None
        if job_id is None:
            reason = "sbatch rejected the job: " + sbatch_message(err, code)
            _log.warning("%s (%d job(s))", reason, len(entries))
            for entry in entries:
                self._finish(entry, Exit(reason=reason))
            if batch is not None:
                await anyio.to_thread.run_sync(remove_batches, [batch])
            return
        ids = [job_id] if batch is None else [f"{job_id}_{i}" for i in range(len(entries))]
        if batch is None:
            _log.info("%s: SLURM job %s", _short(spec.job_dir), job_id)
        else:
            _log.info("%d jobs: SLURM job array %s", len(entries), job_id)
        # Each job's worker waits for this record before it adds its own keys to state.json.
        await anyio.to_thread.run_sync(record_ids, list(zip(dirs, ids, strict=True)))
        if batch is not None:
            self._batches[batch] = len(entries)
        for entry, slurm_id in zip(entries, ids, strict=True):
            entry.slurm_id, entry.batch, entry.status = slurm_id, batch, _QUEUED
            entry.wake.set()

    async def _scancel(self, entries: list[_Entry]) -> None:
        await anyio.to_thread.run_sync(write_cancel, [e.spec.job_dir for e in entries])
        ids = [e.slurm_id for e in entries if e.slurm_id is not None]
        code, _, err = await self._command(["scancel", *ids]) if ids else (0, b"", b"")
        if code != 0:  # e.g. some ended meanwhile: squeue tells
            _log.debug("scancel %s: %s", " ".join(ids), err.decode(errors="replace").strip())
        for entry in entries:
            entry.scancelled = True
        self._next_poll = anyio.current_time() + _QUICK

    async def _poll(self) -> None:
        """One squeue call for every followed job; then the markers of those that left."""
        watched = [e for e in self._entries if e.status == _QUEUED]
        # `--states=all`: squeue's default list drops a job the moment it ends; with all
        # states it is listed a while longer (MinJobAge) with its last state (TERMINAL),
        # which says why a job that left without a verdict ended (TIMEOUT, NODE_FAIL).
        argv = ["squeue", "--noheader", "--array", "--states=all", "--format=%i %T"]
        argv.append(f"--user={os.getuid()}")
        code, out, err = await self._command(argv)
        if self._interval == 0:
            self._reset_interval(watched)
        if code != 0:
            self._squeue_failures += 1
            if self._squeue_failures in (1, 10) or self._squeue_failures % 100 == 0:
                message = err.decode(errors="replace").strip() or f"status {code}"
                _log.warning("squeue failed (%d in a row): %s", self._squeue_failures, message)
            self._back_off(watched)
            return
        self._squeue_failures = 0
        states = parse_squeue(out)
        left: list[_Entry] = []
        running: list[_Entry] = []
        changed = False
        for entry in watched:
            state = states.get(entry.slurm_id or "")
            if state is None or state in TERMINAL:
                entry.state = state or entry.state
                left.append(entry)
                continue
            entry.requeued = None
            entry.missing = False
            if state in STARTED and not entry.started:  # READY while SLURM queues it
                entry.started = True
                entry.spec.on_started({"launcher": "slurm", "slurm_id": entry.slurm_id})
            if entry.adopting:
                entry.adopting = False
                _log.info(
                    "%s: following SLURM job %s again", _short(entry.spec.job_dir), entry.slurm_id
                )
            if state != entry.state:
                entry.state, changed = state, True
            if state == "RUNNING":
                running.append(entry)
        found, reports = await anyio.to_thread.run_sync(
            look, [e.spec.job_dir for e in left], [e.spec.job_dir for e in running]
        )
        for entry, (done, failed, slurm_err) in zip(left, found, strict=True):
            if entry.status != _QUEUED:
                continue
            changed = True
            where = _short(entry.spec.job_dir)
            _log.debug(
                "%s: SLURM job %s out of the queue (last seen %s; done %s, record %s; %r)",
                where,
                entry.slurm_id,
                entry.state,
                done,
                failed,
                slurm_err,
            )
            if entry.adopting:  # it ended while no experiment followed it
                self._finish(entry, Exit() if done else None)
            elif done or failed:
                ending = slurm_ending(slurm_err)
                if not done and ending is None and not entry.missing:
                    # A second look: the job's process caught SIGTERM and wrote its record,
                    # but slurmstepd may not have written why yet (a requeue, a time limit).
                    entry.missing = True
                    continue
                if ending == "preempted" and not done and not self._requeue_gone(entry):
                    continue  # SLURM may list it again, requeued under the same id
                self._finish(entry, Exit(cancelled=ending == "cancelled"))
            elif entry.cancel:
                self._finish(entry, Exit(reason="cancelled"))
            elif entry.missing:  # a second look, in case the shared filesystem lagged
                reason = vanished(entry.state, slurm_err)
                kind = _INTERRUPTIONS.get(entry.state or "") or slurm_ending(slurm_err)
                if kind == "preempted" and not self._requeue_gone(entry):
                    continue  # requeued: SLURM lists it again, pending, under the same id
                interruption = kind if kind in ("timeout", "preempted") else None
                self._finish(entry, Exit(reason=reason, interruption=interruption))
            else:
                entry.missing = True
        for entry, report in zip(running, reports, strict=True):
            if report is not None and report != entry.progress:
                entry.progress = report
                try:
                    entry.spec.on_progress(float(report["fraction"]), report.get("desc"))
                except (KeyError, TypeError, ValueError):
                    pass
        if changed:
            self._reset_interval(watched)
            self._next_poll = anyio.current_time() + self._interval
        else:
            self._back_off(watched)
        if any(
            e.missing or e.scancelled or e.requeued is not None
            for e in self._entries
            if e.status == _QUEUED
        ):
            self._next_poll = min(self._next_poll, anyio.current_time() + _QUICK)
        await self._remove_ended_batches()

    def _requeue_gone(self, entry: _Entry) -> bool:
        """Whether a job that SLURM stopped to requeue (its slurm.err says so) stayed out
        of the queue long enough to be taken for gone: SLURM lists it again, pending,
        within moments; a cluster that cancels preempted jobs never does."""
        now = anyio.current_time()
        if entry.requeued is None:
            entry.requeued = now
        return now - entry.requeued >= _REQUEUE_WAIT

    def _back_off(self, watched: list[_Entry]) -> None:
        """Poll less often while nothing changes, up to the launchers' maximum."""
        ceiling = min((e.launcher.max_poll_interval for e in watched), default=10.0)
        self._interval = min(self._interval * 1.5, max(ceiling, self._interval))
        self._next_poll = anyio.current_time() + self._interval

    async def _remove_ended_batches(self) -> None:
        ended = [batch for batch, left in self._batches.items() if left <= 0]
        if ended:
            for batch in ended:
                del self._batches[batch]
            await anyio.to_thread.run_sync(remove_batches, ended)


def _short(job_dir: Path) -> str:
    """A job as the experiment's log names it: type/identifier prefix."""
    return f"{job_dir.parent.name}/{job_dir.name[:12]}"
