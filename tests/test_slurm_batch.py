"""What SlurmLauncher says to SLURM and how it reads the answers: pure helpers, no cluster
(tests/test_slurm.py runs the launcher against a real one)."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest

from legato import SlurmLauncher
from legato._launchers._slurm_batch import (
    array_script,
    look,
    make_batch,
    parse_job_id,
    parse_squeue,
    sbatch_args,
    sbatch_message,
    vanished,
)


def test_resources_become_sbatch_options() -> None:
    launcher = SlurmLauncher(
        partition="gpu",
        time=datetime.timedelta(hours=26, minutes=3, seconds=1),
        cpus=4,
        mem=2048,
        gpus="a100:2",
        options=("--qos=high", "--account", "lab"),
    )
    assert launcher.args == (
        "--partition=gpu",
        "--time=1-02:03:01",
        "--cpus-per-task=4",
        "--mem=2048M",
        "--gres=gpu:a100:2",
        "--qos=high",
        "--account",
        "lab",
        "--signal=B:TERM@60",
    )
    assert SlurmLauncher(time=90, mem="4G", gpus=1).args == (
        "--time=90",
        "--mem=4G",
        "--gres=gpu:1",
        "--signal=B:TERM@60",
    )
    assert SlurmLauncher(time="2-0", gpus=0).args == ("--time=2-0", "--signal=B:TERM@60")
    assert SlurmLauncher().args == ()
    shown = repr(SlurmLauncher(partition="debug", cpus=2))
    assert shown == "SlurmLauncher(partition='debug', cpus=2)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partition": "a b"}, "partition must be a non-empty string without spaces"),
        ({"time": 0}, r"time \(in minutes\) must be an int >= 1"),
        ({"time": 1.5}, "time must be a SLURM time string"),
        ({"time": datetime.timedelta(0)}, "time must be positive"),
        ({"cpus": 0}, "cpus must be an int >= 1"),
        ({"cpus": True}, "cpus must be an int >= 1"),
        ({"mem": "4 GB"}, "mem must be MiB"),
        ({"gpus": -1}, "gpus must be an int >= 0"),
        ({"options": "--qos=high"}, "options must be a sequence of sbatch arguments"),
        ({"options": ("--array=0-3",)}, r"set by legato itself \(--array\)"),
        ({"options": ("-o", "x")}, r"set by legato itself \(--output\)"),
        ({"options": (3,)}, "options must be strings"),
        ({"poll_interval": 0}, "poll_interval must be a number of seconds > 0"),
        ({"poll_interval": 5, "max_poll_interval": 1}, "max_poll_interval must be >= poll"),
        ({"max_array_size": 0}, "max_array_size must be an int >= 1"),
    ],
)
def test_bad_resources_raise_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlurmLauncher(**kwargs)  # type: ignore[arg-type]


def test_sbatch_args_is_the_launchers_validation() -> None:
    assert sbatch_args(None, None, None, None, None, ()) == []


def test_parse_squeue_lines_and_array_ranges() -> None:
    out = b"12 RUNNING\n13_4 PENDING\n14_[0-2,7%2] PENDING\n\nbad\n15_1 COMPLETING\n"
    assert parse_squeue(out) == {
        "12": "RUNNING",
        "13_4": "PENDING",
        "14_0": "PENDING",
        "14_1": "PENDING",
        "14_2": "PENDING",
        "14_7": "PENDING",
        "15_1": "COMPLETING",
    }


def test_parse_job_id_and_sbatch_message() -> None:
    assert parse_job_id(b"4242\n") == "4242"
    assert parse_job_id(b"4242;cluster\n") == "4242"
    assert parse_job_id(b"Submitted batch job 4242\n") is None
    assert parse_job_id(b"") is None
    stderr = (
        b"sbatch: error: invalid partition specified: nope\n"
        b"sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    assert sbatch_message(stderr, 1) == (
        "invalid partition specified: nope; "
        "Batch job submission failed: Invalid partition name specified"
    )
    assert sbatch_message(b"", 255) == "sbatch exited with status 255 and no message"


def test_vanished_reason_names_the_last_state_and_slurm_err() -> None:
    assert vanished(None, "") == "vanished from the SLURM queue without a verdict"
    assert vanished("RUNNING", "slurmstepd: error: *** JOB 7 CANCELLED ***") == (
        "vanished from the SLURM queue without a verdict (last seen RUNNING; "
        "slurm.err: slurmstepd: error: *** JOB 7 CANCELLED ***)"
    )


def test_array_script_runs_the_job_directory_of_its_task(tmp_path: Path) -> None:
    dirs = [tmp_path / "jobs" / "m.T" / name for name in ("a b", "c'd")]
    for directory in dirs:
        directory.mkdir(parents=True)
    batch = make_batch(tmp_path, dirs)
    assert batch.parent == tmp_path / "slurm"
    assert (batch / "1").resolve() == dirs[1]
    script = array_script(["echo", "worker"], batch)
    for index, directory in enumerate(dirs):
        done = subprocess.run(
            ["sh", "-c", script],
            env={"SLURM_ARRAY_TASK_ID": str(index), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout == f"worker {directory}\n"


def test_slurms_reason_is_added_to_a_failure_record(tmp_path: Path) -> None:
    """A job ended by SLURM (time limit) records the SIGTERM it caught; slurm.err says why."""
    timed_out, cancelled, vanished_job, done = (tmp_path / name for name in ("t", "c", "v", "d"))
    line = (
        "slurmstepd-vm: error: *** JOB 788 ON vm CANCELLED AT 2026-11-25T11:59:46 "
        "DUE TO TIME LIMIT ***"
    )
    for job_dir in (timed_out, cancelled, vanished_job, done):
        job_dir.mkdir()
        (job_dir / "slurm.err").write_text(f"some output\n{line}\n")
    sigterm = "Terminated: terminated by signal 15 (SIGTERM)"
    (timed_out / "failed.json").write_text(json.dumps({"state": "failed", "reason": sigterm}))
    (cancelled / "failed.json").write_text(json.dumps({"state": "cancelled", "reason": "x"}))
    (done / "done").write_text("{}")
    found, reports = look([timed_out, cancelled, vanished_job, done], [timed_out])
    assert [(d, f) for d, f, _ in found] == [
        (False, True),
        (False, True),
        (False, False),
        (True, False),
    ]
    assert found[2][2] == line and found[3][2] == ""
    reason = json.loads((timed_out / "failed.json").read_text())["reason"]
    assert reason == f"{sigterm}; SLURM: {line.split(': error: ', 1)[1]}"
    assert json.loads((cancelled / "failed.json").read_text())["reason"] == "x"
    look([timed_out], [])  # a second look adds nothing
    assert json.loads((timed_out / "failed.json").read_text())["reason"] == reason
    assert reports == [None]
