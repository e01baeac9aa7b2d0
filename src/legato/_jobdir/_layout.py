"""The work directory layout (docs/workdir.md), in one place: the names of its files and
the paths of its directories.

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
                     before the last `_experimentdir.RUNS_KEPT` are dropped when a new run starts.
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

from pathlib import Path

__all__ = [
    "ATTEMPTS",
    "CANCEL",
    "DONE",
    "FAILED",
    "INTERRUPT",
    "JOBS_LIST",
    "LOCK",
    "MAIN_JOBS",
    "MAIN_LOCK",
    "PARAMS",
    "PROGRESS",
    "REASON_MAX",
    "RESULT",
    "SLURM_ERR",
    "SLURM_OUT",
    "STATE",
    "STDERR",
    "STDOUT",
    "TRACEBACK_MAX",
    "attempt_dir",
    "cache_dir",
    "experiment_dir",
    "experiments_root",
    "job_dir",
    "jobs_root",
    "main_dir",
    "partials_root",
    "slurm_root",
    "workdir_of",
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
