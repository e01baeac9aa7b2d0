"""`LocalLauncher`: one subprocess per job on this machine."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import anyio
from anyio import open_process  # anyio loads it on first use: here, not in the event loop
from anyio.abc import Process

from .._jobdir._names import GRACE_PERIOD_ENV, LOCK_FD_ENV, PARENT_PID_ENV
from ._launcher import Exit, LaunchSpec, killpg
from ._warm import run_warm, warm_default

__all__ = ["LocalLauncher"]


class LocalLauncher:
    """Runs each job in a process of its own, in its own session (process group).

    With `warm` (the default where `fork` exists), the process is forked from a server
    that the experiment keeps, which has imported legato and the modules of the jobs'
    classes: a job then starts in a few milliseconds instead of an interpreter's start and
    its imports. Otherwise it is a fresh `python -m legato._jobside._worker`. Either way the job
    runs in the same way (see docs/launchers.md): it holds the job's lock, and dies with
    the experiment (SIGTERM on parent death, SIGKILL `grace_period` seconds later if it
    ignored that), so a killed experiment leaves neither orphans nor a job running
    unlocked. The job's verdict is taken when its own process ends: what it left behind in
    its process group (a forked child that keeps the lock and the progress pipe open) is
    ended then.

    Args:
        grace_period: Seconds a cancelled job, or one that reached its time limit
            (`submit(timeout=...)`), has between SIGTERM and SIGKILL, to save a checkpoint
            and run its `finally:` blocks; give a job that saves a large checkpoint on the
            way out its own launcher with more
            (`submit(launcher=LocalLauncher(grace_period=60))`).
        warm: Fork jobs from a warm server. None: yes, unless `fork` is missing or the
            environment variable `LEGATO_WARM` is `0`. Modules that start threads at
            import run their jobs as fresh processes whatever this says (with a warning).
    """

    name = "local"

    def __init__(self, *, grace_period: float = 5.0, warm: bool | None = None) -> None:
        if grace_period < 0:
            raise ValueError("grace_period must be >= 0")
        self.grace_period = grace_period
        self.warm = warm_default() if warm is None else bool(warm) and hasattr(os, "fork")

    @property
    def hands_state(self) -> bool:
        """The job's environment reaches its process as given, so the experiment hands a
        job's first `state.json` record to it there (`LEGATO_RUN_STATE`) rather than
        writing it. Not for a subclass that overrides `launch`, whose process might not
        get the record (it may say `hands_state = True` itself)."""
        return type(self).launch is LocalLauncher.launch

    async def check(self) -> None:
        return None

    async def launch(self, spec: LaunchSpec) -> Exit:
        if self.warm and spec.session is not None:
            # The job's watchdog and its time limit read the grace period, as a fresh one's.
            return await run_warm(
                spec,
                spec.session,
                self.grace_period,
                lambda: self._launch_fresh(spec),
                lambda line: _on_line(line, spec),
                self._end_group,
                {GRACE_PERIOD_ENV: str(self.grace_period)},
            )
        return await self._launch_fresh(spec)

    async def _launch_fresh(self, spec: LaunchSpec) -> Exit:
        env = dict(spec.env)
        pass_fds: tuple[int, ...] = ()
        if spec.lock_fd is not None:
            pass_fds = (spec.lock_fd,)
            env[LOCK_FD_ENV] = str(spec.lock_fd)
        if spec.main_lock_fd is not None:
            pass_fds += (spec.main_lock_fd,)
        env[PARENT_PID_ENV] = str(os.getpid())
        env[GRACE_PERIOD_ENV] = str(self.grace_period)
        process = await open_process(
            spec.argv,
            stdin=None,
            stdout=-1,
            stderr=None,
            cwd=spec.job_dir,
            env=env,
            start_new_session=True,
            pass_fds=pass_fds,
        )
        try:
            spec.on_started({"pid": process.pid, "launcher": self.name})
            eof = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_read_progress, process, spec, eof)
                code = await process.wait()
                # The job's own process ended: its verdict is on disk. What it left in its
                # group would hold the lock and the progress pipe for as long as it lives.
                with anyio.CancelScope(shield=True):
                    await self._end_group(process.pid)
                with anyio.move_on_after(1.0):  # the last progress lines, then no more
                    await eof.wait()
                tg.cancel_scope.cancel()
        finally:
            if process.returncode is None:
                with anyio.CancelScope(shield=True):
                    await self._terminate(process)
        if code < 0:
            return Exit(signal=-code)
        return Exit(exit_code=code)

    async def _terminate(self, process: Process) -> None:
        killpg(process.pid, signal.SIGTERM)
        with anyio.move_on_after(self.grace_period):
            await process.wait()
        killpg(process.pid, signal.SIGKILL)
        await process.wait()
        killpg(process.pid, signal.SIGKILL)  # what it left in its group, if anything

    async def _end_group(self, pgid: int) -> None:
        """SIGTERM what is left of an ended job's process group, SIGKILL after the grace
        period. (The group outlives its leader while members remain, and its id is not
        given to a new process meanwhile.)"""
        if not await _group_alive(pgid):
            return
        killpg(pgid, signal.SIGTERM)
        with anyio.move_on_after(self.grace_period):
            while True:
                await anyio.sleep(0.05)
                if not await _group_alive(pgid):
                    return
        killpg(pgid, signal.SIGKILL)

    async def adopt(self, spec: LaunchSpec, info: dict[str, Any]) -> Exit | None:
        # A local job dies with its experiment: there is never anything to adopt.
        return None

    def __repr__(self) -> str:
        return f"LocalLauncher(grace_period={self.grace_period}, warm={self.warm})"


async def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` runs. One signal-0 call answers the usual case,
    a job that left nothing; else /proc tells live members from zombies, which a
    container's init may never reap."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return await anyio.to_thread.run_sync(_live_member, pgid)


def _live_member(pgid: int) -> bool:
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True  # no /proc: trust kill()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


async def _read_progress(process: Process, spec: LaunchSpec, eof: anyio.Event) -> None:
    """The child's original stdout carries JSON progress lines; its output goes to files."""
    try:
        await _read_lines(process, spec)
    finally:
        eof.set()


async def _read_lines(process: Process, spec: LaunchSpec) -> None:
    assert process.stdout is not None
    buffer = b""
    async for chunk in process.stdout:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            _on_line(line, spec)


def _on_line(line: bytes, spec: LaunchSpec) -> None:
    """A line on the job's progress channel: a JSON report, or stray output."""
    try:
        message = json.loads(line)
        spec.on_progress(float(message["fraction"]), message.get("desc"))
    except (ValueError, KeyError, TypeError):
        sys.stderr.write(line.decode(errors="replace") + "\n")
