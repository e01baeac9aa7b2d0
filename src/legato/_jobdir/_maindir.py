"""Main task directories on disk: their lock and their list of users.

Jobs that differ only in their `SubParam` fields share a main directory,
`<workdir>/partials/<type name>/<main identifier>/` (`__maintaskdir__`, computed by
`legato._core._task.main_task_dir`). Two jobs that share it never run at the same time:
whoever runs one holds an `flock` on the directory's lock file, taken before the job's own
lock (a run that finds it taken waits holding nothing, not even a slot: no two processes wait
on each other); within one experiment they start in submission order (the scheduler).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ._files import append_lines, try_lock
from ._layout import MAIN_JOBS, MAIN_LOCK

__all__ = ["main_lock_free", "record_users", "try_main_lock"]


def record_users(users: Mapping[Path, list[str]]) -> None:
    """Add jobs ("<type name>/<identifier>") to the list of users of the main directory
    they share, which `legato clean` reads before removing it."""
    for directory, names in users.items():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            known = set((directory / MAIN_JOBS).read_text(encoding="utf-8").splitlines())
        except FileNotFoundError:
            known = set()
        new = [name for name in dict.fromkeys(names) if name not in known]
        if new:
            append_lines(directory / MAIN_JOBS, (f"{name}\n" for name in new))


def try_main_lock(directory: Path) -> int | None:
    """An fd holding the main directory's lock, or None when someone else holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    return try_lock(directory / MAIN_LOCK)


def main_lock_free(directory: Path) -> bool:
    """Whether no one holds the main directory's lock (at the time of asking)."""
    fd = try_main_lock(directory)
    if fd is None:
        return False
    os.close(fd)
    return True
