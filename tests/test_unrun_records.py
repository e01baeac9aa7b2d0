"""Every job that ends leaves its reason on disk, those that never ran included, and the
command line says why: DEPENDENCY_FAILED (which dependency), launch failures, jobs an
interrupted experiment never started, `legato jobs kill`, huge exception messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from legato import Exit, ExperimentFailed, JobState, LaunchSpec, experiment
from support.cli import assert_one_line_error, cli, jobs_json
from support.runtime_tasks import Fickle, Shouter
from support.waiting import poll
from support.xp_tasks import events

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def record(path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((path / "failed.json").read_text())
    return value


async def test_a_dependency_failed_job_says_which_dependency(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "xp", raise_on_failure=False):
        up = await Fickle(name="up", log=log, fail=True).submit()
        mid = await Fickle(name="mid", log=log, inputs=[up]).submit()
        down = await Fickle(name="down", log=log, inputs=[mid]).submit()
    assert down.__job__.state is JobState.DEPENDENCY_FAILED
    mid_record, down_record = record(mid.__job__.path), record(down.__job__.path)
    assert mid_record["state"] == down_record["state"] == "dependency_failed"
    assert mid_record["dependency"]["id"] == up.__job__.identifier
    assert mid_record["dependency"]["path"] == str(up.__job__.path)
    assert down_record["dependency"]["id"] == mid.__job__.identifier
    assert down_record["cause"]["id"] == up.__job__.identifier  # the first to fail
    assert "ended DEPENDENCY_FAILED" in down_record["reason"]
    shown = cli("jobs", "show", down.__job__.identifier[:12], workdir=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "dependency_failed" in shown.stdout
    assert f"Fickle/{mid.__job__.identifier}" in shown.stdout
    assert f"Fickle/{up.__job__.identifier}" in shown.stdout  # first failed
    failed = {j["id"] for j in jobs_json(tmp_path, "--state", "failed")}
    assert failed == {up.__job__.identifier, mid.__job__.identifier, down.__job__.identifier}
    skipped = {j["id"] for j in jobs_json(tmp_path, "--state", "dependency_failed")}
    assert skipped == {mid.__job__.identifier, down.__job__.identifier}
    # They run again next time, and the record goes with the new run.
    async with experiment(tmp_path, "xp"):
        up = await Fickle(name="up", log=log).submit()
        mid = await Fickle(name="mid", log=log, inputs=[up]).submit()
    assert not (mid.__job__.path / "failed.json").exists()


class BrokenLauncher:
    """A launcher that cannot start anything (a cluster that is down)."""

    name = "broken"

    async def check(self) -> None:
        return None

    async def launch(self, spec: LaunchSpec) -> Exit:
        raise RuntimeError("the cluster is down today")

    async def adopt(self, spec: LaunchSpec, info: dict[str, Any]) -> Exit | None:
        return None


async def test_a_job_that_could_not_be_launched_says_why(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp", raise_on_failure=False, launcher=BrokenLauncher()):
        task = await Fickle(name="a", log=str(tmp_path / "log")).submit()
    assert task.__job__.state is JobState.FAILED
    saved = record(task.__job__.path)
    assert saved["state"] == "failed" and saved["stage"] == "launch"
    assert "the cluster is down today" in saved["reason"]
    shown = cli("jobs", "show", task.__job__.identifier, workdir=tmp_path)
    assert "the cluster is down today" in shown.stdout
    assert [j["state"] for j in jobs_json(tmp_path, "--state", "failed")] == ["failed"]


async def test_jobs_that_never_started_are_recorded_cancelled(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    with anyio.CancelScope() as scope:
        async with experiment(tmp_path, "xp", max_jobs=1):
            tasks = [
                await Fickle(name=str(i), log=log, gate=str(tmp_path / "never")).submit()
                for i in range(3)
            ]
            await poll(lambda: len(events(tmp_path / "log")) == 1)
            scope.cancel()
    assert [t.__job__.state for t in tasks] == [JobState.CANCELLED] * 3
    for task in tasks:
        assert record(task.__job__.path)["state"] == "cancelled"
    assert "before it started" in record(tasks[2].__job__.path)["reason"]
    states = [j["state"] for j in jobs_json(tmp_path, "--state", "cancelled")]
    assert states == ["cancelled"] * 3


async def test_a_killed_job_reads_cancelled_everywhere(tmp_path: Path) -> None:
    log, gate = str(tmp_path / "log"), str(tmp_path / "never")
    with pytest.raises(ExperimentFailed) as info:
        async with experiment(tmp_path, "xp"):
            task = await Fickle(name="a", log=log, gate=gate).submit()
            await poll(lambda: len(events(tmp_path / "log")) == 1)
            killed = await anyio.to_thread.run_sync(
                lambda: cli("jobs", "kill", "Fickle", workdir=tmp_path)  # by its type name
            )
            assert killed.returncode == 0, killed.stderr
    ((_, _, _, reason),) = info.value.failed
    assert reason == "cancelled by `legato jobs kill`"
    assert "signal 15" not in str(info.value)
    assert task.__job__.state is JobState.CANCELLED
    listed = cli("experiments", "ls", workdir=tmp_path)
    header, row = listed.stdout.splitlines()
    columns = dict(zip(header.split(), row.split(), strict=False))
    assert columns["FAILED"] == "0" and columns["CANCELLED"] == "1", listed.stdout


async def test_jobs_show_by_type_name(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "xp"):
        one = await Fickle(name="one", log=log).submit()
    shown = cli("jobs", "show", "Fickle", workdir=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"support.runtime_tasks.Fickle/{one.__job__.identifier}")
    async with experiment(tmp_path, "xp"):
        await Fickle(name="two", log=log).submit()
    line = assert_one_line_error(cli("jobs", "show", "Fickle", workdir=tmp_path), 2)
    assert "is a type with 2 jobs" in line and "legato jobs ls --name Fickle" in line
    line = assert_one_line_error(cli("jobs", "show", "Nothing", workdir=tmp_path), 2)
    assert "no job matches 'Nothing'" in line


async def test_a_huge_exception_message_is_bounded_but_kept_in_the_log(tmp_path: Path) -> None:
    size = 10 * 2**20
    with pytest.raises(ExperimentFailed) as info:
        async with experiment(tmp_path, "xp"):
            task = await Shouter(size=size).submit()
    assert len(str(info.value)) < 10_000
    path = task.__job__.path
    assert (path / "failed.json").stat().st_size < 100_000
    saved = record(path)
    assert saved["reason"].startswith("ValueError: xxx") and saved["reason"].endswith("x!")
    assert "characters cut: see stderr.log" in saved["reason"]
    assert "x" * (size - 1) + "!" in (path / "stderr.log").read_text()  # the whole text
    shown = cli("jobs", "show", "Shouter", workdir=tmp_path)
    assert shown.returncode == 0 and len(shown.stdout) < 10_000
    dry = cli("clean", "--failed", "-n", workdir=tmp_path)
    assert dry.returncode == 0 and len(dry.stdout) < 1_000, dry.stdout[:1000]
    listed = jobs_json(tmp_path)
    assert len(listed[0]["reason"]) < 3_000
