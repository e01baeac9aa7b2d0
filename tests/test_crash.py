"""Crash paths: kill -9 of the experiment, Ctrl-C, cancellation, corrupt state files,
and a job that never runs twice at the same time."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from legato import JobState, experiment
from support.cli import alive
from support.waiting import lock_is_free, poll, wait_until
from support.warm_support import job_processes  # noqa: F401 - every test, warm and fresh
from support.xp_tasks import Step, events

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_blocking")]
SCRIPT = Path(__file__).parent / "support" / "xp_script.py"


def run_script(tmp_path: Path, quick: int, gated: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            str(tmp_path / "wd"),
            str(tmp_path / "log"),
            str(tmp_path / "gate"),
            str(quick),
            str(gated),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


async def test_cancellation_ends_every_job_process(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    with anyio.CancelScope() as scope:
        async with experiment(tmp_path, "xp", max_jobs=2):
            steps = [Step(name=str(i), log=log, gate=str(tmp_path / "never")) for i in range(3)]
            for step in steps:
                await step.submit()
            await poll(lambda: len(events(tmp_path / "log")) == 2)
            pids = [e["pid"] for e in events(tmp_path / "log")]
            started = {e["name"] for e in events(tmp_path / "log")}
            scope.cancel()
    assert scope.cancelled_caught
    assert [s.__job__.state for s in steps] == [JobState.CANCELLED] * 3
    for pid in pids:
        assert not alive(pid)
    for step in (s for s in steps if s.name in started):
        path = step.__job__.path
        assert lock_is_free(path)
        assert json.loads((path / "failed.json").read_text())["state"] == "cancelled"
        assert not (path / "done").exists()


async def test_exception_in_the_block_cancels_jobs_and_propagates(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    with pytest.raises(KeyError, match="boom"):
        async with experiment(tmp_path, "xp"):
            step = Step(name="s", log=log, gate=str(tmp_path / "never"))
            await step.submit()
            await poll(lambda: len(events(tmp_path / "log")) == 1)
            raise KeyError("boom")
    assert step.__job__.state is JobState.CANCELLED
    assert not alive(events(tmp_path / "log")[0]["pid"])


async def test_a_job_never_runs_twice_at_once_in_one_process(tmp_path: Path) -> None:
    log, gate = str(tmp_path / "log"), tmp_path / "gate"
    async with experiment(tmp_path, "one") as one, experiment(tmp_path, "two") as two:
        first, second = (Step(name="s", log=log, gate=str(gate)) for _ in range(2))
        await one.submit(first)
        await poll(lambda: len(events(tmp_path / "log")) == 1)
        await two.submit(second)
        await poll(lambda: second.__job__.state is JobState.RUNNING)  # waits on the other
        gate.touch()
    assert first.__job__.state is second.__job__.state is JobState.DONE
    assert [e["event"] for e in events(tmp_path / "log")] == ["start", "end"]


async def test_partial_and_corrupt_state_files_are_not_done(tmp_path: Path) -> None:
    step = Step(name="s", log=str(tmp_path / "log"))
    async with experiment(tmp_path, "xp", raise_on_failure=False) as xp:
        path = tmp_path / "jobs" / "support.xp_tasks.Step" / step.__identifier__
        path.mkdir(parents=True)
        (path / ".done.partial").write_text('{"ended":')  # an interrupted atomic write
        (path / "failed.json").write_text("\x00garbage")
        (path / "state.json").write_text("{not json")
        await step.submit()
    assert [j.state for j in xp.jobs] == [JobState.DONE]
    assert [e["event"] for e in events(tmp_path / "log")] == ["start", "end"]


def test_kill_9_of_the_experiment_then_rerun_completes(tmp_path: Path) -> None:
    process = run_script(tmp_path, quick=2, gated=3)
    log = tmp_path / "log"
    # two quick jobs finished and two gated ones are running (max_jobs=2)
    wait_until(
        lambda: (
            sum(e["event"] == "end" for e in events(log)) == 2
            and sum(e["name"].startswith("gated") for e in events(log)) == 2
        )
    )
    running = [e["pid"] for e in events(log) if e["name"].startswith("gated")]
    process.kill()
    process.wait()
    wait_until(lambda: not any(alive(pid) for pid in running), timeout=20)  # they end with it
    jobs = tmp_path / "wd" / "jobs" / "support.xp_tasks.Step"
    assert sum((d / "done").exists() for d in jobs.iterdir()) == 2
    # the interrupted jobs said so on their way out (the worker outlives the first SIGTERM)
    records = [
        json.loads((d / "failed.json").read_text())
        for d in jobs.iterdir()
        if (d / "failed.json").exists()
    ]
    assert len(records) == 2, records
    assert all(r["state"] == "failed" and "SIGTERM" in r["reason"] for r in records), records
    (tmp_path / "gate").touch()
    rerun = run_script(tmp_path, quick=2, gated=3)
    out, _ = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, out
    assert "finished ['DONE', 'DONE', 'DONE', 'DONE', 'DONE']" in out
    ends = [e["name"] for e in events(log) if e["event"] == "end"]
    assert sorted(ends) == ["gated0", "gated1", "gated2", "quick0", "quick1"]
    starts = [e["name"] for e in events(log) if e["event"] == "start"]
    assert starts.count("quick0") == starts.count("quick1") == 1


def test_ctrl_c_cancels_jobs_and_leaves_no_orphan(tmp_path: Path) -> None:
    process = run_script(tmp_path, quick=0, gated=2)
    log = tmp_path / "log"
    wait_until(lambda: len(events(log)) == 2)
    pids = [e["pid"] for e in events(log)]
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode != 0
    for pid in pids:
        assert not alive(pid)
    for d in (tmp_path / "wd" / "jobs" / "support.xp_tasks.Step").iterdir():
        assert json.loads((d / "failed.json").read_text())["state"] == "cancelled"
        assert lock_is_free(d)


def test_two_experiment_processes_run_a_job_once(tmp_path: Path) -> None:
    first = run_script(tmp_path, quick=0, gated=1)
    log = tmp_path / "log"
    wait_until(lambda: len(events(log)) == 1)
    second = run_script(tmp_path, quick=0, gated=1)
    state = tmp_path / "wd" / "experiments" / "crash" / "state.json"
    wait_until(lambda: state.exists() and json.loads(state.read_text())["pid"] == second.pid)
    (tmp_path / "gate").touch()
    for process in (first, second):
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0 and "['DONE']" in out
    assert [e["event"] for e in events(log)] == ["start", "end"]


async def test_a_run_that_fails_elsewhere_is_taken_as_is(tmp_path: Path) -> None:
    log, gate = str(tmp_path / "log"), tmp_path / "gate"
    one_step = Step(name="s", log=log, gate=str(gate), fail="raise")
    two_step = Step(name="s", log=log, gate=str(gate), fail="raise")
    async with (
        experiment(tmp_path, "one", raise_on_failure=False) as one,
        experiment(tmp_path, "two", raise_on_failure=False) as two,
    ):
        await one.submit(one_step)
        await poll(lambda: len(events(tmp_path / "log")) == 1)
        await two.submit(two_step)
        await poll(lambda: two_step.__job__.state is JobState.RUNNING)
        gate.touch()
    assert one_step.__job__.state is two_step.__job__.state is JobState.FAILED
    assert "failed on purpose" in (two_step.__job__.failure_reason or "")
    assert [e["event"] for e in events(tmp_path / "log")] == ["start"]  # not run again
