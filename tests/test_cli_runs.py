"""What the latest run of an experiment submitted: `jobs.txt` keeps runs apart, `legato
jobs ls --experiment` and `legato clean --orphans` read the latest, and `legato
experiments rm` forgets an experiment."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from legato import experiment
from support.cli import assert_one_line_error, cli, jobs_json
from support.runtime_tasks import Fickle

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def sweep(workdir: Path, name: str, members: list[str]) -> None:
    async with experiment(workdir, name):
        for member in members:
            await Fickle(name=member, log=str(workdir / "log")).submit()


def names(workdir: Path, *args: str) -> set[str]:
    return {Path(j["path"]).joinpath("out.txt").read_text() for j in jobs_json(workdir, *args)}


async def test_the_latest_run_is_what_counts(tmp_path: Path) -> None:
    await sweep(tmp_path, "sweep", ["a", "b", "c"])
    await sweep(tmp_path, "sweep", ["a", "b"])  # c dropped from the sweep
    await sweep(tmp_path, "sweep", ["a", "b"])
    await sweep(tmp_path, "sweep", ["a", "b"])
    lines = (tmp_path / "experiments" / "sweep" / "jobs.txt").read_text().splitlines()
    assert sum(line.startswith("# run ") for line in lines) == 3  # the latest three runs
    assert len(lines) == 3 + 3 * 2
    assert names(tmp_path, "--experiment", "sweep") == {"a", "b"}
    dry = cli("clean", "--orphans", "-n", workdir=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would remove") == 1
    done = cli("clean", "--orphans", workdir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert names(tmp_path) == {"a", "b"}


async def test_a_jobs_txt_of_an_older_legato_is_one_run(tmp_path: Path) -> None:
    await sweep(tmp_path, "old", ["a", "b"])
    jobs_txt = tmp_path / "experiments" / "old" / "jobs.txt"
    lines = [line for line in jobs_txt.read_text().splitlines() if not line.startswith("#")]
    jobs_txt.write_text("".join(line + "\n" for line in lines * 2))  # two runs, no header
    assert names(tmp_path, "--experiment", "old") == {"a", "b"}
    await sweep(tmp_path, "old", ["a"])
    assert names(tmp_path, "--experiment", "old") == {"a"}
    text = jobs_txt.read_text()
    assert text.count("# run ") == 1 and text.count("\n") == 4 + 1 + 1  # old lines kept


async def test_experiments_rm(tmp_path: Path) -> None:
    await sweep(tmp_path, "one", ["a", "b"])
    await sweep(tmp_path, "two", ["b", "c"])
    line = assert_one_line_error(cli("experiments", "rm", "nope", workdir=tmp_path), 2)
    assert "no experiment named 'nope'" in line
    dry = cli("experiments", "rm", "one", "-n", workdir=tmp_path)
    assert dry.returncode == 0 and "would remove experiment one" in dry.stdout
    assert (tmp_path / "experiments" / "one").is_dir()
    done = cli("experiments", "rm", "one", workdir=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "experiments" / "one").exists()
    assert "clean --orphans" in done.stdout
    listed = cli("experiments", "ls", workdir=tmp_path).stdout
    assert "two" in listed and "one" not in listed.replace("done", "")
    cleaned = cli("clean", "--orphans", workdir=tmp_path)
    assert cleaned.returncode == 0, cleaned.stderr
    assert names(tmp_path) == {"b", "c"}  # a was only one's


async def test_experiments_rm_refuses_a_running_experiment(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with experiment(tmp_path, "live"):
        await Fickle(name="a", log=str(tmp_path / "log"), gate=str(gate)).submit()
        refused = await anyio.to_thread.run_sync(
            lambda: cli("experiments", "rm", "live", workdir=tmp_path)
        )
        gate.touch()
    line = assert_one_line_error(refused, 1)
    assert "is running" in line
    assert (tmp_path / "experiments" / "live").is_dir()
