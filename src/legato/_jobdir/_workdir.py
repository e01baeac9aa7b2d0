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
import time
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


def read_json(path: Path) -> dict[str, Any] | None:
    """The content of a JSON state file, or None when missing or corrupt."""
    try:
        value = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
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
