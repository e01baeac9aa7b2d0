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

from ._launcher import Exit, LaunchSpec
from ._warm import run_warm, warm_default

__all__ = ["LocalLauncher"]


class LocalLauncher:
    """Runs each job in a process of its own, in its own session (process group).

    With `warm` (the default where `fork` exists), the process is forked from a server
    that the experiment keeps, which has imported legato and the modules of the jobs'
    classes: a job then starts in a few milliseconds instead of an interpreter's start and
    its imports. Otherwise it is a fresh `python -m legato._worker`. Either way the job
    runs in the same way (see docs/launchers.md): it holds the job's lock, and dies with
    the experiment, so a killed experiment leaves neither orphans nor a job running
    unlocked.

    Args:
        grace_period: Seconds a cancelled job has between SIGTERM and SIGKILL, to run its
            `finally:` blocks; give a job that saves a large checkpoint on the way out
            its own launcher with more (`submit(launcher=LocalLauncher(grace_period=60))`).
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

    async def check(self) -> None:
        return None

    async def launch(self, spec: LaunchSpec) -> Exit:
        if self.warm and spec.session is not None:
            return await run_warm(
                spec,
                spec.session,
                self.grace_period,
                lambda: self._launch_fresh(spec),
                lambda line: _on_line(line, spec),
            )
        return await self._launch_fresh(spec)

    async def _launch_fresh(self, spec: LaunchSpec) -> Exit:
        env = dict(spec.env)
        pass_fds: tuple[int, ...] = ()
        if spec.lock_fd is not None:
            pass_fds = (spec.lock_fd,)
            env["LEGATO_LOCK_FD"] = str(spec.lock_fd)
        env["LEGATO_PARENT_PID"] = str(os.getpid())
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
            await _read_progress(process, spec)
            code = await process.wait()
        finally:
            if process.returncode is None:
                with anyio.CancelScope(shield=True):
                    await self._terminate(process)
        if code < 0:
            return Exit(signal=-code)
        return Exit(exit_code=code)

    async def _terminate(self, process: Process) -> None:
        _killpg(process.pid, signal.SIGTERM)
        with anyio.move_on_after(self.grace_period):
            await process.wait()
            return
        _killpg(process.pid, signal.SIGKILL)
        await process.wait()

    async def adopt(self, spec: LaunchSpec, info: dict[str, Any]) -> Exit | None:
        # A local job dies with its experiment: there is never anything to adopt.
        return None

    def __repr__(self) -> str:
        return f"LocalLauncher(grace_period={self.grace_period}, warm={self.warm})"


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _read_progress(process: Process, spec: LaunchSpec) -> None:
    """The child's original stdout carries JSON progress lines; its output goes to files."""
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
