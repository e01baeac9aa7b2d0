"""What `SlurmLauncher` says to SLURM and how it reads the answers: sbatch arguments from
validated resources, batch scripts, array directories, and the parsing of sbatch's and
squeue's output. Plain functions: the launcher runs the disk work in worker threads.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .._jobdir._job import JobDir
from .._jobdir._layout import SLURM_ERR, slurm_root
from .._jobdir._names import LAUNCHER_ENV, LOCK_FD_ENV, PARENT_PID_ENV, PROGRESS_FD_ENV

__all__ = [
    "ARRAY_LIST",
    "STARTED",
    "TERMINAL",
    "VANISHED",
    "array_script",
    "count",
    "format_time",
    "job_env",
    "job_name",
    "look",
    "make_batch",
    "parse_job_id",
    "parse_squeue",
    "record_ids",
    "remove_batches",
    "sbatch_args",
    "sbatch_message",
    "seconds",
    "single_script",
    "slurm_ending",
    "time_seconds",
    "vanished",
    "write_cancel",
]

VANISHED = "vanished from the SLURM queue without a verdict"
ARRAY_LIST = "jobs.txt"
"""In an array directory: the job directory of array task i on line i + 1."""

TERMINAL = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
"""squeue states of a job that has ended (listed while younger than MinJobAge)."""
STARTED = frozenset(
    {"CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}
)
"""squeue states of a job whose process was started."""

# Options that legato sets itself: a user's value would break submission or the job directory.
_RESERVED = {
    "--array": "-a",
    "--error": "-e",
    "--export": None,
    "--output": "-o",
    "--parsable": None,
    "--wait": "-W",
    "--wrap": None,
}
_MEM = re.compile(r"[0-9]+[KMGTkmgt]?")
_JOB_ID = re.compile(r"[0-9]+")
_SBATCH_ERROR = re.compile(r"^sbatch: error: ")
_SLURMSTEPD = re.compile(r"^slurmstepd(-[^:]*)?: error: ")
_ARRAY_RANGE = re.compile(r"([0-9]+)_\[([0-9,\-%]+)\]")


def _plain(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValueError(
            f"SlurmLauncher: {what} must be a non-empty string without spaces, got {value!r}"
        )
    return value


def count(what: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"SlurmLauncher: {what} must be an int >= {minimum}, got {value!r}")
    return value


def seconds(what: str, value: Any, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < math.inf
        or (value == 0 and not zero)
    ):
        limit = ">= 0" if zero else "> 0"
        raise ValueError(
            f"SlurmLauncher: {what} must be a number of seconds {limit}, got {value!r}"
        )
    return float(value)


def format_time(value: Any) -> str:
    """SLURM's --time: a string as given ("1:00:00", "2-0"), minutes, or a timedelta."""
    if isinstance(value, datetime.timedelta):
        seconds = math.ceil(value.total_seconds())
        if seconds <= 0:
            raise ValueError(f"SlurmLauncher: time must be positive, got {value!r}")
        days, rest = divmod(seconds, 86400)
        return f"{days}-{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(count("time (in minutes)", value, 1))
    if isinstance(value, str):
        return _plain("time", value)
    raise ValueError(
        "SlurmLauncher: time must be a SLURM time string ('1:30:00', '2-0'), minutes (int) "
        f"or a datetime.timedelta, got {value!r}"
    )


_TIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


def time_seconds(formatted: str) -> float | None:
    """Seconds of a SLURM time limit ("30", "1:30:00", "2-0", "2-12:30"); None for
    "infinite" or a form SLURM may accept but this does not know."""
    match = _TIME.fullmatch(formatted.strip())
    if match is None:
        return None
    days, first, second, third = match.groups()
    parts = [int(x) for x in (first, second, third) if x is not None]
    if days is not None:  # days-hours[:minutes[:seconds]]
        hours, minutes, secs = [*parts, 0, 0][:3]
        return float(int(days) * 86400 + hours * 3600 + minutes * 60 + secs)
    if len(parts) == 1:  # minutes
        return float(parts[0] * 60)
    if len(parts) == 2:  # minutes:seconds
        return float(parts[0] * 60 + parts[1])
    return float(parts[0] * 3600 + parts[1] * 60 + parts[2])  # hours:minutes:seconds


def sbatch_args(
    partition: Any, time_limit: Any, cpus: Any, mem: Any, gpus: Any, options: Any
) -> list[str]:
    """The validated resources as sbatch options; ValueError naming the bad argument."""
    args: list[str] = []
    if partition is not None:
        args.append(f"--partition={_plain('partition', partition)}")
    if time_limit is not None:
        args.append(f"--time={format_time(time_limit)}")
    if cpus is not None:
        args.append(f"--cpus-per-task={count('cpus', cpus, 1)}")
    if mem is not None:
        if isinstance(mem, int) and not isinstance(mem, bool):
            args.append(f"--mem={count('mem (in MiB)', mem, 1)}M")
        elif isinstance(mem, str) and _MEM.fullmatch(mem):
            args.append(f"--mem={mem}")
        else:
            raise ValueError(
                f"SlurmLauncher: mem must be MiB (int) or a size such as '4G', got {mem!r}"
            )
    if gpus is not None:
        if isinstance(gpus, str):
            args.append(f"--gres=gpu:{_plain('gpus', gpus)}")
        elif count("gpus", gpus, 0):
            args.append(f"--gres=gpu:{gpus}")
    if isinstance(options, (str, bytes)) or not isinstance(options, Iterable):
        raise ValueError(
            f"SlurmLauncher: options must be a sequence of sbatch arguments such as "
            f"('--qos=high', '--account', 'lab'), got {options!r}"
        )
    for option in options:
        if not isinstance(option, str):
            raise ValueError(f"SlurmLauncher: options must be strings, got {option!r}")
        for long, short in _RESERVED.items():
            if option.split("=", 1)[0] == long or (short and option.startswith(short)):
                raise ValueError(
                    f"SlurmLauncher: option {option!r} is set by legato itself ({long})"
                )
        args.append(option)
    return args


def job_name(job_dirs: Sequence[Path]) -> str:
    """The task type name ("module.Class"), or "legato" for an array of several types."""
    names = {d.parent.name for d in job_dirs}
    return names.pop() if len(names) == 1 else "legato"


def single_script(argv: Sequence[str]) -> str:
    return (
        "#!/bin/sh\n"
        "# legato job (SlurmLauncher): the job entry point, output in the job directory\n"
        f"exec {shlex.join(argv)}\n"
    )


def array_script(argv_prefix: Sequence[str], batch: Path) -> str:
    jobs = shlex.quote(str(batch / ARRAY_LIST))
    return (
        "#!/bin/sh\n"
        f"# legato array (SlurmLauncher): task i runs the job directory on line i + 1 of {jobs}\n"
        f'job_dir=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {jobs})\n'
        f'exec {shlex.join(argv_prefix)} "$job_dir"\n'
    )


def make_batch(workdir: Path, job_dirs: Sequence[Path]) -> Path:
    """A new array directory: the list of job directories and one link per array task,
    through which SLURM writes each task's output files into its job directory."""
    root = slurm_root(workdir)
    root.mkdir(parents=True, exist_ok=True)
    batch = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root))
    (batch / ARRAY_LIST).write_text("".join(f"{d}\n" for d in job_dirs), encoding="utf-8")
    for index, directory in enumerate(job_dirs):
        os.symlink(directory, batch / str(index))
    return batch


def remove_batches(batches: Iterable[Path]) -> None:
    for batch in batches:
        shutil.rmtree(batch, ignore_errors=True)


def parse_job_id(stdout: bytes) -> str | None:
    """`sbatch --parsable` prints "<job id>" or "<job id>;<cluster>"."""
    lines = stdout.decode(errors="replace").strip().splitlines()
    job_id = lines[-1].split(";", 1)[0].strip() if lines else ""
    return job_id if _JOB_ID.fullmatch(job_id) else None


def sbatch_message(stderr: bytes, returncode: int) -> str:
    """sbatch's own words for a rejection: its error lines, without their "sbatch: error:"."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if "error" in line.lower()]
    text = "; ".join(_SBATCH_ERROR.sub("", line) for line in errors or lines)
    return text or f"sbatch exited with status {returncode} and no message"


def _expand(indices: str) -> list[str]:
    out: list[str] = []
    for part in indices.split("%", 1)[0].split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            out.extend(str(i) for i in range(int(low), int(high or low) + 1))
    return out


def parse_squeue(stdout: bytes) -> dict[str, str]:
    """Lines "<id> <state>" (`squeue -h -r -o '%i %T'`) as {id: state}; array ids are
    "<array job>_<task>", a range still listed as one line ("12_[3-9%2]") is expanded."""
    states: dict[str, str] = {}
    for line in stdout.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        job_id, state = fields[0], fields[1]
        ranged = _ARRAY_RANGE.fullmatch(job_id)
        if ranged:
            for index in _expand(ranged.group(2)):
                states[f"{ranged.group(1)}_{index}"] = state
        else:
            states[job_id] = state
    return states


def record_ids(runs: Sequence[tuple[Path, str]]) -> None:
    """Merge {"launcher": "slurm", "slurm_id": …} into each job's state.json."""
    for job_dir, slurm_id in runs:
        JobDir(job_dir).merge_state(launcher="slurm", slurm_id=slurm_id)


def write_cancel(job_dirs: Sequence[Path]) -> None:
    """The `cancel` marker (as `legato jobs kill` writes it): the job, if it runs, records
    its end as cancelled rather than failed."""
    for job_dir in job_dirs:
        JobDir(job_dir).request_cancel(by="SlurmLauncher")


def look(
    left: Sequence[Path], running: Sequence[Path]
) -> tuple[list[tuple[bool, bool, str]], list[dict[str, Any] | None]]:
    """For jobs that left the queue: (done marker, failure record, last line of slurm.err);
    for running jobs: their last progress report.

    A job that SLURM ended (time limit, memory) records only the SIGTERM it caught;
    SLURM's own line in slurm.err, which says why, is added to the record's reason."""
    found = []
    for path in left:
        job = JobDir(path)
        done = job.is_done()
        failed = job.has_failure()
        slurm_err = "" if done else job.last_line(SLURM_ERR)
        if failed and _SLURMSTEPD.match(slurm_err):
            _add_slurm_reason(job, _SLURMSTEPD.sub("", slurm_err))
        found.append((done, failed, slurm_err))
    return found, [JobDir(path).progress() for path in running]


def _add_slurm_reason(job: JobDir, line: str) -> None:
    record = job.failure()
    if record is None or record.get("state") != "failed":
        return  # unreadable, or cancelled on purpose: the record says enough
    reason = str(record.get("reason") or "failed")
    if line not in reason:
        record["reason"] = f"{reason}; SLURM: {line}"
        job.write_failure(record)


_CANCELLED_LINE = re.compile(r"\*\*\* JOB \S+ ON \S+ CANCELLED AT \S+(?: DUE TO (.+?))? \*\*\*")
_DUE_TO = {
    "TIME LIMIT": "timeout",
    "PREEMPTION": "preempted",
    "NODE FAILURE": "preempted",
    "JOB REQUEUE": "preempted",
}


def slurm_ending(slurm_err: str) -> str | None:
    """How SLURM's last line in slurm.err says it ended the job: "timeout", "preempted",
    "cancelled" (a bare `scancel`), or None when it says nothing of the kind.

    squeue forgets ended jobs at once (without `--states=all`): this line is what tells
    a job cancelled with `scancel` from one preempted, both of which saw a SIGTERM."""
    match = _CANCELLED_LINE.search(slurm_err)
    if match is None:
        return None
    return "cancelled" if match.group(1) is None else _DUE_TO.get(match.group(1))


def vanished(last_state: str | None, slurm_err: str) -> str:
    """The failure reason of a job that left the queue without writing a verdict."""
    details = [f"last seen {last_state}"] if last_state else []
    details += [f"{SLURM_ERR}: {slurm_err}"] if slurm_err else []
    return VANISHED + (f" ({'; '.join(details)})" if details else "")


# What a local job's process inherits from its experiment and a SLURM job must not: the
# devices and file descriptors of the submitting machine mean nothing on the node.
_DROPPED_ENV = ("CUDA_VISIBLE_DEVICES", LOCK_FD_ENV, PARENT_PID_ENV, PROGRESS_FD_ENV)


def job_env(env: dict[str, str]) -> dict[str, str]:
    """The job's environment, which sbatch exports to the job."""
    env = {k: v for k, v in env.items() if k not in _DROPPED_ENV}
    env[LAUNCHER_ENV] = "slurm"
    return env
