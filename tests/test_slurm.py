"""SlurmLauncher against SLURM: sbatch, squeue and scancel counted through logging wrappers
first on PATH.

Every test runs twice: against the fake SLURM of support/fake_slurm (jobs as local
processes, on every machine), and against the real cluster scripts/slurm-cluster.sh makes
(marked `slurm`). The real ones run only against that cluster, never a production one that
happens to answer: skipped otherwise, unless LEGATO_REQUIRE_SLURM=1 (CI), which fails them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import legato
from legato import ExperimentFailed, JobState, LauncherError, SlurmLauncher, experiment
from support.cli import cli
from support.docs import console_output, titled_blocks
from support.retry_tasks import Sleeper, attempts_of
from support.slurm import SlurmCalls, fast, node_cpus, queued, read_state
from support.waiting import poll, wait_until
from support.xp_tasks import Reporter, Step, events

pytestmark = pytest.mark.anyio
SCRIPT = Path(__file__).parent / "support" / "slurm.py"


WIDE = 1.0
"""The batch window of tests that count arrays: jobs submitted one by one arrive further
apart than the default 0.1 s on a loaded machine, and would go out as several arrays."""


def state(step: Step) -> dict[str, Any]:
    return read_state(step.__job__.path)


def array_size(args: str) -> int:
    """The number of tasks of `sbatch ... --array=0-N ...`, 1 for a single job."""
    for arg in args.split():
        if arg.startswith("--array=0-"):
            return int(arg.removeprefix("--array=0-")) + 1
    return 1


async def test_sweep_of_20_jobs_with_dependencies(tmp_path: Path, calls: SlurmCalls) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path / "wd", "sweep", launcher=fast(batch_window=WIDE)) as xp:
        a = [await Step(name=f"a{i}", log=log).submit() for i in range(10)]
        pairs = [a[2 * i : 2 * i + 2] for i in range(5)]
        b = [
            await Step(name=f"b{i}", log=log, inputs=pair).submit() for i, pair in enumerate(pairs)
        ]
        c = [await Step(name=f"c{i}", log=log, inputs=b[i : i + 2]).submit() for i in range(4)]
        await Step(name="d", log=log, inputs=c).submit()
    assert len(xp.jobs) == 20
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    # A job started only after every job it depends on ended (the log's line order).
    lines = [(e["event"], e["name"]) for e in events(tmp_path / "log")]
    for step in (*b, *c):
        start = lines.index(("start", step.name))
        assert all(lines.index(("end", dep.name)) < start for dep in step.inputs)
    for step in a:
        info = state(step)
        assert info["launcher"] == "slurm" and info["host"] and info["pid"]
        assert (step.__job__.path / "stdout.log").read_text() == f"hello from {step.name}\n"
        assert (step.__job__.path / "slurm.err").exists()
    # The ten independent jobs went out as one array; every level in few sbatch calls.
    assert len({state(step)["slurm_id"].split("_")[0] for step in a}) == 1
    assert array_size(calls.args("sbatch")[0]) == 10
    assert sum(array_size(args) for args in calls.args("sbatch")) == 20
    assert calls.count("sbatch") <= 8
    assert not list((tmp_path / "wd" / "slurm").iterdir())  # array directories removed


async def test_jobs_ready_together_go_out_as_one_array_per_set_of_resources(
    tmp_path: Path, calls: SlurmCalls
) -> None:
    log = str(tmp_path / "log")
    debug = fast(partition="debug", time=5, batch_window=WIDE)
    other = fast(partition="other", time=5, batch_window=WIDE)
    async with experiment(tmp_path / "wd", "arrays", launcher=debug) as xp:
        for i in range(12):
            await Step(name=f"d{i}", log=log).submit()
        for i in range(6):
            await Step(name=f"o{i}", log=log).submit(launcher=other)
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    sbatch = sorted(calls.args("sbatch"))
    assert len(sbatch) == 2, sbatch
    assert "--array=0-11" in sbatch[0] and "--partition=debug" in sbatch[0]
    assert "--array=0-5" in sbatch[1] and "--partition=other" in sbatch[1]
    assert all("--time=5" in args for args in sbatch)
    ids = [json.loads((job.path / "state.json").read_text())["slurm_id"] for job in xp.jobs]
    array = ids[0].split("_")[0]
    assert sorted(ids[:12]) == sorted(f"{array}_{i}" for i in range(12))
    # Both launchers' jobs were followed by one squeue call per poll, without job lists.
    assert calls.count("squeue") >= 1
    assert all(str(array) not in args for args in calls.args("squeue"))


async def test_failing_jobs(tmp_path: Path, calls: SlurmCalls) -> None:
    log = str(tmp_path / "log")
    with pytest.raises(ExperimentFailed) as caught:
        async with experiment(tmp_path / "wd", "failing", launcher=fast()) as xp:
            raising = await Step(name="raises", log=log, fail="raise").submit()
            killed = await Step(name="killed", log=log, fail="kill").submit()
            fine = await Step(name="fine", log=log).submit()
    assert fine.__job__.state is JobState.DONE
    assert raising.__job__.state is JobState.FAILED
    assert raising.__job__.failure_reason == "ValueError: step raises failed on purpose"
    assert "ValueError" in (raising.__job__.path / "stderr.log").read_text()
    # SIGKILL leaves no verdict: the job is out of the queue without one.
    assert killed.__job__.state is JobState.FAILED
    reason = killed.__job__.failure_reason or ""
    assert reason.startswith("vanished from the SLURM queue without a verdict"), reason
    assert "last seen FAILED" in reason, reason  # (squeue --states=all: how it ended)
    record = json.loads((killed.__job__.path / "failed.json").read_text())
    assert record["reason"] == reason
    assert len(caught.value.failed) == 2
    assert len(xp.jobs) == 3


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"partition": "nope"}, "invalid partition specified: nope"),
        ({"time": "bogus"}, "Invalid --time specification"),
    ],
)
async def test_sbatch_rejection_fails_the_job_with_its_message(
    tmp_path: Path, calls: SlurmCalls, resources: dict[str, Any], message: str
) -> None:
    log = str(tmp_path / "log")
    async with experiment(
        tmp_path / "wd",
        "rejected",
        launcher=fast(batch_window=WIDE, **resources),
        raise_on_failure=False,
    ) as xp:
        steps = [await Step(name=f"s{i}", log=log).submit() for i in range(2)]
        after = await Step(name="after", log=log, inputs=steps).submit()
    for step in steps:
        assert step.__job__.state is JobState.FAILED
        assert message in (step.__job__.failure_reason or "")
        assert message in json.loads((step.__job__.path / "failed.json").read_text())["reason"]
    assert after.__job__.state is JobState.DEPENDENCY_FAILED
    assert calls.count("sbatch") == 1  # the two went together, and nothing ran
    assert events(tmp_path / "log") == []
    assert len(xp.jobs) == 3


async def test_cancellation_scancels_running_and_pending_jobs(
    tmp_path: Path, calls: SlurmCalls
) -> None:
    log, never = str(tmp_path / "log"), str(tmp_path / "never")
    later = fast(options=("--begin=now+1hour",))  # pending in SLURM until cancelled
    with anyio.CancelScope() as scope:
        async with experiment(tmp_path / "wd", "cancelled", launcher=fast()):
            running = [await Step(name=f"r{i}", log=log, gate=never).submit() for i in range(2)]
            pending = await Step(name="p", log=log, gate=never).submit(launcher=later)
            await poll(lambda: len(events(tmp_path / "log")) == 2)
            await poll(lambda: "slurm_id" in state(pending))
            scope.cancel()
    assert scope.cancelled_caught
    steps = [*running, pending]
    assert [step.__job__.state for step in steps] == [JobState.CANCELLED] * 3
    ids = [state(step)["slurm_id"] for step in steps]
    cancelled = " ".join(calls.args("scancel")).split()
    assert sorted(cancelled) == sorted(ids)
    assert queued(ids) == {}
    for step in steps:
        record = json.loads((step.__job__.path / "failed.json").read_text())
        assert record["state"] == "cancelled"
        assert not (step.__job__.path / "done").exists()
    assert [e["event"] for e in events(tmp_path / "log")] == ["start", "start"]


async def test_legato_jobs_kill_uses_scancel(tmp_path: Path, calls: SlurmCalls) -> None:
    log, never = str(tmp_path / "log"), str(tmp_path / "never")
    workdir = tmp_path / "wd"
    async with experiment(workdir, "killed", launcher=fast(), raise_on_failure=False):
        step = await Step(name="k", log=log, gate=never).submit()
        await poll(lambda: len(events(tmp_path / "log")) == 1 and "pid" in state(step))
        done = await anyio.to_thread.run_sync(
            lambda: cli("jobs", "kill", step.__job__.identifier[:10], workdir=workdir)
        )
        assert done.returncode == 0, done.stderr
    slurm_id = state(step)["slurm_id"]
    assert f"scancel {slurm_id}" in done.stdout
    assert calls.args("scancel") == [slurm_id]
    assert step.__job__.state is JobState.CANCELLED
    assert queued([slurm_id]) == {}


async def test_squeue_calls_follow_poll_intervals_not_jobs(
    tmp_path: Path, calls: SlurmCalls
) -> None:
    log = str(tmp_path / "log")
    # A wide batch window: the 40 jobs are submitted one by one, and a loaded machine can
    # leave more than the default 0.1 s between two of them.
    launcher = SlurmLauncher(poll_interval=0.5, max_poll_interval=2.0, batch_window=WIDE)
    started = time.monotonic()
    async with experiment(tmp_path / "wd", "polls", launcher=launcher) as xp:
        for i in range(40):
            await Step(name=f"s{i}", log=log).submit()
    elapsed = time.monotonic() - started
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    squeue = calls.count("squeue")
    assert squeue <= elapsed / 0.5 + 2, (squeue, elapsed)
    assert squeue < 40 / 2, "one squeue call per poll, not per job"
    # Jobs that arrive within the batch window share an array; how many windows 40
    # submissions span depends on the machine's load, so the guarantee is: every job
    # submitted once, in arrays, not one sbatch per job.
    sbatch = calls.args("sbatch")
    assert sum(array_size(args) for args in sbatch) == 40, sbatch
    assert len(sbatch) <= 4, sbatch


async def test_squeue_backs_off_while_nothing_changes(tmp_path: Path, calls: SlurmCalls) -> None:
    log, gate = str(tmp_path / "log"), tmp_path / "gate"
    launcher = SlurmLauncher(poll_interval=0.1, max_poll_interval=0.4)
    async with experiment(tmp_path / "wd", "backoff", launcher=launcher):
        step = await Step(name="s", log=log, gate=str(gate)).submit()
        await poll(lambda: len(events(tmp_path / "log")) == 1)
        await poll(lambda: step.__job__.state is JobState.RUNNING and "pid" in state(step))
        seen = calls.count("squeue")
        await poll(lambda: calls.count("squeue") >= seen + 8)
        # The pauses between calls, not their start times: a loaded machine's slow squeue
        # (or fake squeue) must not hide the back-off. Since the last change the job made
        # (RUNNING), they start at poll_interval and grow to max_poll_interval.
        gaps = calls.pauses("squeue")
        assert min(gaps) < 0.1 + 0.2, gaps
        assert gaps[-1] >= 0.35 and gaps[-1] > 1.5 * min(gaps), gaps
        # Capped at max_poll_interval: growing without a cap would reach 0.1 * 1.5**8 = 2.6 s
        # by the 8th pause. The slack is for a loaded machine's late wake-ups, not the design.
        assert max(gaps) < 0.4 + 1.0, gaps
        gate.touch()
    assert step.__job__.state is JobState.DONE


async def test_progress_of_a_running_slurm_job(tmp_path: Path, calls: SlurmCalls) -> None:
    gate = tmp_path / "gate"
    async with experiment(tmp_path / "wd", "progress", launcher=fast()):
        reporter = Reporter(gate=str(gate))
        await reporter.submit()
        await poll(lambda: reporter.__job__.progress == 0.5)
        assert reporter.__job__.progress_desc == "halfway"
        assert reporter.__job__.state is JobState.RUNNING
        gate.touch()
    assert reporter.__job__.state is JobState.DONE


async def test_a_job_that_slurm_requeues_runs_again_under_its_id_without_a_new_sbatch(
    tmp_path: Path, calls: SlurmCalls, cluster: str
) -> None:
    """The requeue path on every machine (the fake's `scontrol requeue`); against the real
    cluster, tests/test_slurm_retries.py runs it."""
    if cluster == "real":
        pytest.skip("test_slurm_retries.py requeues on the real cluster")
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "requeue", launcher=fast()) as xp:
        await Sleeper(name="p", log=str(log), wake_at=2).submit()  # retries=0
        job = xp.jobs[0]
        await poll(lambda: attempts_of(log, "p") and "pid" in read_state(job.path))
        slurm_id = read_state(job.path)["slurm_id"]
        await anyio.run_process(["scontrol", "requeue", slurm_id])
        with anyio.fail_after(60):
            await job.wait()
    assert job.state is JobState.DONE and job.attempts == 2, job.failure_reason
    assert [s["attempt"] for s in attempts_of(log, "p")] == [1, 2]
    info = read_state(job.path)
    assert calls.count("sbatch") == 1 and info["slurm_id"] == slurm_id
    assert (info["attempt"], info["retried"], info["preempted"]) == (2, 0, 1)


async def test_missing_sbatch_is_a_launcher_error_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no SLURM command there
    with pytest.raises(LauncherError, match="sbatch, squeue, scancel not found on PATH"):
        async with experiment(tmp_path / "wd", "nosbatch", launcher=SlurmLauncher()):
            pytest.fail("the experiment started")
    assert isinstance(LauncherError("x"), legato.LegatoError)


def test_restart_after_kill_9_adopts_queued_and_running_jobs(
    cluster: str, tmp_path: Path, calls: SlurmCalls
) -> None:
    """kill -9 of the experiment leaves its SLURM jobs running or queued; the next run of
    the experiment follows them instead of submitting them again."""
    workdir, log, gate = tmp_path / "wd", tmp_path / "log", tmp_path / "gate"
    cpus = node_cpus() // 2 + 1  # one job at a time: one runs, the others queue
    argv = [sys.executable, str(SCRIPT), str(workdir), str(log), str(gate), "3", str(cpus)]
    env = {**os.environ, "PATH": calls.path}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    states = workdir / "jobs" / "support.xp_tasks.Step"

    def slurm_ids() -> dict[str, str]:
        found = {}
        for path in states.glob("*/state.json"):
            info = json.loads(path.read_text())
            if "slurm_id" in info:
                found[path.parent.name] = info["slurm_id"]
        return found

    try:
        wait_until(lambda: len(slurm_ids()) == 3 and len(events(log)) == 1, 60, "one job running")
    finally:
        first.kill()
        first.wait()
    ids = slurm_ids()
    # They outlive the experiment: one runs, the others wait for the node's CPUs.
    listed = queued(list(ids.values()))
    assert sorted(listed.values()) == ["PENDING", "PENDING", "RUNNING"], listed
    submitted = calls.count("sbatch")

    second = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert second.stdout is not None
        assert second.stdout.readline() == "submitted\n"
        gate.touch()
        out, _ = second.communicate(timeout=120)
    finally:
        second.kill()
    assert second.returncode == 0
    assert out.splitlines()[-1] == "finished DONE DONE DONE"
    assert calls.count("sbatch") == submitted  # adopted, not submitted again
    assert slurm_ids() == ids
    starts = [e["name"] for e in events(log) if e["event"] == "start"]
    assert sorted(starts) == ["gated0", "gated1", "gated2"]  # each ran once


def test_how_to_page_sweep_runs_as_shown(cluster: str, tmp_path: Path) -> None:
    """docs/how-to/slurm.md: the sweep prints what the page shows, SLURM ids and times
    aside; the second run submits nothing."""
    page = Path(__file__).parent.parent / "docs" / "how-to" / "slurm.md"
    (tmp_path / "slurm_sweep.py").write_text(titled_blocks(page)["slurm_sweep.py"])
    env = {**os.environ, "LEGATO_DISPLAY": "0"}
    env.pop("LEGATO_WORKDIR", None)

    def run() -> list[str]:
        done = subprocess.run(
            [sys.executable, "slurm_sweep.py"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout
        return done.stdout.splitlines()

    def normalised(lines: list[str]) -> list[str]:
        lines = [re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", "", line) for line in lines]
        return [re.sub(r"SLURM job (array )?\d+", r"SLURM job \1N", line) for line in lines]

    assert normalised(run()) == normalised(console_output(page, "python slurm_sweep.py"))
    assert run() == console_output(page, "python slurm_sweep.py", 1)
