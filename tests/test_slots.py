"""A job that waits for another process's run holds nothing while it waits: its slot and
its resources go to other jobs at once, and are given back once only (the run context
raises on a second release, which would fail the experiment's block)."""

from __future__ import annotations

from pathlib import Path

import pytest

from legato import JobState, experiment
from support.partials_tasks import Epochs, runs
from support.waiting import poll
from support.xp_tasks import Step, events

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_blocking")]


async def test_a_job_run_by_another_experiment_lends_its_slot_and_gives_it_back_once(
    tmp_path: Path,
) -> None:
    log, gate = str(tmp_path / "log"), tmp_path / "gate"
    busy = Step(name="busy", log=log, gate=str(gate))
    async with (
        experiment(tmp_path, "one") as one,
        experiment(tmp_path, "two", max_jobs=1, resources={"gpu": 1}) as two,
    ):
        await one.submit(Step(name="busy", log=log, gate=str(gate)))
        await poll(lambda: len(events(tmp_path / "log")) == 1)  # it runs for "one"
        await two.submit(busy, requires={"gpu": 1})
        await poll(lambda: busy.__job__.state is JobState.RUNNING)  # waits for that run
        other = Step(name="other", log=log)
        await two.submit(other, requires={"gpu": 1})
        await other.__job__.wait()  # the only slot and GPU, given back by the waiting job
        assert busy.__job__.state is JobState.RUNNING
        gate.touch()
        await busy.__job__.wait()
        after = Step(name="after", log=log)
        await two.submit(after, requires={"gpu": 1})
    assert [job.state for job in two.jobs] == [JobState.DONE] * 3
    assert [e["name"] for e in events(tmp_path / "log") if e["event"] == "start"] == [
        "busy",
        "other",
        "after",
    ]


async def test_a_job_whose_main_directory_is_taken_lends_its_slot_and_gives_it_back_once(
    tmp_path: Path,
) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    async with (
        experiment(tmp_path, "one") as one,
        experiment(tmp_path, "two", max_jobs=1, resources={"gpu": 1}) as two,
    ):
        await one.submit(Epochs(lr=0.1, epochs=10, log=str(log), gate=str(gate)))
        await poll(lambda: runs(log) == [("start", 10)])
        waiting = Epochs(lr=0.1, epochs=20, log=str(log))
        await two.submit(waiting, requires={"gpu": 1})
        other = Step(name="other", log=str(log))
        await two.submit(other, requires={"gpu": 1})
        await other.__job__.wait()  # the only slot and GPU, given back by the waiting job
        assert waiting.__job__.state is JobState.READY
        gate.touch()
    assert {job.state for job in (*one.jobs, *two.jobs)} == {JobState.DONE}
