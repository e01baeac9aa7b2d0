"""`JobDir`: the one reader and writer of a job directory's files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import msgspec

from ._files import atomic_write, decode_json, read_bytes, read_json, try_lock, write_json
from ._layout import (
    ATTEMPTS,
    CANCEL,
    DONE,
    FAILED,
    INTERRUPT,
    LOCK,
    PARAMS,
    PROGRESS,
    RESULT,
    STATE,
    attempt_dir,
)

__all__ = ["JobDir"]


class JobDir:
    """The files of one job directory (the protocol of docs/architecture.md), read and
    written through one object: the names, the atomic writes, which writes are flushed to
    the disk, the merges of `state.json`, the lock. No other module writes a job
    directory's files (tests/test_layers.py checks it): the experiment side (`_runner.py`,
    `_experiment.py`), the job's process (`_worker.py`, `_progress.py`, `_result.py`), the
    launchers and the command line all call these methods.

    Plain, blocking file operations: async callers run them in a worker thread.
    """

    __slots__ = ("dir",)

    def __init__(self, path: Path | str) -> None:
        # A string, joined with a name by hand: a job's process makes a dozen paths here,
        # and pathlib's parsing of each cost it more than the system calls they are for.
        self.dir = os.fspath(path).rstrip("/") or "/"

    @property
    def path(self) -> Path:
        return Path(self.dir)

    def _file(self, name: str) -> str:
        return f"{self.dir}/{name}"

    def __repr__(self) -> str:
        return f"JobDir({self.dir!r})"

    # -- the lock ----------------------------------------------------------------------

    def try_lock(self) -> int | None:
        """An fd holding the job's lock, or None when another process holds it: whoever
        holds it runs the job (the experiment, then the job's process that inherits it)."""
        return try_lock(self._file(LOCK))

    # -- what to run -------------------------------------------------------------------

    def write_params(self, data: bytes) -> None:
        """The params file (`dumps` of the task), before each fresh run."""
        atomic_write(self._file(PARAMS), data, durable=False)

    def read_params(self) -> bytes:
        data = read_bytes(self._file(PARAMS))
        if isinstance(data, OSError):
            raise data
        return data

    # -- the verdict -------------------------------------------------------------------

    def is_done(self) -> bool:
        """The DONE rule: the `done` file exists."""
        return os.path.exists(self._file(DONE))

    def write_done(self, record: dict[str, Any]) -> None:
        """The proof of DONE, flushed to the disk before it is renamed into place."""
        write_json(self._file(DONE), record)

    def done_record(self) -> dict[str, Any] | None:
        """The `done` marker's content ({} when unreadable), or None when the job is not
        DONE."""
        data = read_bytes(self._file(DONE))
        if isinstance(data, OSError):
            if isinstance(data, FileNotFoundError):
                return None
            raise data
        try:
            record = decode_json(data)
        except msgspec.DecodeError:
            record = None
        return record if isinstance(record, dict) else {}

    def write_result(self, data: bytes) -> str:
        """The encoded result (`legato._core._result`), whole and durable, before the `done`
        marker that names it; the name that marker records."""
        atomic_write(self._file(RESULT), data)
        return RESULT

    def failure(self) -> dict[str, Any] | None:
        """The failure record, or None when there is none (or it is unreadable)."""
        return read_json(self._file(FAILED))

    def has_failure(self) -> bool:
        return os.path.exists(self._file(FAILED))

    def failure_mtime(self) -> int | None:
        """When the failure record was last written (ns), None without one: tells a record
        that another run wrote from the one it found."""
        try:
            return os.stat(self._file(FAILED)).st_mtime_ns
        except OSError:
            return None

    def write_failure(self, record: dict[str, Any], *, durable: bool = True) -> None:
        """The failure record (`{"state": "failed"|"cancelled"|..., "reason", ...}`).

        `durable` (a verdict of the job's own process, or of the experiment after an
        attempt) flushes it to the disk; the records of jobs that never ran, written in
        bulk, need not be."""
        write_json(self._file(FAILED), record, durable=durable)

    # -- who runs it -------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        return read_json(self._file(STATE))

    def write_state(self, info: dict[str, Any]) -> None:
        """Replace `state.json` (the experiment before an attempt, the job's process as it
        starts)."""
        write_json(self._file(STATE), info, durable=False)

    def merge_state(self, **values: Any) -> dict[str, Any]:
        """Add `values` to `state.json` (keeping the keys others wrote); the new content."""
        info = self.state() or {}
        info.update(values)
        self.write_state(info)
        return info

    def progress(self) -> dict[str, Any] | None:
        """The last progress report of the job."""
        return read_json(self._file(PROGRESS))

    def write_progress(self, report: dict[str, Any]) -> None:
        """The latest `legato.progress()` report, for the command line."""
        write_json(self._file(PROGRESS), report, durable=False)

    # -- cancellation and interruption ---------------------------------------------------

    def request_cancel(self, **by: Any) -> None:
        """The `cancel` marker: the job's end is recorded as cancelled, not failed. Not
        written for a job that is DONE."""
        if not self.is_done():
            write_json(self._file(CANCEL), {"time": time.time(), **by}, durable=False)

    def cancel_requested(self) -> dict[str, Any] | None:
        return read_json(self._file(CANCEL))

    def has_cancel(self) -> bool:
        return os.path.exists(self._file(CANCEL))

    def cancelled_since(self, since: float) -> bool:
        """Whether a cancel request was made at `since` or later (its "time", else the
        marker's mtime). Older markers are from earlier runs: a job cancelled then runs
        again now."""
        try:
            when = os.stat(self._file(CANCEL)).st_mtime
        except FileNotFoundError:
            return False
        record = self.cancel_requested()
        if record is not None and isinstance(record.get("time"), (int, float)):
            when = float(record["time"])
        return when >= since

    def request_interrupt(self, record: dict[str, Any], *, durable: bool = True) -> None:
        """The `interrupt` marker ({"kind": "timeout"|"preempted", "reason", "time"}),
        written before the SIGTERM that ends the attempt, so the job's process records the
        attempt as interrupted of that kind."""
        write_json(self._file(INTERRUPT), record, durable=durable)

    def interrupt_requested(self) -> dict[str, Any] | None:
        return read_json(self._file(INTERRUPT))

    def has_interrupt(self) -> bool:
        return os.path.exists(self._file(INTERRUPT))

    # -- attempts ----------------------------------------------------------------------

    def discard(self, *names: str) -> None:
        """Remove the files `names` of an earlier run or attempt (missing ones are fine)."""
        for name in names:
            try:
                os.unlink(self._file(name))
            except FileNotFoundError:
                pass

    def archive_attempt(self, attempt: int, names: tuple[str, ...]) -> None:
        """Move what attempt `attempt` left (`names`) into `attempts/<N>/`, so the next
        attempt starts with fresh logs and every attempt's stay apart."""
        target = attempt_dir(self.path, attempt)
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            try:
                os.replace(self._file(name), target / name)
            except FileNotFoundError:
                pass

    def write_attempt_failure(self, attempt: int, record: dict[str, Any]) -> None:
        """Why an archived attempt ended, in its `attempts/<N>/failed.json`."""
        write_json(attempt_dir(self.path, attempt) / FAILED, record, durable=False)

    def clear_attempts(self) -> None:
        """Forget the attempts of earlier runs: a fresh run starts at attempt 1."""
        shutil.rmtree(self._file(ATTEMPTS), ignore_errors=True)

    # -- output ----------------------------------------------------------------------------

    def open_log(self, name: str) -> int:
        """A write descriptor on the log `name` (`stdout.log`, `stderr.log`), emptied: the
        job's process sends its output there."""
        return os.open(self._file(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def last_line(self, name: str) -> str:
        """The last non-empty line of a log of the job (`slurm.err`, say), or ""."""
        try:
            with open(self._file(name), "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                tail = f.read().decode(errors="replace")
        except OSError:
            return ""
        lines = tail.strip().splitlines()
        return lines[-1].strip()[:300] if lines else ""
