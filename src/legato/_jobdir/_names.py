"""The names legato shares between processes and between modules: its environment
variables and the keys it keeps in configurations' instance dictionaries.

One place, so that who sets a variable and who reads it can be checked at a glance (the
table of docs/architecture.md lists them too). The job-directory layer is imported by
every other, so each module takes the names from here rather than spelling them.
"""

from __future__ import annotations

__all__ = [
    "ATTEMPT_ENV",
    "CACHE_KEY",
    "DEADLINE_ENV",
    "DEBUG_ENV",
    "DIGEST_KEY",
    "DISPLAY_ENV",
    "EXPERIMENT_ENV",
    "GRACE_PERIOD_ENV",
    "IDENTIFIER_KEY",
    "JOB_DIR_ENV",
    "JOB_KEY",
    "LAUNCHER_ENV",
    "LOCK_FD_ENV",
    "LOG_INTERVAL_ENV",
    "MAIN_IDENTIFIER_KEY",
    "MAINTASKDIR_KEY",
    "PARENT_PID_ENV",
    "PRODUCER_KEY",
    "PROGRESS_FD_ENV",
    "TAGS_KEY",
    "TASKDIR_KEY",
    "TIME_LIMIT_ENV",
    "WARM_ENV",
    "WARM_PROFILE_ENV",
    "WORKDIR_ENV",
    "WORKER_ENV",
]

# -- environment variables: set by legato for a job's process -------------------------

WORKDIR_ENV = "LEGATO_WORKDIR"
"""The workdir of the experiment. Set by the experiment in every job's environment
(`_runtime/_experiment.py`); read in the job's process to keep paths relative to the
workdir (`_core/_canon.py`, `_core/_serialize.py`) and by `@cache` (`_cache.py`), by
SlurmLauncher for its array directories (`_launchers/_slurm_queue.py`). Users set it
for the command line (`--workdir`, `_cli/__init__.py`, `_inspect/_scan.py`) and for
`@cache` outside an experiment."""

EXPERIMENT_ENV = "LEGATO_EXPERIMENT"
"""The name of the experiment that runs the job. Set by the experiment in every job's
environment (`_runtime/_experiment.py`); for the task's own use (legato reads it
nowhere)."""

WORKER_ENV = "LEGATO_WORKER"
""""1" in a job's process. Set by the worker (`_jobside/_worker.py`) and the warm server
(`_jobside/_warm_server.py`); read by `experiment()` (`_runtime/_experiment.py`), which
refuses to open an experiment inside a job."""

JOB_DIR_ENV = "LEGATO_JOB_DIR"
"""The job's directory. Set by the worker (`_jobside/_worker.py`); read by
`legato.progress()` (`_jobside/_progress.py`), which writes `progress.json` there."""

PROGRESS_FD_ENV = "LEGATO_PROGRESS_FD"
"""The descriptor of the job's progress channel (the launcher's end of its stdout). Set
by the worker (`_jobside/_worker.py`); read by `legato.progress()`
(`_jobside/_progress.py`); removed from the environment of new jobs by the experiment
and SlurmLauncher (`_runtime/_experiment.py`, `_launchers/_slurm_batch.py`), which must
not inherit one."""

LOCK_FD_ENV = "LEGATO_LOCK_FD"
"""The descriptor holding the job's lock in its process. Set by LocalLauncher
(`_launchers/_local.py`), the warm server (`_jobside/_warm_server.py`) and the worker when
it takes the lock itself (`--lock`, `_jobside/_worker.py`); for the task's own use (a
child that must keep the lock); dropped by SlurmLauncher (`_launchers/_slurm_batch.py`)."""

PARENT_PID_ENV = "LEGATO_PARENT_PID"
"""The pid of the experiment process (of the warm server, for a forked job). Set by
LocalLauncher (`_launchers/_local.py`) and the warm server (`_jobside/_warm_server.py`);
read by the worker (`_jobside/_worker.py`), which ends the job when that process dies;
dropped by SlurmLauncher (`_launchers/_slurm_batch.py`)."""

GRACE_PERIOD_ENV = "LEGATO_GRACE_PERIOD"
"""Seconds between the SIGTERM that ends an attempt and its SIGKILL. Set by the launchers
(`_launchers/_local.py`, `_launchers/_slurm.py`); read by the worker
(`_jobside/_worker.py`)."""

TIME_LIMIT_ENV = "LEGATO_TIME_LIMIT"
"""The SLURM job's time limit in seconds. Set by SlurmLauncher (`_launchers/_slurm.py`);
read by the worker (`_jobside/_worker.py`) to tell a time limit from a preemption."""

LAUNCHER_ENV = "LEGATO_LAUNCHER"
""""slurm" under SlurmLauncher. Set by SlurmLauncher (`_launchers/_slurm_batch.py`); read
by the worker (`_jobside/_worker.py`), which then waits for its SLURM id in
`state.json` and reads SLURM's signals."""

RUN_STATE_ENV = "LEGATO_RUN_STATE"
"""The `state.json` record (JSON) of a first run in a job directory that holds nothing of
an earlier one, which the job's process writes, with its pid and host, instead of the
experiment writing it first and the job replacing it: one file made per run instead of
two. Set by the experiment (`_runtime/_runner.py`) for a launcher whose `hands_state` is
true (LocalLauncher); read, and removed from the environment, by the worker
(`_jobside/_worker.py`)."""

ATTEMPT_ENV = "LEGATO_ATTEMPT"
"""The number of the running attempt (1 first). Set by the worker before `execute`
(`_jobside/_worker.py`); read by `legato.attempt()` (`_jobside/_attempt.py`)."""

DEADLINE_ENV = "LEGATO_DEADLINE"
"""The attempt's time limit as a Unix time (the earlier of `submit(timeout=...)` and the
SLURM job's `time`), absent without one. Set by the worker (`_jobside/_worker.py`); read
by `legato.remaining_time()` (`_jobside/_attempt.py`)."""

# -- environment variables: set by users ------------------------------------------------

WARM_ENV = "LEGATO_WARM"
"""`0` turns warm job processes off (docs: LocalLauncher). Read by
`_launchers/_warm.py`."""

WARM_PROFILE_ENV = "LEGATO_WARM_PROFILE"
"""A directory: the warm server and every job it forks write a CPU profile there
(benchmarks/bench_scheduler.py). Read by `_jobside/_warm_server.py`."""

DISPLAY_ENV = "LEGATO_DISPLAY"
"""`0` turns the experiment's progress display off. Read by `_runtime/_display.py`."""

LOG_INTERVAL_ENV = "LEGATO_LOG_INTERVAL"
"""Seconds between two progress lines of the display when it is no terminal. Read by
`_runtime/_display.py`."""

DEBUG_ENV = "LEGATO_DEBUG"
"""Set, the command line prints the traceback of an internal error. Read by
`_cli/__init__.py`."""

# -- keys of a configuration's instance dictionary ----------------------------------------
# Kept in `config.__dict__` beside the fields (msgspec Structs with a __dict__), never
# serialized: what legato learns of a configuration after it is built.

DIGEST_KEY = "__legato_digest__"
"""The identity digest (bytes), cached by `_core/_identity.py`."""

IDENTIFIER_KEY = "__legato_identifier__"
"""The identifier (hex of the digest), cached by `Config.__identifier__`
(`_core/_config.py`)."""

MAIN_IDENTIFIER_KEY = "__legato_main_identifier__"
"""The identifier without the `SubParam` fields, cached by `_core/_identity.py`."""

PRODUCER_KEY = "__legato_producer__"
"""On a task's output: the task that produces it. Set by `Task.submit`
(`_core/_task.py`) and by `loads` (`_core/_serialize.py`); read by the identity and the
graph (`_core/_identity.py`, `_core/_graph.py`)."""

TAGS_KEY = "__legato_tags__"
"""The tags of the configuration (`tag()`), set by `_core/_plan.py` and `loads`; read by
`_core/_graph.py` and `_core/_serialize.py`."""

JOB_KEY = "__legato_job__"
"""On a submitted task: its `Job`. Set by the experiment (`_runtime/_experiment.py`);
read by `_core/_task.py`, `_core/_graph.py` and `_core/_ship.py`."""

TASKDIR_KEY = "__legato_taskdir__"
"""A task's job directory (`__taskdir__`). Set by the experiment, the worker and `loads`
(`_runtime/_experiment.py`, `_jobside/_worker.py`, `_core/_serialize.py`); read by
`_core/_task.py`."""

MAINTASKDIR_KEY = "__legato_maintaskdir__"
"""(job directory, main task directory) of a task with `SubParam` fields, cached by
`__maintaskdir__` (`_core/_task.py`)."""

CACHE_KEY = "__legato_cache__"
"""The paths of a configuration's `@cache` methods, per workdir, cached by `_cache.py`."""
