"""Time limits, requeues and preemptions on a real SLURM cluster (scripts/slurm-cluster.sh
start): SLURM's own SIGTERM at a time limit, `scontrol requeue`, `scancel --signal`.

Skipped when no cluster answers, unless LEGATO_REQUIRE_SLURM=1 (CI), which fails them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import anyio
import pytest

from legato import JobState, SlurmLauncher, experiment
from legato._launchers._slurm_batch import slurm_ending
from support.cli import cli
from support.retry_tasks import Checkpointed, Sleeper, attempts_of, events
from support.slurm import SlurmCalls, fast
from support.slurm import read_state as state
from support.waiting import poll

pytestmark = [pytest.mark.slurm, pytest.mark.anyio]


@pytest.fixture(autouse=True)
def real_cluster_only(cluster: str) -> None:
    """Time limits, their warning signal and requeues are the real SLURM's: the fake of
    support/fake_slurm has none of them."""
    if cluster == "fake":
        pytest.skip("the fake SLURM has no time limits, signals before them, nor requeue")


def squeue_state(slurm_id: str) -> str | None:
    done = subprocess.run(
        ["squeue", "--noheader", "--format=%T", f"--jobs={slurm_id}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


@pytest.mark.slow
async def test_a_job_with_a_one_minute_limit_checkpoints_and_ends_done_in_two_attempts(
    tmp_path: Path, calls: SlurmCalls, anyio_backend: str
) -> None:
    if anyio_backend == "trio":
        pytest.skip("two minutes of SLURM time limit: asyncio is enough (the loop is not used)")
    log = tmp_path / "log"
    launcher = fast(time=1)  # SLURM's smallest limit: one minute
    async with experiment(tmp_path / "wd", "limit", launcher=launcher) as xp:
        # 110 s of work: more than SLURM lets one attempt run (it checks limits every
        # half minute or so), less than two attempts.
        task = Checkpointed(name="c", steps=110, log=str(log), step_time=1.0)
        await task.submit(retries=2)
    job = xp.jobs[0]
    assert job.state is JobState.DONE, job.failure_reason
    starts = attempts_of(log, "c")
    assert job.attempts == len(starts) == 2, events(log)
    assert starts[1]["at"] >= 50  # the second attempt resumed from the first's checkpoint
    first = json.loads((job.path / "attempts" / "1" / "failed.json").read_text())
    assert (first["state"], first["kind"]) == ("interrupted", "timeout")
    assert first["reason"] == "SLURM time limit of 60 s reached"
    assert "checkpoint saved" in (job.path / "attempts" / "1" / "stdout.log").read_text()
    assert "DUE TO TIME LIMIT" in (job.path / "attempts" / "1" / "slurm.err").read_text()
    assert calls.count("sbatch") == 2
    assert "--time=1" in calls.args("sbatch")[0]
    info = state(job.path)
    assert (info["attempt"], info["retried"], info["preempted"]) == (2, 1, 0)


async def test_a_job_requeued_by_slurm_runs_again_without_using_up_retries(
    tmp_path: Path, calls: SlurmCalls
) -> None:
    """`scontrol requeue` stands for a preemption: SLURM restarts the job itself, under the
    same id; the job's worker counts it as a preemption, not against `retries`."""
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "requeue", launcher=fast()) as xp:
        await Sleeper(name="p", log=str(log), wake_at=2).submit()  # retries=0
        job = xp.jobs[0]
        await poll(lambda: attempts_of(log, "p") and "pid" in state(job.path), 120)
        slurm_id = state(job.path)["slurm_id"]
        requeue = await anyio.run_process(["scontrol", "requeue", slurm_id], check=False)
        assert requeue.returncode == 0, requeue.stderr
        # A requeued job may wait two minutes (its BeginTime) before SLURM starts it again.
        await poll(
            lambda: squeue_state(slurm_id) == "PENDING" or len(attempts_of(log, "p")) > 1, 120
        )
        if len(attempts_of(log, "p")) == 1:
            # Not `now`: slurmd refuses a job launched within the second its credential was
            # revoked (at the requeue), and SLURM then ends it for good ("Job credential
            # revoked"), which its BeginTime otherwise prevents.
            update = ["scontrol", "update", f"JobId={slurm_id}", "StartTime=now+2"]
            await anyio.run_process(update, check=False)
        with anyio.fail_after(120):
            await job.wait()
    assert job.state is JobState.DONE and job.attempts == 2
    assert [s["attempt"] for s in attempts_of(log, "p")] == [1, 2]
    assert [e["event"] for e in events(log)] == ["start", "interrupted", "start"]
    info = state(job.path)
    assert info["slurm_id"] == slurm_id and calls.count("sbatch") == 1
    assert (info["attempt"], info["retried"], info["preempted"]) == (2, 0, 1)
    first = json.loads((job.path / "attempts" / "1" / "failed.json").read_text())
    assert (first["state"], first["kind"]) == ("interrupted", "preempted")


async def test_jobs_interrupt_signals_a_slurm_job_that_then_runs_again(
    tmp_path: Path, calls: SlurmCalls
) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "interrupt", launcher=fast()) as xp:
        await Sleeper(name="i", log=str(log), wake_at=3).submit(retries=1)
        job = xp.jobs[0]
        for attempt, flags in ((1, ["--preempt"]), (2, [])):
            await poll(
                lambda n=attempt: (
                    len(attempts_of(log, "i")) == n
                    and state(job.path).get("attempt") == n
                    and "pid" in state(job.path)
                ),
                120,
            )
            argv = ["jobs", "interrupt", job.identifier[:12], *flags]
            done = await anyio.to_thread.run_sync(lambda: cli(*argv, workdir=xp.workdir))
            assert done.returncode == 0, done.stderr
            assert "SIGTERM to SLURM job" in done.stdout
    assert job.state is JobState.DONE and job.attempts == 3
    info = state(job.path)
    assert (info["retried"], info["preempted"]) == (1, 1)
    assert calls.count("sbatch") == 3
    kinds = [
        json.loads((job.path / "attempts" / str(n) / "failed.json").read_text())["kind"]
        for n in (1, 2)
    ]
    assert kinds == ["preempted", "timeout"]


async def test_a_job_scancelled_outside_legato_is_cancelled_not_run_again(
    tmp_path: Path, calls: SlurmCalls
) -> None:
    log = tmp_path / "log"
    workdir = tmp_path / "wd"
    async with experiment(workdir, "scancel", launcher=fast(), raise_on_failure=False) as xp:
        await Sleeper(name="s", log=str(log)).submit(retries=3)
        job = xp.jobs[0]
        await poll(lambda: attempts_of(log, "s") and "pid" in state(job.path), 120)
        await anyio.run_process(["scancel", state(job.path)["slurm_id"]])
    assert job.state is JobState.CANCELLED and job.attempts == 1
    assert job.failure_reason == "cancelled in SLURM (scancel)"
    assert calls.count("sbatch") == 1


def test_a_long_time_limit_asks_slurm_for_a_warning_signal() -> None:
    assert "--signal=B:TERM@60" in SlurmLauncher(time="1:00:00").args
    assert "--signal=B:TERM@300" in SlurmLauncher(time=60, grace_period=300).args
    # Too short for SLURM to signal that early (it may signal up to a minute early).
    assert not any(a.startswith("--signal") for a in SlurmLauncher(time=2).args)
    assert not any(a.startswith("--signal") for a in SlurmLauncher().args)
    mine = SlurmLauncher(time="2:00:00", options=["--signal=USR1@90"])
    assert [a for a in mine.args if a.startswith("--signal")] == ["--signal=USR1@90"]
    assert SlurmLauncher(time="1-2:03:04").worker_env["LEGATO_TIME_LIMIT"] == "93784.0"
    for options in (["--time=1:00:00"], ["--time", "60"], ["-t", "60"], ["-t60"]):
        launcher = SlurmLauncher(options=options)
        assert launcher.worker_env["LEGATO_TIME_LIMIT"] == "3600.0", options
        assert "--signal=B:TERM@60" in launcher.args


def test_slurms_last_words_say_how_it_ended_a_job() -> None:
    line = "slurmstepd-vm: error: *** JOB 603 ON vm CANCELLED AT 2026-12-01T20:45:24{} ***"
    assert slurm_ending(line.format("")) == "cancelled"
    assert slurm_ending(line.format(" DUE TO TIME LIMIT")) == "timeout"
    assert slurm_ending(line.format(" DUE TO JOB REQUEUE")) == "preempted"
    assert slurm_ending(line.format(" DUE TO PREEMPTION")) == "preempted"
    assert slurm_ending(line.format(" DUE TO NODE FAILURE")) == "preempted"
    assert slurm_ending(line.format(" DUE TO SOMETHING NEW")) is None
    assert slurm_ending("Traceback (most recent call last):") is None
