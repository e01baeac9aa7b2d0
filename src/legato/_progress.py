"""`legato.progress()`: a running job tells its experiment how far it is."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["progress"]

_last_file_write = 0.0
_FILE_INTERVAL = 0.5


def progress(fraction: float, desc: str | None = None) -> None:
    """Report progress in [0, 1] (and what is being done) from inside a job.

    Outside a job it does nothing, so a task's `execute` can be called directly in tests.
    The experiment sees it at once (`job.progress`); `progress.json` in the job directory
    keeps the latest report for the command line, rewritten at most twice a second.
    """
    global _last_file_write
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"progress(): fraction must be a number, got {fraction!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"progress(): fraction must be within [0, 1], got {fraction!r}")
    if desc is not None and not isinstance(desc, str):
        raise TypeError(f"progress(): desc must be a str or None, got {desc!r}")
    fd = os.environ.get("LEGATO_PROGRESS_FD")
    job_dir = os.environ.get("LEGATO_JOB_DIR")
    if fd is None or job_dir is None:
        return
    message = {"fraction": float(fraction), "desc": desc}
    try:
        os.write(int(fd), json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the experiment stopped listening; the job goes on
    now = time.monotonic()
    if now - _last_file_write >= _FILE_INTERVAL or fraction >= 1.0:
        _last_file_write = now
        from ._workdir import PROGRESS, write_json

        message["time"] = time.time()
        write_json(Path(job_dir) / PROGRESS, message, durable=False)
