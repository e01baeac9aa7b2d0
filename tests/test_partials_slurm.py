"""Main task directories under SlurmLauncher, on a real SLURM cluster (scripts/slurm-cluster.sh
start): jobs that share one run one after another, and the next is submitted only when the
previous has ended, so none waits in the cluster holding a slot.

Skipped when no cluster answers, unless LEGATO_REQUIRE_SLURM=1 (CI), which fails them.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import anyio
import pytest

from legato import JobState, SlurmLauncher, experiment
from support import waiting
from support.partials_tasks import Epochs, one_after_another, runs, script_running
from support.slurm import REQUIRE, SlurmCalls, cluster_problem
from support.xp_tasks import events

pytestmark = [pytest.mark.slurm, pytest.mark.anyio]


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlurmCalls:
    problem = cluster_problem()
    if problem is not None:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but the SLURM cluster is not reachable: {problem}")
        pytest.skip(f"no SLURM cluster reachable: {problem}")
    wrappers = SlurmCalls(tmp_path / "bin")
    monkeypatch.setenv("PATH", wrappers.path)
    return wrappers


def fast() -> SlurmLauncher:
    return SlurmLauncher(poll_interval=0.2, max_poll_interval=1.0)


poll = functools.partial(waiting.poll, timeout=120.0)
"""A job through SLURM takes longer to start than a local one."""


def end_times(log: Path) -> list[float]:
    return [e["time"] for e in events(log) if e["event"] == "end"]


async def test_jobs_of_one_main_directory_are_submitted_one_after_another(
    tmp_path: Path, calls: SlurmCalls
) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "epochs", launcher=fast()) as xp:
        for epochs in (10, 20, 50):
            await Epochs(lr=0.1, epochs=epochs, log=str(log)).submit()
    assert [job.state for job in xp.jobs] == [JobState.DONE] * 3
    assert one_after_another(log, 0.1) == [10, 20, 50]
    assert [e["resumed"] for e in events(log) if e["event"] == "start"] == [0, 10, 20]
    # Each went to SLURM once the one before it had ended: none sat in the queue waiting.
    submitted = [when for when, _ in calls.calls("sbatch")]
    assert len(submitted) == 3
    ended = end_times(log)
    assert submitted[1] > ended[0] and submitted[2] > ended[1]
    for job in xp.jobs:
        assert json.loads((job.path / "state.json").read_text())["launcher"] == "slurm"


async def test_two_processes_take_turns_under_slurm(tmp_path: Path, calls: SlurmCalls) -> None:
    log, gate = tmp_path / "log", tmp_path / "gate"
    with script_running(tmp_path / "wd", "other", log, 0.1, 10, gate, "slurm") as other:
        await poll(lambda: runs(log) == [("start", 10)])
        async with experiment(tmp_path / "wd", "mine", launcher=fast()) as xp:
            mine = Epochs(lr=0.1, epochs=20, log=str(log))
            await mine.submit()
            # While the other process's job runs, this one is not sent to SLURM.
            with anyio.move_on_after(3.0):
                await poll(lambda: calls.count("sbatch") > 1)
            assert calls.count("sbatch") == 1
            assert mine.__job__.state is JobState.READY
            gate.touch()
        out, _ = other.communicate(timeout=120)
    assert out.splitlines()[-1] == "finished DONE"
    assert [job.state for job in xp.jobs] == [JobState.DONE]
    assert one_after_another(log, 0.1) == [10, 20]
    assert [e["resumed"] for e in events(log) if e["event"] == "start"] == [0, 10]
    submitted = [when for when, _ in calls.calls("sbatch")]
    assert len(submitted) == 2 and submitted[1] > end_times(log)[0]
