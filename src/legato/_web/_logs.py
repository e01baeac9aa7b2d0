"""Reading a job's logs for the page: by offset, never following a link out of the job.

A log can be gigabytes: the page gets its tail, then what is appended. A rerun truncates the
log; the reader notices (the file got shorter than the offset) and starts again from 0.
"""

from __future__ import annotations

import os

from .._jobdir._layout import SLURM_ERR, SLURM_OUT, STDERR, STDOUT

__all__ = ["LOGS", "TAIL", "read_log"]

LOGS = {"stdout": STDOUT, "stderr": STDERR, "slurm.out": SLURM_OUT, "slurm.err": SLURM_ERR}
"""The files of a job directory the page may show, by the name the API uses."""
TAIL = 256 * 1024
"""What a page first gets of a long log."""
_CHUNK = 1 << 20

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def read_log(job_dir: str, stream: str, offset: int | None) -> tuple[bytes, int, bool]:
    """(bytes from `offset`, the offset after them, whether the file was restarted).

    `offset` None: the last `TAIL` bytes. A missing file reads as empty. At most 1 MiB at a
    time: the caller asks again."""
    path = os.path.join(job_dir, LOGS[stream])
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
    except OSError:
        return b"", offset or 0, False
    try:
        size = os.fstat(fd).st_size
        restarted = False
        if offset is None:
            offset = max(0, size - TAIL)
        elif size < offset:
            offset, restarted = 0, True
        data = os.pread(fd, min(_CHUNK, max(0, size - offset)), offset)
        return data, offset + len(data), restarted
    finally:
        os.close(fd)
