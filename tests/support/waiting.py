"""Waiting for a condition with a deadline: the one way tests synchronise with processes.

Tests never sleep a fixed time to let something happen: they poll for the state they
expect, and fail with what they waited for when the deadline passes.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 60.0, what: str = "", interval: float = 0.02
) -> T:
    """Call `condition` until it returns something true, and return that; raise
    TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(interval)


def job_state(job_dir: Path | str) -> dict[str, Any]:
    """A job directory's state.json, or {} before it is written: a job's first run under
    LocalLauncher has none until its process starts, though its lock shows it running."""
    try:
        info: dict[str, Any] = json.loads((Path(job_dir) / "state.json").read_text())
    except FileNotFoundError:
        return {}
    return info


async def poll(
    condition: Callable[[], Any], timeout: float = 60.0, what: str = "", interval: float = 0.01
) -> None:
    """`wait_until` for async tests: the event loop keeps running between checks."""
    try:
        with anyio.fail_after(timeout):
            while not condition():
                await anyio.sleep(interval)
    except TimeoutError:
        raise TimeoutError(
            f"timed out after {timeout:g} s waiting for {what or condition}"
        ) from None


def wait_for_file(path: str | Path, timeout: float = 60.0) -> None:
    """Block until `path` exists (a test's signal to a job or helper process)."""
    wait_until(lambda: os.path.exists(path), timeout, f"{path} to appear", interval=0.005)


def lock_is_free(job_dir: Path) -> bool:
    """Whether nobody holds the job's flock (a job process or an experiment would)."""
    fd = os.open(job_dir / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
