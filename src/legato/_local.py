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

from ._launcher import Exit, LaunchSpec, killpg

__all__ = ["LocalLauncher"]


class LocalLauncher:
    """Runs each job as `python -m legato._worker` in its own session (process group).

    The child inherits the job's lock and dies with the experiment (SIGTERM on parent
    death), so a killed experiment leaves neither orphans nor a job running unlocked.

    Args:
        grace_period: Seconds a cancelled job has between SIGTERM and SIGKILL, to run its
            `finally:` blocks; give a job that saves a large checkpoint on the way out
            its own launcher with more (`submit(launcher=LocalLauncher(grace_period=60))`).
    """

    name = "local"

    def __init__(self, *, grace_period: float = 5.0) -> None:
        if grace_period < 0:
            raise ValueError("grace_period must be >= 0")
        self.grace_period = grace_period

    async def check(self) -> None:
        return None

    async def launch(self, spec: LaunchSpec) -> Exit:
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
        killpg(process.pid, signal.SIGTERM)
        with anyio.move_on_after(self.grace_period):
            await process.wait()
            return
        killpg(process.pid, signal.SIGKILL)
        await process.wait()

    async def adopt(self, spec: LaunchSpec, info: dict[str, Any]) -> Exit | None:
        # A local job dies with its experiment: there is never anything to adopt.
        return None

    def __repr__(self) -> str:
        return f"LocalLauncher(grace_period={self.grace_period})"


async def _read_progress(process: Process, spec: LaunchSpec) -> None:
    """The child's original stdout carries JSON progress lines; its output goes to files."""
    assert process.stdout is not None
    buffer = b""
    async for chunk in process.stdout:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
                spec.on_progress(float(message["fraction"]), message.get("desc"))
            except (ValueError, KeyError, TypeError):
                sys.stderr.write(line.decode(errors="replace") + "\n")
