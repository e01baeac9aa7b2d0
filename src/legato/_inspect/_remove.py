"""Removing job directories and unused main directories, never a running job's.

A directory is renamed to a hidden sibling before it is deleted, so readers (and
experiments) see it whole or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._jobdir._files import remove_tree
from .._jobdir._layout import MAIN_JOBS, MAIN_LOCK, jobs_root, partials_root
from ._procs import Locks
from ._scan import JobEntry, read_job

__all__ = ["remove_job_dir", "unused_partials"]


def remove_job_dir(entry: JobEntry) -> str | None:
    """Remove the job's directory; why not, or None once removed."""
    current = read_job(entry.type_name, entry.identifier, entry.dir, Locks())
    if current is None:
        return None  # removed meanwhile
    if current.state == "running":
        return "it is running (cancel it first: legato jobs kill)"
    error = remove_tree(entry.dir)
    return None if error is None else f"cannot remove {entry.dir}: {error.strerror}"


def unused_partials(workdir: Path, going: set[str]) -> list[Path]:
    """The main task directories that no job uses any more: every job on their list of
    users is gone (or in `going`), and no one holds their lock."""
    unused = []
    locks = Locks()
    for main in sorted(partials_root(workdir).glob("*/*")):
        if main.name.startswith(".") or not main.is_dir():
            continue
        try:
            users = (main / MAIN_JOBS).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            users = []
        except OSError:
            continue  # cannot tell who uses it: keep it
        dirs = [os.path.normpath(jobs_root(workdir) / user) for user in users if user]
        if any(d not in going and os.path.isdir(d) for d in dirs):
            continue
        if locks.held(str(main / MAIN_LOCK)):
            continue
        unused.append(main)
    return unused
