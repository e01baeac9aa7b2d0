"""Processes and locks on this machine: is a job's process alive, is its lock held?

Only ever looked at, never taken: taking a job's lock, even for an instant, could make an
experiment that tries it at that moment believe another process runs the job.
"""

from __future__ import annotations

import os
from typing import Any

from .._jobdir._files import host_name

__all__ = ["HOST", "Locks", "job_process", "process_alive"]

HOST = host_name()
"""This machine's name as job workers record it in state.json."""


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, ended but not yet reaped, counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True  # no /proc here: trust kill()
    end = stat.rfind(b")")
    return stat[end + 2 : end + 3] not in (b"Z", b"X")


def job_process(info: dict[str, Any], identifier: str) -> int | None:
    """The pid of a local job's live process, per its state.json, or None.

    A local job's process leads its own session (pgid == pid) and runs
    `python -m legato._jobside._worker <job dir>`: both are checked, so a recycled pid is not
    taken for the job.
    """
    if info.get("launcher", "local") != "local":
        return None
    pid = info.get("pid")
    host = info.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return None
    if isinstance(host, str) and host and host != HOST:
        return None
    if not process_alive(pid):
        return None
    try:
        if os.getpgid(pid) != pid:
            return None
    except OSError:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else pid
    except OSError:
        return pid
    if b"legato._jobside._worker" in cmdline and identifier.encode() in cmdline:
        return pid
    if b"legato._jobside._warm_server" in cmdline and _started_by(pid, info.get("started")):
        return pid  # a job forked from its experiment's warm server has the server's cmdline
    return None


def _started_by(pid: int, started: Any) -> bool:
    """Whether process `pid` began no later than `started` (seconds since the epoch), the
    start its job recorded: a pid recycled since then began after it (Linux /proc)."""
    if not isinstance(started, (int, float)) or isinstance(started, bool):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return False
    ticks = int(stat[stat.rfind(b")") + 2 :].split()[19])  # field 22: starttime
    return boot + ticks / os.sysconf("SC_CLK_TCK") <= started + 1.0


class Locks:
    """The flocks held on this machine, read once from /proc/locks (Linux)."""

    def __init__(self) -> None:
        self._held: set[tuple[int, int, int]] | None = None
        self._read = False

    def _load(self) -> set[tuple[int, int, int]] | None:
        if not self._read:
            self._read = True
            try:
                with open("/proc/locks", "rb") as f:
                    data = f.read()
            except OSError:
                return None
            held = set()
            for line in data.splitlines():
                parts = line.split()
                if len(parts) < 6 or parts[1] == b"->":
                    continue
                try:
                    major, minor, inode = parts[5].split(b":")
                    held.add((int(major, 16), int(minor, 16), int(inode)))
                except ValueError:
                    continue
            self._held = held
        return self._held

    def held(self, lock_path: str) -> bool | None:
        """Whether some process holds the lock; None when this system cannot tell."""
        held = self._load()
        if held is None:
            return None
        try:
            st = os.stat(lock_path)
        except OSError:
            return False
        return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) in held
