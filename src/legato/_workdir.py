"""The work directory layout (docs/workdir.md), in one place.

```
<workdir>/jobs/<type name>/<identifier>/
    params.msgpack   the task, written by `dumps` before the first launch (rebuilt by `load`)
    lock             flock held by the experiment that runs the job, and inherited by the
                     job's process, so a job never runs twice at the same time
    state.json       who runs it: {"pid", "host", "launcher", "started", "experiment", ...}
    done             written atomically by the job process after `execute` returned: the only
                     proof of DONE (its content: {"ended": <unix time>, "duration": <s>})
    failed.json      failure record: {"state": "failed"|"cancelled", "reason", "exit_code",
                     "signal", "traceback", "ended"}; any content, or none, means not done
    cancel           written by `legato jobs kill` before it signals the job: the job's
                     verdict is then "cancelled" rather than "failed"
    progress.json    the last `legato.progress()` report: {"fraction", "desc", "time"}
    stdout.log       the job's standard output
    stderr.log       the job's standard error
    slurm.out        SLURM's own output file of the job (SlurmLauncher; the job's: stdout.log)
    slurm.err        SLURM's own error file of the job (time limits, scancel) (SlurmLauncher)
<workdir>/slurm/<batch>/   one `sbatch --array` (SlurmLauncher): jobs.txt (one job directory a
                     line), and <task index> -> job directory links for SLURM's output files
<workdir>/experiments/<name>/
    jobs.txt         one "<type name>/<identifier>" line per job the experiment submitted
    state.json       {"name", "pid", "host", "started", "status", "updated", "counts"}
<workdir>/cache/<type name>/<identifier>/   @cache directories
```

Every file but the logs and `jobs.txt` is written whole to a temporary name and renamed,
so a reader sees the old content or the new, never a part. A `done` file is trusted only
by its existence: it is renamed into place after its content is complete.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec

__all__ = [
    "CANCEL",
    "DONE",
    "FAILED",
    "LOCK",
    "PARAMS",
    "PROGRESS",
    "STATE",
    "STDERR",
    "STDOUT",
    "JobDir",
    "SLURM_ERR",
    "SLURM_OUT",
    "atomic_write",
    "cache_dir",
    "host_name",
    "experiment_dir",
    "experiments_root",
    "job_dir",
    "jobs_root",
    "read_json",
    "slurm_root",
    "write_json",
]

PARAMS = "params.msgpack"
LOCK = "lock"
STATE = "state.json"
DONE = "done"
FAILED = "failed.json"
PROGRESS = "progress.json"
CANCEL = "cancel"
STDOUT = "stdout.log"
STDERR = "stderr.log"
SLURM_OUT = "slurm.out"
SLURM_ERR = "slurm.err"
JOBS_LIST = "jobs.txt"


def jobs_root(workdir: Path) -> Path:
    """The directory holding `<type name>/<identifier>/` job directories."""
    return workdir / "jobs"


def experiments_root(workdir: Path) -> Path:
    """The directory holding one `<name>/` directory per experiment."""
    return workdir / "experiments"


def slurm_root(workdir: Path) -> Path:
    """The directory holding SlurmLauncher's `<batch>/` array directories."""
    return workdir / "slurm"


def job_dir(workdir: Path, type_name: str, identifier: str) -> Path:
    return jobs_root(workdir) / type_name / identifier


def experiment_dir(workdir: Path, name: str) -> Path:
    return experiments_root(workdir) / name


def cache_dir(workdir: Path, type_name: str, identifier: str) -> Path:
    return workdir / "cache" / type_name / identifier


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write to a temporary sibling, rename: readers never see a partial file.

    `durable` fsyncs first, for verdicts that must survive a machine crash. The file is
    created by hand rather than by `tempfile.mkstemp`, whose 0600 mode would hide job
    files from the other users of a shared workdir: this way the umask decides."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: Path, value: Any, *, durable: bool = True) -> None:
    """Write `value` as JSON, atomically; values JSON has no form for are written as str.

    msgspec's JSON rather than the json module: every legato process has msgspec loaded
    already, and a job's process would pay for importing json."""
    atomic_write(path, msgspec.json.encode(value, enc_hook=str), durable=durable)


def host_name() -> str:
    """This machine's name, as every record of the workdir gives it (`state.json`, a
    cancel request, an experiment's record): the kernel's node name, which is what
    `socket.gethostname()` returns on POSIX, without importing socket in a job's process."""
    return os.uname().nodename


def read_json(path: Path) -> dict[str, Any] | None:
    """The content of a JSON state file, or None when missing or corrupt."""
    try:
        value = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    return value if isinstance(value, dict) else None


class JobDir:
    """The files of one job directory (the protocol of docs/architecture.md), read and
    written through one object: the names, the atomic writes, which writes are flushed to
    the disk, and the merges of `state.json`.

    Plain, blocking file operations: async callers run them in a worker thread.
    """

    __slots__ = ("path",)

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r})"

    # -- the verdict -------------------------------------------------------------------

    def is_done(self) -> bool:
        """The DONE rule: the `done` file exists."""
        return os.path.exists(self.path / DONE)

    def write_done(self, record: dict[str, Any]) -> None:
        """The proof of DONE, flushed to the disk before it is renamed into place."""
        write_json(self.path / DONE, record)

    def failure(self) -> dict[str, Any] | None:
        """The failure record, or None when there is none (or it is unreadable)."""
        return read_json(self.path / FAILED)

    def has_failure(self) -> bool:
        return os.path.exists(self.path / FAILED)

    def write_failure(self, record: dict[str, Any]) -> None:
        """The failure record (`{"state": "failed"|"cancelled", "reason", ...}`), durable."""
        write_json(self.path / FAILED, record)

    # -- who runs it -------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        return read_json(self.path / STATE)

    def merge_state(self, **values: Any) -> dict[str, Any]:
        """Add `values` to `state.json` (keeping the keys others wrote); the new content."""
        info = self.state() or {}
        info.update(values)
        write_json(self.path / STATE, info, durable=False)
        return info

    def progress(self) -> dict[str, Any] | None:
        """The last progress report of the job."""
        return read_json(self.path / PROGRESS)

    # -- cancellation --------------------------------------------------------------------

    def request_cancel(self, **by: Any) -> None:
        """The `cancel` marker: the job's end is recorded as cancelled, not failed. Not
        written for a job that is DONE."""
        if not self.is_done():
            write_json(self.path / CANCEL, {"time": time.time(), **by}, durable=False)

    def cancel_requested(self) -> dict[str, Any] | None:
        return read_json(self.path / CANCEL)

    # -- output ----------------------------------------------------------------------------

    def last_line(self, name: str) -> str:
        """The last non-empty line of a log of the job (`slurm.err`, say), or ""."""
        try:
            with open(self.path / name, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                tail = f.read().decode(errors="replace")
        except OSError:
            return ""
        lines = tail.strip().splitlines()
        return lines[-1].strip()[:300] if lines else ""
