"""A fake SLURM for the tests: sbatch, squeue, scancel, scontrol and sinfo over jobs that run
as local processes, so that the launcher's queue logic (arrays, back-off, adoption, leader
handover, scancel) is tested on every machine. The real-cluster tests stay.

State lives in $FAKE_SLURM_DIR: `jobs/<id>.json` per job (per array task), a counter, a
lock. There is no daemon: every command, and every job as it ends, runs the scheduler,
which starts pending jobs while the node's CPUs ($FAKE_SLURM_CPUS, default 16) suffice and
their `--begin` time has come. Ended jobs leave squeue's default list at once and stay
visible to `squeue --states=all` and `scontrol show job`.

`scontrol requeue` stops a running job and runs it again under the same id, as SLURM does:
COMPLETING until its process ended, then PENDING.

Only what legato and its tests use is understood; anything else is an error, loudly.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PARTITIONS = ("debug", "other")
ENDED = ("COMPLETED", "FAILED", "CANCELLED")
HOST = socket.gethostname().split(".")[0]


def root() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def cpus_total() -> int:
    return int(os.environ.get("FAKE_SLURM_CPUS", "16"))


@contextmanager
def locked() -> Iterator[None]:
    (root() / "jobs").mkdir(parents=True, exist_ok=True)
    fd = os.open(root() / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load(job_id: str) -> dict[str, Any]:
    return json.loads((root() / "jobs" / f"{job_id}.json").read_text())


def save(job: dict[str, Any]) -> None:
    path = root() / "jobs" / f"{job['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(job))
    os.replace(tmp, path)


def jobs() -> list[dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in (root() / "jobs").glob("*.json")]
    return sorted(found, key=lambda job: (job["array"], job["task"]))


def fail(message: str, command: str = "sbatch") -> None:
    print(f"{command}: error: {message}", file=sys.stderr)
    sys.exit(1)


# -- scheduling ---------------------------------------------------------------------------


def schedule() -> None:
    """Start the pending jobs that fit (call with the lock held)."""
    now = time.time()
    everything = jobs()
    used = sum(job["cpus"] for job in everything if job["state"] == "RUNNING")
    for job in everything:
        if job["state"] != "PENDING" or job["begin"] > now:
            continue
        if used + job["cpus"] > cpus_total():
            continue
        used += job["cpus"]
        job["state"] = "RUNNING"
        save(job)
        runner = subprocess.Popen(
            [sys.executable, __file__, "_run", job["id"]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ.copy(),
        )
        job["runner"] = runner.pid
        save(job)


def run(job_id: str) -> None:
    """One job's process: its script, its output files; then its verdict."""
    job = load(job_id)
    env = dict(job["env"])
    env.update(
        SLURM_JOB_ID=job["id"].replace("_", ""),
        SLURM_ARRAY_JOB_ID=job["array"],
        SLURM_CPUS_PER_TASK=str(job["cpus"]),
        SLURM_JOB_NAME=job["name"],
        SLURM_SUBMIT_DIR=job["cwd"],
        SLURM_CLUSTER_NAME="fake",
    )
    if job.get("restarts"):
        env["SLURM_RESTART_COUNT"] = str(job["restarts"])
    if job["task"] is not None:
        env["SLURM_ARRAY_TASK_ID"] = str(job["task"])
    with open(job["output"], "ab") as out, open(job["error"], "ab") as err:
        child = subprocess.Popen(
            ["/bin/sh", str(root() / "jobs" / f"{job['array']}.sh")],
            cwd=job["cwd"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, which scancel signals
        )
        with locked():
            job = load(job_id)
            job["pgid"] = child.pid
            cancelled = job["state"] == "CANCELLED"
            save(job)
        if cancelled:  # scancel came between the start and the record of the group
            os.killpg(child.pid, signal.SIGTERM)
        code = child.wait()
    with locked():
        job = load(job_id)
        if job["state"] == "RUNNING":
            job["state"] = "COMPLETED" if code == 0 else "FAILED"
        elif job["state"] == "COMPLETING" and job.get("requeued"):
            job.update(state="PENDING", begin=time.time(), pgid=None, requeued=False)
        job["exit"] = code
        save(job)
        schedule()


# -- commands -----------------------------------------------------------------------------


def _duration(text: str) -> float:
    match = re.fullmatch(r"now(?:\+([0-9]+)(seconds|minutes|hours|hour|days)?)?", text)
    if not match:
        fail(f"Invalid time specification {text!r}")
    amount = int(match[1] or 0)
    unit = {"seconds": 1, None: 1, "minutes": 60, "hour": 3600, "hours": 3600, "days": 86400}
    return time.time() + amount * unit[match[2]]


def sbatch(args: list[str]) -> None:
    options: dict[str, str] = {}
    for arg in args:
        if not arg.startswith("--") or ("=" not in arg and arg != "--parsable"):
            fail(f"the fake sbatch does not understand {arg!r}")
        key, _, value = arg.partition("=")
        options[key] = value
    partition = options.pop("--partition", "debug")
    if partition not in PARTITIONS:
        fail(f"invalid partition specified: {partition}")
    limit = options.pop("--time", None)
    if limit is not None and not re.fullmatch(r"[0-9]+(-[0-9]+)?(:[0-9]+){0,2}", limit):
        fail("Invalid --time specification")
    cpus = int(options.pop("--cpus-per-task", "1"))
    if cpus > cpus_total():
        fail("Requested node configuration is not available")
    begin = _duration(options.pop("--begin", "now"))
    array = options.pop("--array", None)
    name = options.pop("--job-name", "sbatch")
    output = options.pop("--output", "slurm-%j.out")
    error = options.pop("--error", output)
    for known in ("--parsable", "--export", "--mem", "--gres", "--signal"):  # no time-limit signal
        options.pop(known, None)
    if options:
        fail(f"the fake sbatch does not understand {sorted(options)}")
    tasks: list[int | None] = [None]
    if array is not None:
        match = re.fullmatch(r"0-([0-9]+)", array)
        if not match:
            fail(f"the fake sbatch does not understand --array={array}")
        tasks = list(range(int(match[1]) + 1))
    script = sys.stdin.read()
    cwd = os.getcwd()
    with locked():
        counter = root() / "counter"
        number = int(counter.read_text()) if counter.exists() else 1000
        counter.write_text(str(number + 1))
        array_id = str(number)
        (root() / "jobs" / f"{array_id}.sh").write_text(script)
        for task in tasks:
            job_id = array_id if task is None else f"{array_id}_{task}"

            def path(pattern: str, task: int | None = task, job_id: str = job_id) -> str:
                text = pattern.replace("%A", array_id).replace("%j", job_id.replace("_", ""))
                text = text.replace("%a", str(task if task is not None else 0))
                return text if os.path.isabs(text) else os.path.join(cwd, text)

            save(
                {
                    "id": job_id,
                    "array": array_id,
                    "task": task,
                    "name": name,
                    "partition": partition,
                    "cpus": cpus,
                    "begin": begin,
                    "state": "PENDING",
                    "cwd": cwd,
                    "env": dict(os.environ),
                    "output": path(output),
                    "error": path(error),
                    "submitted": time.time(),
                }
            )
        schedule()
    print(array_id)


def squeue(args: list[str]) -> None:
    everything = "--states=all" in args or "-tall" in args
    with locked():
        schedule()
        listed = [job for job in jobs() if everything or job["state"] not in ENDED]
    header = "--noheader" not in args and "-h" not in args
    if header:
        print("JOBID STATE")
    for job in listed:
        print(f"{job['id']} {job['state']}")


def scancel(args: list[str]) -> None:
    ids = [arg for arg in args if not arg.startswith("-")]
    errors = 0
    with locked():
        everything = jobs()
        for wanted in ids:
            hit = [job for job in everything if wanted in (job["id"], job["array"])]
            if not hit:
                print(
                    f"scancel: error: Kill job error on job id {wanted}: Invalid job id specified",
                    file=sys.stderr,
                )
                errors += 1
            for job in hit:
                if job["state"] in ENDED:
                    continue
                pgid = job.get("pgid")
                job["state"] = "CANCELLED"
                save(job)
                if pgid is not None:
                    try:
                        os.killpg(pgid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
        schedule()
    sys.exit(1 if errors else 0)


def scontrol(args: list[str]) -> None:
    if args[:2] == ["show", "config"]:
        print(f"ClusterName             = fake\nSlurmctldHost[0]        = {HOST}")
        return
    if args[:2] == ["show", "job"] and len(args) == 3:
        with locked():
            schedule()
            try:
                job = load(args[2])
            except FileNotFoundError:
                fail("Invalid job id specified", "slurm_load_jobs error")
        print(
            f"JobId={job['id']} JobName={job['name']}\n   JobState={job['state']} "
            f"ExitCode={job.get('exit') or 0}:0"
        )
        return
    if args[:1] == ["requeue"] and len(args) == 2:
        with locked():
            try:
                job = load(args[1])
            except FileNotFoundError:
                fail("Invalid job id specified", "scontrol")
            if job["state"] != "RUNNING" or job.get("pgid") is None:
                fail(
                    f"Requeue of JobId={args[1]} returned an error: Job is pending execution",
                    "scontrol",
                )
            job.update(state="COMPLETING", requeued=True, restarts=job.get("restarts", 0) + 1)
            save(job)
            os.killpg(job["pgid"], signal.SIGTERM)
        return
    fail(f"the fake scontrol does not understand {args}", "scontrol")


def sinfo(args: list[str]) -> None:
    fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "%P %T")
    for partition in PARTITIONS:
        line = fmt.replace("%P", partition).replace("%R", partition).replace("%N", HOST)
        print(line.replace("%T", "idle").replace("%c", str(cpus_total())).replace("%D", "1"))
        if "%P" not in fmt and "%R" not in fmt:
            break


COMMANDS = {
    "sbatch": sbatch,
    "squeue": squeue,
    "scancel": scancel,
    "scontrol": scontrol,
    "sinfo": sinfo,
}

if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "_run":
        run(rest[0])
    else:
        COMMANDS[command](rest)
