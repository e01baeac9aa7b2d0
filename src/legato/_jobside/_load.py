"""`legato.load(job_dir)`: rebuild a task from its job directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._core._identity import current_workdir, identifier_digest
from .._core._serialize import loads
from .._core._task import resolve_paths
from .._errors import DeserializationError
from .._jobdir._job import JobDir
from .._jobdir._layout import PARAMS

__all__ = ["load"]


def load(job_dir: str | os.PathLike[str]) -> Any:
    """The task whose params a job directory holds, with its paths, tags and identifier.

    Path generators point inside `job_dir` wherever the workdir has moved since.
    """
    path = Path(job_dir).absolute()
    try:
        data = JobDir(path).read_params()
    except FileNotFoundError:
        raise DeserializationError(f"{path} is not a job directory (no {PARAMS})") from None
    # The workdir is the one the job directory lies in (<workdir>/jobs/<type>/<id>), wherever
    # it was when the params were written: paths inside it are rebuilt here, and the
    # identity, fixed now, counts them relative to it.
    token = current_workdir.set(path.parent.parent.parent)
    try:
        task = loads(data)
        resolve_paths(task, path)
        identifier_digest(task)
    finally:
        current_workdir.reset(token)
    return task
