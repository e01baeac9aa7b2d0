"""Sub-parameters and main task directories: the path, where it is known, and the rule that
jobs sharing one never run at the same time and start in submission order (in one
experiment, several, several processes), with real job processes on asyncio and trio."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

import legato
from legato import JobState, experiment
from support.cli import cli
from support.partials_tasks import Epochs, Plain, one_after_another, runs, script_running
from support.waiting import poll
from support.xp_tasks import Step, events

pytestmark = pytest.mark.anyio


async def no_start_within(log: Path, seconds: float, already: int) -> None:
    """Give a wrong start of an `Epochs` job `seconds` to show (on a loaded machine, a new
    job's process takes a while), and fail if it does."""
    with anyio.move_on_after(seconds):
        await poll(lambda: len(started(log)) > already)
    assert len(started(log)) == already, started(log)


def started(log: Path, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in events(log)
        if e["event"] == "start" and "epochs" in e and all(e.get(k) == v for k, v in match.items())
    ]


async def test_main_task_directory_everywhere(tmp_path: Path) -> None:
    log = tmp_path / "log"
    workdir = tmp_path / "wd"
    async with experiment(workdir, "xp") as xp:
        ten = Epochs(lr=0.1, epochs=10, log=str(log))
        fifty = Epochs(lr=0.1, epochs=50, log=str(log))
        other = Epochs(lr=0.2, epochs=10, log=str(log))
        plain = Plain(x=1, log=str(log))
        for task in (ten, fifty, other, plain):
            await task.submit()
        main = ten.__maintaskdir__  # known at submission
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    assert main.parent == workdir / "partials" / "support.partials_tasks.Epochs"
    assert len(main.name) == 64 and main.name != ten.__identifier__
    assert fifty.__maintaskdir__ == main and fifty.__job__.main_path == main
    assert other.__maintaskdir__ != main and other.__maintaskdir__.parent == main.parent
    assert ten.__job__.path != fifty.__job__.path  # two jobs, one main directory
    # Without sub-parameters: the job directory itself.
    assert plain.__maintaskdir__ == plain.__job__.path == plain.__job__.main_path
    # Inside the job, and from legato.load().
    seen = {(e["lr"], e["epochs"]): e for e in started(log)}
    assert seen[0.1, 10]["main"] == seen[0.1, 50]["main"] == str(main)
    assert seen[0.1, 10]["cwd"] == str(ten.__job__.path)
    assert seen[0.2, 10]["main"] == str(other.__maintaskdir__)
    assert [e["main"] for e in events(log) if e["event"] == "plain"] == [str(plain.__job__.path)]
    assert legato.load(fifty.__job__.path).__maintaskdir__ == main
    assert legato.load(plain.__job__.path).__maintaskdir__ == plain.__job__.path
    # The 50-epoch job resumed where the 10-epoch one ended.
    assert seen[0.1, 50]["resumed"] == 10 and seen[0.1, 10]["resumed"] == 0
    assert json.loads((main / "checkpoint.json").read_text()) == {"epoch": 50}


async def test_maintaskdir_before_submission_and_after_a_move(tmp_path: Path) -> None:
    with pytest.raises(AttributeError, match="no job directory"):
        Epochs(lr=0.1, epochs=1).__maintaskdir__
    async with experiment(tmp_path / "wd", "xp"):
        task = Epochs(lr=0.1, epochs=1)
        await task.submit()
    main = task.__maintaskdir__
    os.rename(tmp_path / "wd", tmp_path / "moved")
    job_dir = tmp_path / "moved" / task.__job__.path.relative_to(tmp_path / "wd")
    loaded = legato.load(job_dir)
    assert loaded.__maintaskdir__ == tmp_path / "moved" / main.relative_to(tmp_path / "wd")


async def test_jobs_of_one_main_directory_run_one_at_a_time_in_submission_order(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path, "xp", max_jobs=4) as xp:
        for epochs in (30, 10, 20, 40):  # submission order, not sorted
            await Epochs(lr=0.1, epochs=epochs, log=str(log)).submit()
            await Epochs(lr=0.2, epochs=epochs, log=str(log)).submit()
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    assert one_after_another(log, 0.1) == [30, 10, 20, 40]
    assert one_after_another(log, 0.2) == [30, 10, 20, 40]
    resumed = [e["resumed"] for e in started(log, lr=0.1)]
    assert resumed == [0, 30, 10, 20]


async def test_a_waiting_job_holds_no_slot(tmp_path: Path) -> None:
    """With two slots: the first job of a main directory runs, the second waits for it
    without a slot, so an unrelated job runs meanwhile (else none could: it never ends)."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    async with experiment(tmp_path, "xp", max_jobs=2) as xp:
        await Epochs(lr=0.1, epochs=10, log=str(log), gate=str(gate)).submit()
        second = Epochs(lr=0.1, epochs=20, log=str(log))
        await second.submit()
        unrelated = Step(name="unrelated", log=str(log))
        await unrelated.submit()
        # the unrelated job may end before the first one's process has logged its start
        await poll(lambda: unrelated.__job__.state.final and bool(runs(log)))
        assert unrelated.__job__.state is JobState.DONE
        assert second.__job__.state is JobState.READY
        assert runs(log) == [("start", 10)]
        gate.touch()
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    assert one_after_another(log, 0.1) == [10, 20]


async def test_submission_order_holds_while_the_first_waits_for_a_dependency(
    tmp_path: Path,
) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    async with experiment(tmp_path, "xp", max_jobs=4) as xp:
        step = await Step(name="data", log=str(log), gate=str(gate)).submit()
        first = Epochs(lr=0.1, epochs=10, after=step, log=str(log))
        await first.submit()
        ready = Epochs(lr=0.1, epochs=20, log=str(log))  # nothing to wait for, but second
        await ready.submit()
        await poll(lambda: [e["name"] for e in events(log) if "name" in e] == ["data"])
        await poll(lambda: ready.__job__.state is JobState.READY)
        await no_start_within(log, 2.0, already=0)
        assert runs(log) == []
        gate.touch()
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    assert one_after_another(log, 0.1) == [10, 20]


async def test_a_first_job_that_never_runs_lets_the_next_go(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path, "xp", raise_on_failure=False):
        broken = await Step(name="broken", log=str(log), fail="raise").submit()
        skipped = Epochs(lr=0.1, epochs=10, after=broken, log=str(log))
        await skipped.submit()
        after = Epochs(lr=0.1, epochs=20, log=str(log))
        await after.submit()
    assert skipped.__job__.state is JobState.DEPENDENCY_FAILED
    assert after.__job__.state is JobState.DONE
    assert one_after_another(log, 0.1) == [20]


async def test_a_failed_job_lets_the_next_go(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path, "xp", raise_on_failure=False):
        first = Epochs(lr=0.1, epochs=10, log=str(log), gate="/nonexistent/dir/")
        second = Epochs(lr=0.1, epochs=20, log=str(log))
        await first.submit()
        await second.submit()
        await poll(lambda: bool(started(log, epochs=10)))
        os.kill(started(log, epochs=10)[0]["pid"], signal.SIGKILL)
    assert first.__job__.state is JobState.FAILED
    assert second.__job__.state is JobState.DONE
    assert [e["epochs"] for e in started(log)] == [10, 20]


async def test_two_experiments_in_one_process_take_turns(tmp_path: Path) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    async with experiment(tmp_path, "one") as one, experiment(tmp_path, "two") as two:
        await one.submit(Epochs(lr=0.1, epochs=10, log=str(log), gate=str(gate)))
        await poll(lambda: runs(log) == [("start", 10)])
        waiting = Epochs(lr=0.1, epochs=20, log=str(log))
        await two.submit(waiting)
        unrelated = Step(name="unrelated", log=str(log))
        await two.submit(unrelated)
        await poll(lambda: unrelated.__job__.state.final)
        assert runs(log) == [("start", 10)]
        assert waiting.__job__.state is JobState.READY
        gate.touch()
    assert {job.state for job in (*one.jobs, *two.jobs)} == {JobState.DONE}
    assert one_after_another(log, 0.1) == [10, 20]
    assert started(log, epochs=20)[0]["resumed"] == 10


def start_python(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], text=True)


async def test_two_processes_take_turns(tmp_path: Path) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    with script_running(tmp_path / "wd", "other", log, 0.1, 10, gate) as other:
        await poll(lambda: runs(log) == [("start", 10)])
        async with experiment(tmp_path / "wd", "mine", max_jobs=1) as xp:
            mine = Epochs(lr=0.1, epochs=20, log=str(log))
            await mine.submit()
            # Waiting for the other process, it holds no slot: the one slot runs this.
            unrelated = Step(name="unrelated", log=str(log))
            await unrelated.submit()
            await poll(lambda: unrelated.__job__.state.final)
            assert runs(log) == [("start", 10)]
            assert mine.__job__.state is JobState.READY
            gate.touch()
        out, _ = other.communicate(timeout=60)
    assert out.splitlines()[-1] == "finished DONE"
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    assert one_after_another(log, 0.1) == [10, 20]
    assert started(log, epochs=20)[0]["resumed"] == 10


async def test_a_killed_experiments_job_keeps_the_directory_until_it_ends(tmp_path: Path) -> None:
    """kill -9 of an experiment: its job's process, told to stop, goes on saving its
    checkpoint; another job of that main directory does not start before it is over."""
    log, gate, saved = tmp_path / "log", tmp_path / "gate", tmp_path / "saved"
    script = (
        "import sys, anyio\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from legato import experiment\n"
        "from support.partials_tasks import Epochs\n"
        "async def main():\n"
        f"    async with experiment({str(tmp_path / 'wd')!r}, 'killed'):\n"
        f"        await Epochs(lr=0.1, epochs=10, log={str(log)!r}, gate={str(gate)!r},\n"
        f"                     linger={str(saved)!r}).submit()\n"
        "anyio.run(main)\n"
    )
    killed = start_python("-c", script)
    try:
        await poll(lambda: runs(log) == [("start", 10)])
        killed.kill()
        killed.wait()
        await poll(lambda: [e["event"] for e in events(log)] == ["start", "saving"])
        async with experiment(tmp_path / "wd", "next") as xp:
            after = Epochs(lr=0.1, epochs=20, log=str(log))
            await after.submit()
            await no_start_within(log, 3.0, already=1)
            assert [e["event"] for e in events(log)] == ["start", "saving"]
            saved.touch()
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
    assert [j.state for j in xp.jobs] == [JobState.DONE]
    assert [e["event"] for e in events(log)] == ["start", "saving", "saved", "start", "end"]


async def test_jobs_show_prints_the_main_directory(tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    async with experiment(workdir, "xp"):
        task = Epochs(lr=0.1, epochs=10)
        await task.submit()
        plain = Plain(x=1)
        await plain.submit()
    shown = await anyio.to_thread.run_sync(
        lambda: cli("jobs", "show", task.__identifier__[:12], workdir=workdir)
    )
    assert shown.returncode == 0, shown.stderr
    rows = [line.split(None, 2) for line in shown.stdout.splitlines() if line.startswith("  ")]
    main_rows = [row for row in rows if row[:2] == ["main", "dir"]]
    assert len(main_rows) == 1 and main_rows[0][2].split()[0] == str(task.__maintaskdir__)
    as_json = await anyio.to_thread.run_sync(
        lambda: cli("jobs", "show", "--json", task.__identifier__[:12], workdir=workdir)
    )
    assert json.loads(as_json.stdout)["main_path"] == str(task.__maintaskdir__)
    plain_json = await anyio.to_thread.run_sync(
        lambda: cli("jobs", "show", "--json", plain.__identifier__[:12], workdir=workdir)
    )
    assert json.loads(plain_json.stdout)["main_path"] == str(plain.__job__.path)


async def test_clean_removes_a_main_directory_once_no_job_uses_it(tmp_path: Path) -> None:
    workdir = tmp_path / "wd"
    async with experiment(workdir, "xp", raise_on_failure=False):
        good = Epochs(lr=0.1, epochs=10)
        await good.submit()
        bad = Epochs(lr=0.1, epochs=20, gate="/nonexistent/dir/")
        await bad.submit()
        alone = Epochs(lr=0.3, epochs=10, gate="/nonexistent/dir/")
        await alone.submit()
        await poll(lambda: alone.__job__.state is JobState.RUNNING)
        await poll(lambda: bool(started_pid(alone)))
        os.kill(started_pid(alone), signal.SIGKILL)
        await poll(lambda: bad.__job__.state is JobState.RUNNING)
        await poll(lambda: bool(started_pid(bad)))
        os.kill(started_pid(bad), signal.SIGKILL)
    assert (good.__job__.state, bad.__job__.state, alone.__job__.state) == (
        JobState.DONE,
        JobState.FAILED,
        JobState.FAILED,
    )
    shared, single = good.__maintaskdir__, alone.__maintaskdir__
    assert (shared / "checkpoint.json").exists() and single.is_dir()

    def clean(*args: str) -> subprocess.CompletedProcess[str]:
        return cli("clean", *args, workdir=workdir)

    # Cleaning the failed jobs: `single` has no job left, `shared` keeps the done one.
    dry = await anyio.to_thread.run_sync(clean, "--failed", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    expected = (
        f"would remove partials/support.partials_tasks.Epochs/{single.name[:12]}  no job uses it"
    )
    assert expected in lines
    assert not any(shared.name[:12] in line for line in lines)
    assert shared.is_dir() and single.is_dir()
    done = await anyio.to_thread.run_sync(clean, "--failed", "--yes")
    assert done.returncode == 0, done.stderr
    assert shared.is_dir() and not single.exists()
    assert not bad.__job__.path.exists() and good.__job__.path.exists()
    # The last job that uses it goes: so does the main directory, checkpoints and all.
    (workdir / "experiments" / "xp" / "jobs.txt").write_text("")
    done = await anyio.to_thread.run_sync(clean, "--orphans", "--yes")
    assert done.returncode == 0, done.stderr
    assert not good.__job__.path.exists() and not shared.exists()
    assert not list((workdir / "partials").glob("*/*"))


def started_pid(task: Epochs) -> int | None:
    try:
        info = json.loads((task.__job__.path / "state.json").read_text())
    except (OSError, ValueError):
        return None
    pid = info.get("pid")
    return pid if isinstance(pid, int) else None
