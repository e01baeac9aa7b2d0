"""The work directory layout (docs/workdir.md), in one place.

```
<workdir>/jobs/<type name>/<identifier>/
    params.msgpack   the task, written by `dumps` before the first launch (rebuilt by `load`)
    lock             flock held by the experiment that runs the job, and inherited by the
                     job's process, so a job never runs twice at the same time
    state.json       who runs it: {"pid", "host", "launcher", "started", "experiment", ...},
                     and its attempts: {"attempt": <1 first>, "retried": <attempts that used
                     up a retry>, "preempted": <attempts preempted>, "timeout",
                     "max_preemptions"}
    done             written atomically by the job process after `execute` returned: the only
                     proof of DONE (its content: {"ended": <unix time>, "duration": <s>},
                     and "result": "result.msgpack" when `execute` returned a value)
    result.msgpack   what `execute` returned, when not None (`legato._core._result`): written
                     whole and durably before `done`, which names it
    failed.json      failure record: {"state": "failed"|"cancelled"|"dependency_failed",
    failed.json      failure record: {"state": "failed"|"cancelled"|"dependency_failed"|
                     "interrupted", "reason", "exit_code", "signal", "traceback", "ended"};
                     any content, or none, means not done. "reason" is at most REASON_MAX
                     characters and "traceback" at most TRACEBACK_MAX (the whole text is in
                     stderr.log). "interrupted" (with "kind": "timeout", "preempted" or
                     "requeue") is the end of an attempt, not of the job: another attempt
                     follows, by this experiment or by the next run. Jobs that never ran
                     have one too: "dependency_failed" (with "dependency" and "cause":
                     {"type", "id", "path", "state"}), "cancelled" (the experiment ended
                     before their turn), or "failed" with "stage": "launch" when legato
                     could not start them
    cancel           written by `legato jobs kill` before it signals the job: the job's
                     verdict is then "cancelled" rather than "failed"
    interrupt        written before the SIGTERM of a time limit (`submit(timeout=...)`) or
                     of `legato jobs interrupt`: {"kind": "timeout"|"preempted", "reason"};
                     the job's verdict is then "interrupted" of that kind
    progress.json    the last `legato.progress()` report: {"fraction", "desc", "time"}
    stdout.log       the job's standard output (of its latest attempt)
    stderr.log       the job's standard error (of its latest attempt)
    slurm.out        SLURM's own output file of the job (SlurmLauncher; the job's: stdout.log)
    slurm.err        SLURM's own error file of the job (time limits, scancel) (SlurmLauncher)
    attempts/<N>/    what attempt N left when another attempt followed it: its stdout.log,
                     stderr.log, failed.json (why it ended) and, under SlurmLauncher, its
                     slurm.out and slurm.err. The latest attempt's are in the job directory
<workdir>/slurm/<batch>/   one `sbatch --array` (SlurmLauncher): jobs.txt (one job directory a
                     line), and <task index> -> job directory links for SLURM's output files
<workdir>/experiments/<name>/
    jobs.txt         one "<type name>/<identifier>" line per job the experiment submitted;
                     each run starts with a "# run <ISO time> pid <pid> host <host>" line, so
                     the lines after the last one are what the latest run submitted (a file
                     without such a line, from an older legato, is one run). The runs
                     before the last RUNS_KEPT are dropped when a new run starts.
    state.json       {"name", "pid", "host", "started", "status", "updated", "counts"}
<workdir>/cache/<type name>/<identifier>/   @cache directories
<workdir>/partials/<type name>/<main identifier>/
                     the main task directory (`__maintaskdir__`) that the jobs of a class with
                     `SubParam` fields share when they differ only in those; the task's own
                     files (checkpoints), and:
    .legato-lock     flock held, like a job's `lock`, by whoever runs one of those jobs: two
                     of them never run at the same time
    .legato-jobs.txt one "<type name>/<identifier>" line per job that uses it, appended at
                     submission: `legato clean` removes the directory once none is left
```

Every file but the logs and `jobs.txt` is written whole to a temporary name and renamed,
so a reader sees the old content or the new, never a part. A `done` file is trusted only
by its existence: it is renamed into place after its content is complete.

A result is committed by the `done` marker that names it. The job's process writes
`result.msgpack` first, then `done` with `"result": "result.msgpack"`, so a job is never
DONE without its result. A `result.msgpack` without a `done`, or beside a `done` that does
not name it, is left over from a run that died before its marker, or from an earlier run
that returned something where this one returned None: it is never read, and the next run
overwrites it. A `done` that names a missing result file means the file was deleted by
hand: the job stays DONE (nothing reruns it behind the user's back), and `load_result`
says which file is gone.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

__all__ = [
    "ATTEMPTS",
    "CANCEL",
    "DONE",
    "FAILED",
    "JOBS_LIST",
    "INTERRUPT",
    "LOCK",
    "MAIN_JOBS",
    "MAIN_LOCK",
    "PARAMS",
    "PROGRESS",
    "REASON_MAX",
    "RUNS_KEPT",
    "RUN_HEADER",
    "RESULT",
    "append_lines",
    "read_bytes",
    "try_lock",
    "STATE",
    "STDERR",
    "STDOUT",
    "TRACEBACK_MAX",
    "JobDir",
    "SLURM_ERR",
    "SLURM_OUT",
    "archive_attempt",
    "atomic_write",
    "bound_text",
    "attempt_dir",
    "cache_dir",
    "count_groups",
    "host_name",
    "experiment_dir",
    "experiments_root",
    "job_dir",
    "jobs_root",
    "main_dir",
    "partials_root",
    "read_json",
    "runs_of",
    "start_run_record",
    "slurm_root",
    "workdir_of",
    "write_experiment_state",
    "write_json",
]

PARAMS = "params.msgpack"
LOCK = "lock"
STATE = "state.json"
DONE = "done"
FAILED = "failed.json"
PROGRESS = "progress.json"
CANCEL = "cancel"
RESULT = "result.msgpack"
INTERRUPT = "interrupt"
ATTEMPTS = "attempts"
STDOUT = "stdout.log"
STDERR = "stderr.log"
SLURM_OUT = "slurm.out"
SLURM_ERR = "slurm.err"
JOBS_LIST = "jobs.txt"
MAIN_LOCK = ".legato-lock"
MAIN_JOBS = ".legato-jobs.txt"
RUN_HEADER = "# run "
"""Starts the line that opens each run's part of `jobs.txt`."""
RUNS_KEPT = 3
"""How many runs `jobs.txt` keeps (the latest ones): enough for the run in progress and
the one before it, which `legato clean --orphans` both spare."""
REASON_MAX = 2000
"""The longest failure reason stored in `failed.json` or printed (characters)."""
TRACEBACK_MAX = 20000
"""The longest traceback stored in `failed.json`; the whole one is in `stderr.log`."""


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


def count_groups(counts: dict[str, int]) -> dict[str, int]:
    """An experiment's job counts by state (its state.json's "counts") in the groups that
    people are shown: done, running, failed (dependency_failed with it), cancelled and
    waiting (ready with it)."""
    return {
        "done": counts.get("done", 0),
        "running": counts.get("running", 0),
        "failed": counts.get("failed", 0) + counts.get("dependency_failed", 0),
        "cancelled": counts.get("cancelled", 0),
        "waiting": counts.get("waiting", 0) + counts.get("ready", 0),
    }


def partials_root(workdir: Path) -> Path:
    """The directory holding `<type name>/<main identifier>/` main task directories."""
    return workdir / "partials"


def main_dir(workdir: Path, type_name: str, main_identifier: str) -> Path:
    """The main task directory of the jobs of a class with sub-parameters."""
    return partials_root(workdir) / type_name / main_identifier


def workdir_of(job_dir: Path) -> Path:
    """The workdir that holds `job_dir` (`<workdir>/jobs/<type name>/<identifier>`)."""
    return job_dir.parents[2]


def cache_dir(workdir: Path, type_name: str, identifier: str) -> Path:
    return workdir / "cache" / type_name / identifier


def attempt_dir(job_dir: Path, attempt: int) -> Path:
    """Where attempt `attempt` (1 first) of a job that was run again keeps its logs."""
    return job_dir / ATTEMPTS / str(attempt)


def archive_attempt(job_dir: Path, attempt: int, names: tuple[str, ...]) -> None:
    """Move the files `names` of an attempt that ended into its `attempts/<N>/`, so the
    next attempt starts with fresh logs and every attempt's stay apart."""
    target = attempt_dir(job_dir, attempt)
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            os.replace(job_dir / name, target / name)
        except FileNotFoundError:
            pass


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


_decode_json = msgspec.json.Decoder().decode


def read_bytes(path: str | os.PathLike[str]) -> bytes | OSError:
    """A small file's content, or the error: raw descriptors, cheaper than `open()` when
    `legato jobs ls` reads thousands of records."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except OSError as exc:
        return exc
    try:
        data = os.read(fd, 65536)
        if len(data) == 65536:
            chunks = [data]
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    except OSError as exc:
        return exc
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The object of a JSON record, or None when missing, partial or corrupt: a record
    being replaced reads as its old content or its new, and one not written yet as None."""
    data = read_bytes(path)
    if isinstance(data, OSError):
        return None
    try:
        value = _decode_json(data)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def bound_text(text: str, limit: int, where: str = "stderr.log") -> str:
    """`text` cut to about `limit` characters, head and tail kept, saying where the whole is.

    A 10 MB exception message must not be stored twice over in `failed.json`, nor printed
    whole by the CLI: the job's own stderr has it all."""
    if len(text) <= limit:
        return text
    keep = max(limit - 100, 20)
    head, tail = text[: keep * 3 // 4], text[len(text) - keep // 4 :]
    return f"{head} [... {len(text) - len(head) - len(tail)} characters cut: see {where}] {tail}"


def runs_of(text: str) -> list[list[str]]:
    """The runs recorded in a `jobs.txt`, oldest first: each the list of its job lines.

    Lines before the first run header (the whole file, for an older legato's) count as
    one run."""
    runs: list[list[str]] = []
    current: list[str] = []
    headed = False
    for line in text.splitlines():
        if line.startswith(RUN_HEADER):
            if current or headed:
                runs.append(current)
            current, headed = [], True
        elif line and not line.startswith("#"):
            current.append(line)
    if current or headed:
        runs.append(current)
    return runs


def start_run_record(path: Path, header: str) -> None:
    """Open a new run in the `jobs.txt` at `path`: drop the runs before the last
    `RUNS_KEPT - 1` (rewritten atomically), then append the run's header line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.startswith(RUN_HEADER):
            blocks.append([])
        blocks[-1].append(line)
    blocks = [b for b in blocks if b]
    if len(blocks) > RUNS_KEPT - 1:
        kept = "".join("".join(b) for b in blocks[len(blocks) - (RUNS_KEPT - 1) :])
        atomic_write(path, kept.encode(), durable=False)
    with open(path, "a", encoding="utf-8") as f:
        if text and not text.endswith("\n"):
            f.write("\n")  # a line cut by a crash stays on its own
        f.write(header + "\n")


def try_lock(path: Path) -> int | None:
    """An fd holding the exclusive `flock` of the lock file at `path` (created if missing),
    or None when another process holds it.

    The one lock of the workdir: a job's `lock` (`JobDir.try_lock`) and a main task
    directory's `.legato-lock` (`_maindir.py`). A non-blocking `flock` on an open file: it
    goes with the open file, so a child that inherits the fd keeps the lock after its
    parent dies, and the kernel drops it when the last holder of the fd exits, however it
    exits. Raises OSError when the file cannot be opened (no directory, a read-only
    workdir)."""
    import fcntl  # not every job's process takes a lock

    fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_experiment_state(path: Path, state: dict[str, Any]) -> None:
    """An experiment's `state.json` (in its directory `path`), rewritten as it goes."""
    write_json(path / STATE, state, durable=False)


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append `lines` (each ending in a newline) to a list file: `jobs.txt`, a main
    directory's `.legato-jobs.txt`. Appends are not atomic: a reader ignores a last line
    without its newline, and `start_run_record` puts the next one on its own."""
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(lines)


class JobDir:
    """The files of one job directory (the protocol of docs/architecture.md), read and
    written through one object: the names, the atomic writes, which writes are flushed to
    the disk, the merges of `state.json`, the lock. No other module writes a job
    directory's files (tests/test_layers.py checks it): the experiment side (`_runner.py`,
    `_experiment.py`), the job's process (`_worker.py`, `_progress.py`, `_result.py`), the
    launchers and the command line all call these methods.

    Plain, blocking file operations: async callers run them in a worker thread.
    """

    __slots__ = ("path",)

    def __init__(self, path: Path | str) -> None:
        self.path = path if isinstance(path, Path) else Path(path)

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r})"

    # -- the lock ----------------------------------------------------------------------

    def try_lock(self) -> int | None:
        """An fd holding the job's lock, or None when another process holds it: whoever
        holds it runs the job (the experiment, then the job's process that inherits it)."""
        return try_lock(self.path / LOCK)

    # -- what to run -------------------------------------------------------------------

    def write_params(self, data: bytes) -> None:
        """The params file (`dumps` of the task), before each fresh run."""
        atomic_write(self.path / PARAMS, data, durable=False)

    def read_params(self) -> bytes:
        return (self.path / PARAMS).read_bytes()

    # -- the verdict -------------------------------------------------------------------

    def is_done(self) -> bool:
        """The DONE rule: the `done` file exists."""
        return os.path.exists(self.path / DONE)

    def write_done(self, record: dict[str, Any]) -> None:
        """The proof of DONE, flushed to the disk before it is renamed into place."""
        write_json(self.path / DONE, record)

    def done_record(self) -> dict[str, Any] | None:
        """The `done` marker's content ({} when unreadable), or None when the job is not
        DONE."""
        data = read_bytes(self.path / DONE)
        if isinstance(data, OSError):
            if isinstance(data, FileNotFoundError):
                return None
            raise data
        try:
            record = _decode_json(data)
        except msgspec.DecodeError:
            record = None
        return record if isinstance(record, dict) else {}

    def write_result(self, data: bytes) -> str:
        """The encoded result (`legato._core._result`), whole and durable, before the `done`
        marker that names it; the name that marker records."""
        atomic_write(self.path / RESULT, data)
        return RESULT

    def failure(self) -> dict[str, Any] | None:
        """The failure record, or None when there is none (or it is unreadable)."""
        return read_json(self.path / FAILED)

    def has_failure(self) -> bool:
        return os.path.exists(self.path / FAILED)

    def failure_mtime(self) -> int | None:
        """When the failure record was last written (ns), None without one: tells a record
        that another run wrote from the one it found."""
        try:
            return os.stat(self.path / FAILED).st_mtime_ns
        except OSError:
            return None

    def write_failure(self, record: dict[str, Any], *, durable: bool = True) -> None:
        """The failure record (`{"state": "failed"|"cancelled"|..., "reason", ...}`).

        `durable` (a verdict of the job's own process, or of the experiment after an
        attempt) flushes it to the disk; the records of jobs that never ran, written in
        bulk, need not be."""
        write_json(self.path / FAILED, record, durable=durable)

    # -- who runs it -------------------------------------------------------------------

    def state(self) -> dict[str, Any] | None:
        return read_json(self.path / STATE)

    def write_state(self, info: dict[str, Any]) -> None:
        """Replace `state.json` (the experiment before an attempt, the job's process as it
        starts)."""
        write_json(self.path / STATE, info, durable=False)

    def merge_state(self, **values: Any) -> dict[str, Any]:
        """Add `values` to `state.json` (keeping the keys others wrote); the new content."""
        info = self.state() or {}
        info.update(values)
        self.write_state(info)
        return info

    def progress(self) -> dict[str, Any] | None:
        """The last progress report of the job."""
        return read_json(self.path / PROGRESS)

    def write_progress(self, report: dict[str, Any]) -> None:
        """The latest `legato.progress()` report, for the command line."""
        write_json(self.path / PROGRESS, report, durable=False)

    # -- cancellation and interruption ---------------------------------------------------

    def request_cancel(self, **by: Any) -> None:
        """The `cancel` marker: the job's end is recorded as cancelled, not failed. Not
        written for a job that is DONE."""
        if not self.is_done():
            write_json(self.path / CANCEL, {"time": time.time(), **by}, durable=False)

    def cancel_requested(self) -> dict[str, Any] | None:
        return read_json(self.path / CANCEL)

    def has_cancel(self) -> bool:
        return os.path.exists(self.path / CANCEL)

    def cancelled_since(self, since: float) -> bool:
        """Whether a cancel request was made at `since` or later (its "time", else the
        marker's mtime). Older markers are from earlier runs: a job cancelled then runs
        again now."""
        try:
            when = os.stat(self.path / CANCEL).st_mtime
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
        write_json(self.path / INTERRUPT, record, durable=durable)

    def interrupt_requested(self) -> dict[str, Any] | None:
        return read_json(self.path / INTERRUPT)

    def has_interrupt(self) -> bool:
        return os.path.exists(self.path / INTERRUPT)

    # -- attempts ----------------------------------------------------------------------

    def discard(self, *names: str) -> None:
        """Remove the files `names` of an earlier run or attempt (missing ones are fine)."""
        for name in names:
            try:
                os.unlink(self.path / name)
            except FileNotFoundError:
                pass

    def archive_attempt(self, attempt: int, names: tuple[str, ...]) -> None:
        """Move what attempt `attempt` left (`names`) into `attempts/<N>/`."""
        archive_attempt(self.path, attempt, names)

    def write_attempt_failure(self, attempt: int, record: dict[str, Any]) -> None:
        """Why an archived attempt ended, in its `attempts/<N>/failed.json`."""
        write_json(attempt_dir(self.path, attempt) / FAILED, record, durable=False)

    def clear_attempts(self) -> None:
        """Forget the attempts of earlier runs: a fresh run starts at attempt 1."""
        shutil.rmtree(self.path / ATTEMPTS, ignore_errors=True)

    # -- output ----------------------------------------------------------------------------

    def open_log(self, name: str) -> int:
        """A write descriptor on the log `name` (`stdout.log`, `stderr.log`), emptied: the
        job's process sends its output there."""
        return os.open(self.path / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

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
