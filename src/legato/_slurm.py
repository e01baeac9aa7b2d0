"""`SlurmLauncher`: each job a SLURM batch job. Jobs that become ready together go out as
one `sbatch --array`, one `squeue` call per poll follows all of the launcher's jobs, and
`scancel` ends them on cancellation. Outcomes come from the job directory's markers, so
no SLURM accounting is needed.

No background task does the SLURM calls: the pending `launch()`/`adopt()` calls of a
launcher elect one of themselves, the *leader*, which submits batches, polls and scancels
for all, while the others wait on their own event. When the leader's job ends, or its task
is cancelled, it steps down and wakes the others, one of which takes over. Every
subprocess thus runs inside a launch call, in the experiment's task group: nothing outlives
the experiment, and one launcher may serve several experiments at once.

The experiment keeps holding each job's lock; the job's process does not take it. A job
whose experiment died goes on under SLURM, and the next run of the experiment adopts it
(`adopt`) from the "slurm_id" recorded in its state.json.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from ._errors import LauncherError
from ._launcher import Exit, LaunchSpec
from ._slurm_batch import (
    TERMINAL,
    array_script,
    count,
    job_name,
    look,
    make_batch,
    parse_job_id,
    parse_squeue,
    record_ids,
    remove_batches,
    sbatch_args,
    sbatch_message,
    seconds,
    single_script,
    vanished,
    write_cancel,
)
from ._workdir import SLURM_ERR, SLURM_OUT

__all__ = ["SlurmLauncher"]

_log = logging.getLogger("legato")

_NEW, _SUBMITTING, _QUEUED, _GONE = "new", "submitting", "queued", "gone"
_DROPPED_ENV = ("CUDA_VISIBLE_DEVICES", "LEGATO_LOCK_FD", "LEGATO_PARENT_PID", "LEGATO_PROGRESS_FD")


@dataclass(eq=False)
class _Entry:
    """One job followed by the launcher."""

    spec: LaunchSpec
    slurm_id: str | None = None
    status: str = _NEW
    adopting: bool = False  # adopted, not yet seen in squeue
    arrived: float = field(default_factory=anyio.current_time)
    wake: anyio.Event = field(default_factory=anyio.Event)
    state: str | None = None  # last squeue state
    exit: Exit | None = None
    batch: Path | None = None  # array directory
    cancel: bool = False
    scancelled: bool = False
    missing: bool = False  # out of the queue without a marker at the last poll
    progress: Any = None


class SlurmLauncher:
    """Runs jobs as SLURM batch jobs on a cluster that shares the workdir's filesystem.

    `partition`, `time` (a SLURM time string, minutes, or a `timedelta`), `cpus` (per
    task), `mem` (MiB, or a size such as "4G"), `gpus` (a count, or "type:count") and
    `options` (more sbatch arguments, e.g. `("--qos=high", "--account=lab")`) apply to every
    job of this launcher; use several launchers (`submit(launcher=...)`) for different
    resources. `poll_interval` is the time between two squeue calls, growing up to
    `max_poll_interval` while nothing changes; launches that arrive within `batch_window`
    seconds of each other go out together. `calls` counts the SLURM commands run.
    """

    name = "slurm"

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
        cancel_timeout: float = 10.0,
        command_timeout: float = 120.0,
    ) -> None:
        self._args = sbatch_args(partition, time, cpus, mem, gpus, options)
        self.partition, self.time, self.cpus, self.mem, self.gpus = partition, time, cpus, mem, gpus
        self.options = tuple(options)
        self.poll_interval = seconds("poll_interval", poll_interval)
        self.max_poll_interval = seconds("max_poll_interval", max_poll_interval)
        if max_poll_interval < poll_interval:
            raise ValueError("SlurmLauncher: max_poll_interval must be >= poll_interval")
        self.batch_window = seconds("batch_window", batch_window, zero=True)
        self.max_array_size = count("max_array_size", max_array_size, 1)
        self.cancel_timeout = seconds("cancel_timeout", cancel_timeout)
        self.command_timeout = seconds("command_timeout", command_timeout)
        self.calls = {"sbatch": 0, "squeue": 0, "scancel": 0}
        """How many times each SLURM command ran (for benchmarks and tests)."""
        self._entries: dict[_Entry, None] = {}  # ordered set of the jobs followed
        self._pending: list[_Entry] = []
        self._leader: _Entry | None = None
        self._kick: anyio.Event | None = None
        self._interval = self.poll_interval
        self._next_poll = 0.0
        self._batches: dict[Path, int] = {}  # array directory -> tasks not yet gone
        self._squeue_failures = 0

    async def check(self) -> None:
        missing = [cmd for cmd in ("sbatch", "squeue", "scancel") if shutil.which(cmd) is None]
        if missing:
            raise LauncherError(
                f"SlurmLauncher: {', '.join(missing)} not found on PATH; run the experiment "
                "on a machine that can submit SLURM jobs (a login node), or load SLURM's "
                "environment module first"
            )

    async def launch(self, spec: LaunchSpec) -> Exit:
        entry = _Entry(spec)
        self._pending.append(entry)
        self._entries[entry] = None
        self._nudge()
        await self._run(entry)
        return entry.exit or Exit(reason=vanished(None, ""))

    async def adopt(self, spec: LaunchSpec, info: dict[str, Any]) -> Exit | None:
        """Follow the SLURM job recorded in `info` if squeue still lists it; else None
        (or the verdict, if that job finished meanwhile)."""
        slurm_id = info.get("slurm_id")
        if not isinstance(slurm_id, str) or not slurm_id.replace("_", "").isdigit():
            return None
        entry = _Entry(spec, slurm_id, _QUEUED, adopting=True)
        self._entries[entry] = None
        # Adoptions of a restarted sweep arrive together: one poll answers them all.
        self._next_poll = min(self._next_poll, anyio.current_time() + self.batch_window)
        self._nudge()
        await self._run(entry)
        return entry.exit

    async def _run(self, entry: _Entry) -> None:
        try:
            await self._follow(entry)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.cancel_timeout):
                await self._cancel(entry)
            raise
        finally:
            self._entries.pop(entry, None)
            if entry in self._pending:
                self._pending.remove(entry)

    async def _cancel(self, entry: _Entry) -> None:
        """scancel the job (batched with other cancelled jobs), wait for it to leave the queue."""
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
                        other.wake.set()  # someone else takes over
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
                    await anyio.sleep(self.batch_window)  # other cancelled launches join
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
        """Wait until no launch arrived for `batch_window` (at most 10 windows in all)."""
        first = self._pending[0].arrived
        while self._pending:
            deadline = min(self._pending[-1].arrived, first + 9 * self.batch_window)
            deadline += self.batch_window
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

    async def _command(self, argv: list[str], **kwargs: Any) -> tuple[int, bytes, bytes]:
        """Run a SLURM command; OSError and timeouts become a non-zero status."""
        self.calls[argv[0]] += 1
        try:
            with anyio.fail_after(self.command_timeout):
                done = await anyio.run_process(argv, check=False, **kwargs)
        except TimeoutError:
            return -1, b"", f"{argv[0]} did not answer within {self.command_timeout:g} s".encode()
        except OSError as exc:
            return -1, b"", f"{argv[0]} could not be run: {exc}".encode()
        return done.returncode, done.stdout, done.stderr

    def _env(self, env: dict[str, str]) -> dict[str, str]:
        """The job's environment, exported by sbatch. GPU indices are SLURM's to set."""
        env = {k: v for k, v in env.items() if k not in _DROPPED_ENV}
        env["LEGATO_LAUNCHER"] = self.name
        return env

    async def _submit(self, batch: list[_Entry]) -> None:
        groups: dict[Any, list[_Entry]] = {}
        for entry in batch:
            spec = entry.spec
            arrayable = spec.argv[-1:] == [str(spec.job_dir)] and "\n" not in str(spec.job_dir)
            key = (
                (tuple(sorted(spec.env.items())), tuple(spec.argv[:-1])) if arrayable else id(entry)
            )
            groups.setdefault(key, []).append(entry)
        for group in groups.values():
            for start in range(0, len(group), self.max_array_size):
                await self._submit_group(group[start : start + self.max_array_size])
        self._interval = self.poll_interval
        self._next_poll = anyio.current_time() + self.poll_interval

    async def _submit_group(self, entries: list[_Entry]) -> None:
        spec = entries[0].spec
        env = self._env(spec.env)
        dirs = [entry.spec.job_dir for entry in entries]
        argv = ["sbatch", "--parsable", "--export=ALL", f"--job-name={job_name(dirs)}"]
        argv += self._args
        batch: Path | None = None
        if len(entries) == 1:
            argv += [f"--output={spec.job_dir / SLURM_OUT}", f"--error={spec.job_dir / SLURM_ERR}"]
            script, cwd = single_script(spec.argv), spec.job_dir
        else:
            workdir = Path(env.get("LEGATO_WORKDIR") or spec.job_dir.parents[2])
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
            reason = sbatch_message(err, code)
            _log.warning("sbatch rejected %d job(s): %s", len(entries), reason)
            for entry in entries:
                self._finish(entry, Exit(reason=reason))
            if batch is not None:
                await anyio.to_thread.run_sync(remove_batches, [batch])
            return
        ids = [job_id] if batch is None else [f"{job_id}_{i}" for i in range(len(entries))]
        # The job's worker waits for this record before it writes its own into state.json.
        await anyio.to_thread.run_sync(record_ids, list(zip(dirs, ids, strict=True)))
        if batch is not None:
            self._batches[batch] = len(entries)
        for entry, slurm_id in zip(entries, ids, strict=True):
            entry.slurm_id, entry.batch, entry.status = slurm_id, batch, _QUEUED
            entry.spec.on_started({"launcher": self.name, "slurm_id": slurm_id})
            entry.wake.set()

    async def _scancel(self, entries: list[_Entry]) -> None:
        await anyio.to_thread.run_sync(write_cancel, [e.spec.job_dir for e in entries])
        ids = [e.slurm_id for e in entries if e.slurm_id is not None]
        code, _, err = await self._command(["scancel", *ids])
        if code != 0:  # e.g. some already ended: squeue tells
            _log.debug("scancel %s: %s", " ".join(ids), err.decode(errors="replace").strip())
        for entry in entries:
            entry.scancelled = True
        self._next_poll = anyio.current_time() + min(self.poll_interval, 0.25)

    async def _poll(self) -> None:
        """One squeue call for every followed job; then the markers of those that left."""
        watched = [e for e in self._entries if e.status == _QUEUED]
        argv = ["squeue", "--noheader", "--array", "--format=%i %T", f"--user={os.getuid()}"]
        code, out, err = await self._command(argv)
        if code != 0:
            self._squeue_failures += 1
            if self._squeue_failures in (1, 10) or self._squeue_failures % 100 == 0:
                message = err.decode(errors="replace").strip() or f"status {code}"
                _log.warning("squeue failed (%d in a row): %s", self._squeue_failures, message)
            self._interval = min(self._interval * 2, self.max_poll_interval)
            self._next_poll = anyio.current_time() + self._interval
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
            if entry.adopting:
                entry.adopting = False
                entry.spec.on_started({"launcher": self.name, "slurm_id": entry.slurm_id})
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
            if entry.adopting:  # gone before this experiment came back: launch anew
                self._finish(entry, Exit() if done else None)
            elif done or failed:
                self._finish(entry, Exit())
            elif entry.cancel:
                self._finish(entry, Exit(reason="cancelled"))
            elif entry.missing:  # a second look, in case the filesystem lagged
                self._finish(entry, Exit(reason=vanished(entry.state, slurm_err)))
            else:
                entry.missing = True
        for entry, report in zip(running, reports, strict=True):
            if report is not None and report != entry.progress:
                entry.progress = report
                try:
                    entry.spec.on_progress(float(report["fraction"]), report.get("desc"))
                except (KeyError, TypeError, ValueError):
                    pass
        quick = any(e.missing or e.scancelled for e in self._entries if e.status == _QUEUED)
        if changed or quick:
            self._interval = self.poll_interval
        else:
            self._interval = min(self._interval * 1.5, self.max_poll_interval)
        self._next_poll = anyio.current_time() + (
            min(self._interval, 0.25) if quick else self._interval
        )
        ended = [batch for batch, left_ in self._batches.items() if left_ <= 0]
        if ended:
            for batch in ended:
                del self._batches[batch]
            await anyio.to_thread.run_sync(remove_batches, ended)

    def __repr__(self) -> str:
        shown = [
            f"{name}={getattr(self, name)!r}"
            for name in ("partition", "time", "cpus", "mem", "gpus")
            if getattr(self, name) is not None
        ]
        shown += [f"options={self.options!r}"] if self.options else []
        return f"SlurmLauncher({', '.join(shown)})"
