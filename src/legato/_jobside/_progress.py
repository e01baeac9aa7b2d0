"""`legato.progress()`: a running job tells its experiment how far it is."""

from __future__ import annotations

import json
import math
import os
import time
import warnings

from .._jobdir._names import JOB_DIR_ENV, PROGRESS_FD_ENV

__all__ = ["progress"]

_last_file_write = 0.0
_FILE_INTERVAL = 0.5


def progress(fraction: float, desc: str | None = None) -> None:
    """Report progress in [0, 1] (and what is being done) from inside a job.

    Outside a job it does nothing, so a task's `execute` can be called directly in tests.
    The experiment sees it at once (`job.progress`); `progress.json` in the job directory
    keeps the latest report for the command line, rewritten at most twice a second.

    Reporting never fails a job: a fraction past either end (`1.0000000000000002` from
    summed steps, a step count over the total) is clamped to [0, 1]; one that is no finite
    number (NaN, an infinity, a str) is ignored with a warning, as is a `desc` that is no
    str (the fraction is still reported).
    """
    global _last_file_write
    try:  # numpy and other numbers convert; a str, even "0.5", is no number
        number = math.nan if isinstance(fraction, (str, bytes, bool)) else float(fraction)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        warnings.warn(f"progress(): ignored {fraction!r}, not a number", stacklevel=2)
        return
    fraction = min(max(number, 0.0), 1.0)
    if desc is not None and not isinstance(desc, str):
        warnings.warn(f"progress(): ignored desc {desc!r}, not a str", stacklevel=2)
        desc = None
    fd = os.environ.get(PROGRESS_FD_ENV)
    job_dir = os.environ.get(JOB_DIR_ENV)
    if fd is None or job_dir is None:
        return
    message = {"fraction": fraction, "desc": desc}
    try:
        os.write(int(fd), json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the experiment stopped listening; the job goes on
    now = time.monotonic()
    if now - _last_file_write >= _FILE_INTERVAL or fraction >= 1.0:
        _last_file_write = now
        from .._jobdir._job import JobDir

        message["time"] = time.time()
        JobDir(job_dir).write_progress(message)
