"""An experiment that stays open for weeks (a web service): failed, cancelled and
dependency-failed jobs run again when resubmitted, a removed job runs again, and finished
jobs do not make the process's memory grow."""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
from pathlib import Path

import anyio
import pytest

from legato import ExperimentFailed, JobState, experiment
from support.cli import cli
from support.runtime_tasks import Fickle
from support.waiting import poll
from support.xp_tasks import Step, events

pytestmark = pytest.mark.anyio


async def test_a_failed_job_runs_again_when_resubmitted(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "web", raise_on_failure=False) as xp:
        first = Fickle(name="a", log=log, fail=True)
        await xp.submit(first)
        await poll(lambda: first.__job__.state.final)
        assert first.__job__.state is JobState.FAILED
        again = Fickle(name="a", log=log)  # same identifier: `fail` is a Meta field
        await xp.submit(again)
        assert again.__job__ is not first.__job__
        await poll(lambda: again.__job__.state.final)
        assert again.__job__.state is JobState.DONE
        assert xp.jobs == [again.__job__]
    assert [e["name"] for e in events(tmp_path / "log")] == ["a", "a"]


async def test_a_dependency_failed_job_runs_again_with_its_dependency(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "web", raise_on_failure=False) as xp:
        up = await xp.submit(Fickle(name="up", log=log, fail=True))
        down = Fickle(name="down", log=log, inputs=[up])
        await xp.submit(down)
        await poll(lambda: down.__job__.state.final)
        assert down.__job__.state is JobState.DEPENDENCY_FAILED
        # Resubmitted as a service would: new objects, the dependency first.
        up2 = await xp.submit(Fickle(name="up", log=log))
        down2 = Fickle(name="down", log=log, inputs=[up2])
        await xp.submit(down2)
        await poll(lambda: down2.__job__.state.final)
        assert down2.__job__.state is JobState.DONE
        # A dependent that holds the old, failed submission waits for the new one.
        down3 = Fickle(name="down3", log=log, inputs=[up])
        await xp.submit(down3)
        await poll(lambda: down3.__job__.state.final)
        assert down3.__job__.state is JobState.DONE
    assert [e["name"] for e in events(tmp_path / "log")] == ["up", "up", "down", "down3"]


async def test_a_cancelled_job_runs_again_when_resubmitted(tmp_path: Path) -> None:
    log, gate = str(tmp_path / "log"), tmp_path / "gate"
    async with experiment(tmp_path, "web", raise_on_failure=False) as xp:
        first = Fickle(name="a", log=log, gate=str(gate))
        await xp.submit(first)
        await poll(lambda: len(events(tmp_path / "log")) == 1)
        killed = await anyio.to_thread.run_sync(
            lambda: cli("jobs", "kill", first.__job__.identifier, workdir=tmp_path)
        )
        assert killed.returncode == 0, killed.stderr
        await poll(lambda: first.__job__.state.final)
        assert first.__job__.state is JobState.CANCELLED
        assert first.__job__.failure_reason == "cancelled by `legato jobs kill`"
        gate.touch()
        again = Fickle(name="a", log=log, gate=str(gate))
        await xp.submit(again)
        await poll(lambda: again.__job__.state.final)
        assert again.__job__.state is JobState.DONE, again.__job__.failure_reason
    assert len(events(tmp_path / "log")) == 2


async def test_a_removed_job_runs_again_when_resubmitted(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "web") as xp:
        first = Step(name="a", log=log)
        await xp.submit(first)
        await poll(lambda: first.__job__.state.final)
        assert first.__job__.state is JobState.DONE
        same = Step(name="a", log=log)
        await xp.submit(same)
        assert same.__job__ is first.__job__  # still on disk: the same job, DONE
        removed = await anyio.to_thread.run_sync(
            lambda: cli("jobs", "rm", first.__job__.identifier, workdir=tmp_path)
        )
        assert removed.returncode == 0, removed.stderr
        assert not first.__job__.path.exists()
        again = Step(name="a", log=log)
        await xp.submit(again)
        await poll(lambda: again.__job__.state.final)
        assert again.__job__.state is JobState.DONE
        assert again.output.read_text() == "a"  # there again, not a FileNotFoundError
    assert [e["event"] for e in events(tmp_path / "log")] == ["start", "end"] * 2


async def test_the_cancel_of_an_earlier_run_does_not_cancel_a_resubmission(
    tmp_path: Path,
) -> None:
    """`legato jobs kill` leaves a `cancel` marker; a job submitted after it runs."""
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "web") as xp:
        step = Step(name="a", log=log)
        path = tmp_path / "jobs" / "support.xp_tasks.Step" / step.__identifier__
        path.mkdir(parents=True)
        (path / "cancel").write_text(json.dumps({"time": 0}))
        await xp.submit(step)
    assert step.__job__.state is JobState.DONE


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # one backend is enough
async def test_memory_stays_bounded_over_100000_submissions(tmp_path: Path) -> None:
    """A service open for weeks: 100,000 submissions, four rounds over 25,000 distinct
    tasks already DONE on disk (what earlier runs left). `xp.jobs` keeps the latest
    `keep_finished` jobs, a job dropped from memory is found on disk again when submitted
    again, and the memory the experiment holds stops growing: traced over the second half
    of the first round, it grows by noise, where 12,500 more jobs kept would be >10 MB."""
    distinct, rounds, keep = 25_000, 4, 1_000
    tasks_dir = tmp_path / "jobs" / "support.xp_tasks.Step"
    names = [str(i) for i in range(distinct)]

    def done_on_disk() -> None:
        tasks_dir.mkdir(parents=True)
        for name in names:
            path = tasks_dir / Step(name=name, log="").__identifier__
            os.mkdir(path)
            os.close(os.open(path / "done", os.O_CREAT | os.O_WRONLY))

    await anyio.to_thread.run_sync(done_on_disk)
    growth = None
    try:
        async with experiment(tmp_path, "web", keep_finished=keep) as xp:
            for round in range(rounds):
                for i, name in enumerate(names):
                    await xp.submit(Step(name=name, log=""))
                    if round == 0 and i in (distinct // 2 - 1, distinct - 1):
                        await xp.wait()
                        gc.collect()  # a job and its task refer to each other: a cycle
                        if tracemalloc.is_tracing():
                            growth = tracemalloc.get_traced_memory()[0]
                            tracemalloc.stop()
                        else:
                            tracemalloc.start()
                await xp.wait()
                assert len(xp.jobs) == keep
    finally:
        tracemalloc.stop()
    # A submission finds the job in memory, DONE, only when fewer than `keep` jobs ended
    # since its previous submission (the checks of the disk lag behind the submissions):
    # at most `keep` of them at each new round. Every other one is a new job, found DONE.
    done = xp.counts()["done"]
    assert distinct * rounds - keep * (rounds - 1) <= done <= distinct * rounds
    assert [job.state for job in xp.jobs] == [JobState.DONE] * keep
    assert growth is not None and growth < 4 * 2**20, growth


async def test_failures_beyond_the_window_are_counted(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    with pytest.raises(ExperimentFailed) as info:
        async with experiment(tmp_path, "web", keep_finished=1) as xp:
            for name in ("a", "b", "c"):
                task = Fickle(name=name, log=log, fail=True)
                await xp.submit(task)
                await xp.wait()
    assert len(info.value.failed) == 1
    assert "3 job(s) failed" in str(info.value) and "2 more" in str(info.value)
    assert len(xp.jobs) == 1 and xp.counts()["failed"] == 3


async def test_keep_finished_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep_finished"):
        async with experiment(tmp_path, "x", keep_finished=-1):
            pass
