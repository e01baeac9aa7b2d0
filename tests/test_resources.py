"""max_jobs, counted resources and GPU device indices."""

from __future__ import annotations

from pathlib import Path

import pytest

import legato
from legato import JobState, experiment
from support.warm_support import job_processes  # noqa: F401 - every test, warm and fresh
from support.xp_tasks import Step, events

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_blocking")]


def intervals(log: Path) -> dict[str, tuple[float, float, str | None]]:
    start = {e["name"]: e for e in events(log) if e["event"] == "start"}
    return {
        e["name"]: (start[e["name"]]["time"], e["time"], start[e["name"]]["cuda"])
        for e in events(log)
        if e["event"] == "end"
    }


def overlapping(spans: list[tuple[float, float, str | None]]) -> list[tuple[int, int]]:
    return [
        (i, j)
        for i, a in enumerate(spans)
        for j, b in enumerate(spans)
        if i < j and a[0] < b[1] and b[0] < a[1]
    ]


async def test_max_jobs_bounds_running_jobs(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp", max_jobs=1):
        for i in range(4):
            await Step(name=str(i), log=str(tmp_path / "log")).submit()
    spans = list(intervals(tmp_path / "log").values())
    assert len(spans) == 4
    assert overlapping(spans) == []


async def test_gpu_indices_are_never_shared(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp", max_jobs=4, resources={"gpu": 2}):
        for i in range(6):
            await Step(name=str(i), log=str(tmp_path / "log")).submit(requires={"gpu": 1})
        await Step(name="cpu", log=str(tmp_path / "log")).submit()
    spans = intervals(tmp_path / "log")
    assert spans.pop("cpu")[2] == ""  # declared GPUs are hidden from jobs that hold none
    assert {cuda for _, _, cuda in spans.values()} <= {"0", "1"}
    gpu_spans = list(spans.values())
    for i, j in overlapping(gpu_spans):
        assert gpu_spans[i][2] != gpu_spans[j][2]


async def test_two_gpus_for_one_job(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp", resources={"gpu": 3}):
        await Step(name="two", log=str(tmp_path / "log")).submit(requires={"gpu": 2})
    assert intervals(tmp_path / "log")["two"][2] == "0,1"


async def test_counted_resources_bound_concurrency(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp", max_jobs=4, resources={"licence": 1}):
        for i in range(3):
            await Step(name=str(i), log=str(tmp_path / "log")).submit(requires={"licence": 1})
    spans = list(intervals(tmp_path / "log").values())
    assert len(spans) == 3 and overlapping(spans) == []


async def test_impossible_requirements_fail_at_submit(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp", resources={"gpu": 1}) as xp:
        step = Step(name="x", log="unused")
        with pytest.raises(legato.ResourceError, match="only 1"):
            await step.submit(requires={"gpu": 2})
        with pytest.raises(legato.ResourceError, match="no such resource"):
            await step.submit(requires={"tpu": 1})
        with pytest.raises(legato.ResourceError, match="non-negative"):
            await step.submit(requires={"gpu": -1})
    assert xp.jobs == []


async def test_bad_resource_declarations(tmp_path: Path) -> None:
    with pytest.raises(legato.ResourceError):
        async with experiment(tmp_path, "xp", resources={"gpu": -2}):
            pass
    with pytest.raises(legato.ResourceError):
        async with experiment(tmp_path, "xp", max_jobs=True):  # type: ignore[arg-type]
            pass


async def test_dependents_of_a_done_job_run(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "xp", max_jobs=1) as xp:
        a = await Step(name="a", log=log).submit()
        await Step(name="b", log=log, inputs=[a]).submit()
    assert [j.state for j in xp.jobs] == [JobState.DONE, JobState.DONE]
