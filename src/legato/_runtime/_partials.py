"""Main task directories: where tasks that differ only in their `SubParam` fields meet.

`Learn(lr=0.1, epochs=10)` and `Learn(lr=0.1, epochs=50)` are two jobs with two job
directories, but one main task directory, `<workdir>/partials/<type name>/<main
identifier>/` (`__maintaskdir__`), where the second finds the first's checkpoint. For that,
two jobs that share it never run at the same time: whoever runs one holds an `flock` on the
directory's lock file (this module), taken before the job's own lock (a run that finds it
taken waits holding nothing, not even a slot: no two processes wait on each other); and
within one experiment they start in submission order (`_scheduler.py`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .._core._identity import current_workdir, main_identifier
from .._jobdir._workdir import MAIN_JOBS, MAIN_LOCK, main_dir, workdir_of

if TYPE_CHECKING:
    from .._core._task import Task
    from ._job import Job

__all__ = ["has_subparams", "main_lock_free", "main_task_dir", "record_users", "try_main_lock"]


def has_subparams(task: Task) -> bool:
    plan = type(task).__legato_plan__ or type(task)._legato_compile()
    return bool(plan.subparams)


def main_task_dir(task: Task, job_dir: Path) -> Path:
    """`task.__maintaskdir__` for a task whose job directory is `job_dir`: the job directory
    itself for a class without sub-parameters."""
    if not has_subparams(task):
        return job_dir
    workdir = workdir_of(job_dir)
    # Paths inside the workdir count relative to it, as they did for the identifier.
    token = current_workdir.set(workdir)
    try:
        ident = main_identifier(task)
    finally:
        current_workdir.reset(token)
    return main_dir(workdir, type(task).__legato_type_name__, ident)


def record_users(jobs: Iterable[Job]) -> None:
    """Add each job that shares a main directory ("<type name>/<identifier>") to that
    directory's list of users, which `legato clean` reads before removing it."""
    users: dict[Path, list[str]] = {}
    for job in jobs:
        if has_subparams(job.task):
            users.setdefault(job.main_path, []).append(f"{job.type_name}/{job.identifier}")
    for directory, names in users.items():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            known = set((directory / MAIN_JOBS).read_text(encoding="utf-8").splitlines())
        except FileNotFoundError:
            known = set()
        new = [name for name in dict.fromkeys(names) if name not in known]
        if new:
            with open(directory / MAIN_JOBS, "a", encoding="utf-8") as f:
                f.writelines(f"{name}\n" for name in new)


def try_main_lock(directory: Path) -> int | None:
    """An fd holding the main directory's lock, or None when someone else holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / MAIN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def main_lock_free(directory: Path) -> bool:
    """Whether no one holds the main directory's lock (at the time of asking)."""
    fd = try_main_lock(directory)
    if fd is None:
        return False
    os.close(fd)
    return True
