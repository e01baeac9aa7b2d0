"""Retries, time limits and interruptions with the local launcher: real job processes,
real SIGTERMs, real files; on asyncio and trio."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import legato
from legato import ExperimentFailed, JobState, LocalLauncher, experiment
from support.cli import cli
from support.retry_tasks import (
    AsyncSleeper,
    Broken,
    Checkpointed,
    Clock,
    Requeuer,
    Sleeper,
    Stubborn,
    attempts_of,
    events,
)
from support.waiting import poll, wait_until

pytestmark = pytest.mark.anyio
TESTS = Path(__file__).parent


def failed_record(job: legato.Job, attempt: int | None = None) -> dict[str, object]:
    path = job.path if attempt is None else job.path / "attempts" / str(attempt)
    return dict(json.loads((path / "failed.json").read_text()))


async def test_a_job_that_checkpoints_needs_two_attempts_and_ends_done(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "ckpt") as xp:
        task = Checkpointed(name="c", steps=10, log=str(log), step_time=0.2)
        await task.submit(timeout=1.5, retries=5)
    job = xp.jobs[0]
    assert job.state is JobState.DONE
    starts = attempts_of(log, "c")
    assert job.attempts == len(starts) >= 2
    assert [s["attempt"] for s in starts] == list(range(1, len(starts) + 1))
    # Every attempt after the first resumed from the checkpoint its predecessor saved.
    interrupted = [e["at"] for e in events(log) if e["event"] == "interrupted"]
    assert set([s["at"] for s in starts[1:]]) <= set(interrupted)
    assert starts[-1]["at"] > 0
    assert (job.path / "checkpoint.txt").read_text() == "10"
    # Each attempt's logs are kept apart; the latest in the job directory.
    first = (job.path / "attempts" / "1" / "stdout.log").read_text()
    assert first.startswith("attempt 1 resumes at step 0\n")
    assert "checkpoint saved" in first
    assert failed_record(job, 1)["kind"] == "timeout"
    last = (job.path / "stdout.log").read_text()
    assert last.startswith(f"attempt {job.attempts} resumes at step {starts[-1]['at']}")
    assert not (job.path / "failed.json").exists()
    state = json.loads((job.path / "state.json").read_text())
    assert state["attempt"] == job.attempts and state["retried"] == job.attempts - 1
    # `legato jobs log --attempt N`
    shown = cli("jobs", "log", job.identifier[:10], "--attempt", "1", workdir=xp.workdir)
    assert shown.returncode == 0 and shown.stdout == first
    shown = cli("jobs", "log", job.identifier[:10], "-a", str(job.attempts), workdir=xp.workdir)
    assert shown.returncode == 0 and shown.stdout == last
    shown = cli("jobs", "log", job.identifier[:10], "-a", "99", workdir=xp.workdir)
    assert shown.returncode != 0 and "has no attempt 99" in shown.stderr


async def test_requeue_runs_the_job_again(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "rq") as xp:
        await Requeuer(name="r", log=str(log), until=3).submit(retries=2)
    job = xp.jobs[0]
    assert job.state is JobState.DONE and job.attempts == 3
    assert [s["attempt"] for s in attempts_of(log, "r")] == [1, 2, 3]
    assert failed_record(job, 2)["reason"] == "Requeue: not yet at attempt 2"


async def test_out_of_retries_the_job_fails_saying_why_and_after_how_many_attempts(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "out", raise_on_failure=False) as xp:
        await Requeuer(name="r", log=str(log), until=5).submit(retries=1)
        await Sleeper(name="s", log=str(log)).submit(timeout=0.5, retries=2)
    requeuer, sleeper = xp.jobs
    assert requeuer.state is JobState.FAILED and requeuer.attempts == 2
    assert requeuer.failure_reason == "Requeue: not yet at attempt 2, 2 attempts"
    assert sleeper.state is JobState.FAILED and sleeper.attempts == 3
    assert sleeper.failure_reason == "time limit of 0.5 s reached, 3 attempts"
    assert len(attempts_of(log, "s")) == 3
    assert [e["why"] for e in events(log) if e["event"] == "interrupted"] == [
        "terminated by signal 15 (SIGTERM)"
    ] * 3
    record = failed_record(sleeper)
    assert record["state"] == "failed" and record["kind"] == "timeout"
    assert "Interrupted" in record["traceback"]  # type: ignore[operator]
    assert sorted(p.name for p in (sleeper.path / "attempts").iterdir()) == ["1", "2"]
    listed = cli("jobs", "show", sleeper.identifier[:12], workdir=xp.workdir)
    assert "time limit of 0.5 s reached, 3 attempts" in listed.stdout
    assert "attempts    3" in listed.stdout


async def test_an_exception_from_user_code_is_not_retried(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with pytest.raises(ExperimentFailed, match="ValueError: diverged"):
        async with experiment(tmp_path / "wd", "broken") as xp:
            await Broken(name="b", log=str(log)).submit(retries=3, timeout=60)
    assert xp.jobs[0].attempts == 1
    assert xp.jobs[0].failure_reason == "ValueError: diverged"
    assert len(attempts_of(log, "b")) == 1
    assert not (xp.jobs[0].path / "attempts").exists()


async def test_an_async_execute_is_interrupted_at_its_await_and_retried(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "async") as xp:
        await AsyncSleeper(name="a", log=str(log)).submit(timeout=0.5, retries=1)
    job = xp.jobs[0]
    assert job.state is JobState.DONE and job.attempts == 2
    assert [e["event"] for e in events(log)] == ["start", "interrupted", "start"]
    assert events(log)[1]["why"] == "CancelledError"
    assert failed_record(job, 1)["kind"] == "timeout"


async def test_a_job_that_ignores_its_time_limit_is_killed_after_the_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # what it printed stays buffered
    log = tmp_path / "log"
    launcher = LocalLauncher(grace_period=0.5)
    async with experiment(tmp_path / "wd", "stubborn", raise_on_failure=False) as xp:
        await Stubborn(name="x", log=str(log)).submit(timeout=0.5, launcher=launcher)
    job = xp.jobs[0]
    assert job.state is JobState.FAILED
    assert job.failure_reason == (
        "time limit of 0.5 s reached (killed 0.5 s after SIGTERM), 1 attempt"
    )
    assert [e["event"] for e in events(log)] == ["start", "ignored"]
    assert "still running 0.5 s after the SIGTERM" in (job.path / "stderr.log").read_text()
    # its output up to then is in its log, as it would be had it ended by itself
    assert (job.path / "stdout.log").read_text() == "the last words of x\n"


async def test_remaining_time_and_attempt_inside_a_job(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "clock") as xp:
        await Clock(name="limited", log=str(log)).submit(timeout=120)
        await Clock(name="unlimited", log=str(log)).submit()
    clocks = {e["name"]: e for e in events(log) if e["event"] == "clock"}
    limited, unlimited = clocks["limited"], clocks["unlimited"]
    assert 100 < limited["remaining"] <= 120
    assert unlimited["remaining"] is None
    assert limited["attempt"] == unlimited["attempt"] == 1
    assert [job.attempts for job in xp.jobs] == [1, 1]
    # Outside a job: no limit, a first attempt.
    assert legato.remaining_time() is None and legato.attempt() == 1


async def test_bad_retry_arguments_are_refused_at_submit(tmp_path: Path) -> None:
    async with experiment(tmp_path / "wd", "bad") as xp:
        task = Clock(name="c", log=str(tmp_path / "log"))
        for kwargs in ({"retries": -1}, {"retries": 1.5}, {"max_preemptions": True}):
            with pytest.raises(ValueError, match="must be an int >= 0"):
                await task.submit(**kwargs)  # type: ignore[arg-type]
        for timeout in (0, -1, float("inf"), "1h"):
            with pytest.raises(ValueError, match="timeout must be a number of seconds"):
                await task.submit(timeout=timeout)  # type: ignore[arg-type]
    assert xp.jobs == []


async def interrupt(workdir: Path, job: legato.Job, *flags: str) -> str:
    done = await anyio.to_thread.run_sync(
        lambda: cli("jobs", "interrupt", job.identifier[:12], *flags, workdir=workdir)
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_jobs_interrupt_as_a_preemption_does_not_use_up_retries(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "preempt") as xp:
        await Sleeper(name="p", log=str(log), wake_at=3).submit()  # retries=0
        job = xp.jobs[0]
        for attempt in (1, 2):
            await poll(lambda n=attempt: len(attempts_of(log, "p")) == n and job.pid)
            said = await interrupt(xp.workdir, job, "--preempt")
            assert "interrupted (preempted; SIGTERM to pid" in said
    assert job.state is JobState.DONE and job.attempts == 3
    record = failed_record(job, 1)
    assert record["kind"] == "preempted"
    assert record["reason"] == "preempted by `legato jobs interrupt --preempt`"
    state = json.loads((job.path / "state.json").read_text())
    assert (state["preempted"], state["retried"]) == (2, 0)


async def test_jobs_interrupt_as_a_time_limit_uses_up_retries(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "limit", raise_on_failure=False) as xp:
        await Sleeper(name="t", log=str(log), wake_at=3).submit(retries=1)
        job = xp.jobs[0]
        for attempt in (1, 2):
            await poll(lambda n=attempt: len(attempts_of(log, "t")) == n and job.pid)
            await interrupt(xp.workdir, job)
    assert job.state is JobState.FAILED and job.attempts == 2
    assert job.failure_reason == (
        "interrupted as at a time limit by `legato jobs interrupt`, 2 attempts"
    )
    # Not running any more: nothing to interrupt.
    refused = cli("jobs", "interrupt", job.identifier[:12], workdir=xp.workdir)
    assert refused.returncode == 1 and "is not running (failed)" in refused.stderr


async def test_max_preemptions_bounds_a_job_preempted_without_end(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "maxp", raise_on_failure=False) as xp:
        await Sleeper(name="m", log=str(log)).submit(max_preemptions=1)
        job = xp.jobs[0]
        for attempt in (1, 2):
            await poll(lambda n=attempt: len(attempts_of(log, "m")) == n and job.pid)
            await interrupt(xp.workdir, job, "--preempt")
    assert job.state is JobState.FAILED and job.attempts == 2
    assert job.failure_reason == (
        "preempted by `legato jobs interrupt --preempt`; preempted 2 times, more than "
        "max_preemptions=1, 2 attempts"
    )


async def test_a_retried_job_never_runs_twice_at_the_same_time(tmp_path: Path) -> None:
    """Two experiments submit the same job: the one running it keeps its lock between
    attempts, so the other never starts it, and takes its outcome."""
    log = tmp_path / "log"
    workdir = tmp_path / "wd"
    jobs = []

    async def run(name: str) -> None:
        async with experiment(workdir, name) as xp:
            await Requeuer(name="r", log=str(log), until=3).submit(retries=2)
        jobs.append(xp.jobs[0])

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "one")
        tg.start_soon(run, "two")
    assert [job.state for job in jobs] == [JobState.DONE, JobState.DONE]
    starts = [e for e in events(log) if e["event"] in ("start", "end", "requeue")]
    assert [e["attempt"] for e in starts if e["event"] == "start"] == [1, 2, 3]
    # One attempt at a time: each start follows the previous attempt's end.
    kinds = [e["event"] for e in starts]
    assert kinds == ["start", "requeue", "start", "requeue", "start", "end"]


EXPERIMENT = textwrap.dedent(
    """
    import sys
    import anyio
    from legato import experiment
    from support.retry_tasks import KillsItsExperiment

    async def main():
        async with experiment(sys.argv[1], "killed") as xp:
            await KillsItsExperiment(name="k", log=sys.argv[2]).submit(retries=1)
        print("finished", xp.jobs[0].state.name, xp.jobs[0].attempts)

    anyio.run(main)
    """
)


def test_a_retry_is_taken_up_by_the_next_run_when_the_experiment_is_killed_between_attempts(
    tmp_path: Path,
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(EXPERIMENT)
    log, workdir = tmp_path / "log", tmp_path / "wd"
    env = {"PYTHONPATH": f"{TESTS.parent / 'src'}:{TESTS}", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, str(script), str(workdir), str(log)]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == -9, first.stderr  # killed by its own job, mid-retry
    [job_dir] = (workdir / "jobs" / "support.retry_tasks.KillsItsExperiment").iterdir()
    # The job outlives its experiment for as long as it takes to record its end.
    wait_until(lambda: (job_dir / "failed.json").exists(), what="the attempt's record")
    record = json.loads((job_dir / "failed.json").read_text())
    assert (record["state"], record["kind"]) == ("interrupted", "requeue")
    listed = cli("jobs", "ls", "--json", workdir=workdir)
    assert json.loads(listed.stdout)["state"] in ("incomplete", "running")  # never DONE
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["finished", "DONE", "2"]
    assert [s["attempt"] for s in attempts_of(log, "k")] == [1, 2]
    assert json.loads((job_dir / "attempts" / "1" / "failed.json").read_text())["kind"] == (
        "requeue"
    )
