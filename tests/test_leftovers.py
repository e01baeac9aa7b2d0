"""No job process outlives what watches it: a forked child left behind by a job does not
hold the experiment (nor the job's lock), and a job that ignores SIGTERM does not survive
a kill -9 of its experiment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from legato import JobState, LocalLauncher, experiment
from support.cli import alive, jobs_json
from support.runtime_tasks import Forker
from support.waiting import lock_is_free, wait_until
from support.xp_tasks import events

pytestmark = pytest.mark.anyio


async def test_a_forked_child_left_behind_does_not_hold_the_experiment(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    started = time.monotonic()
    async with experiment(tmp_path, "xp", launcher=LocalLauncher(grace_period=2.0)):
        task = await Forker(log=log).submit()
    # Without the fix, the block lasts as long as the child sleeps (300 s).
    assert time.monotonic() - started < 60
    assert task.__job__.state is JobState.DONE
    (forked,) = events(tmp_path / "log")
    assert not alive(forked["child"])  # ended with the job's process group
    assert lock_is_free(task.__job__.path)


SCRIPT = textwrap.dedent(
    """
    import sys
    import anyio
    from legato import LocalLauncher, experiment
    from support.runtime_tasks import Stubborn

    async def main(workdir, log, gate):
        async with experiment(workdir, "stubborn", launcher=LocalLauncher(grace_period=1)):
            await Stubborn(name="s", log=log, gate=gate).submit()

    anyio.run(main, *sys.argv[1:])
    """
)


def test_a_job_that_ignores_sigterm_dies_after_a_kill_9_of_its_experiment(
    tmp_path: Path,
) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(SCRIPT)
    log, workdir = tmp_path / "log", tmp_path / "wd"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
    env["LEGATO_DISPLAY"] = "0"
    process = subprocess.Popen(
        [sys.executable, str(script), str(workdir), str(log), str(tmp_path / "never")], env=env
    )
    try:
        wait_until(lambda: events(log), timeout=120, what="the job to start")
        (start,) = events(log)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        # PDEATHSIG's SIGTERM is ignored; the grace period (1 s) later, SIGKILL.
        wait_until(lambda: not alive(start["pid"]), timeout=30, what="the job to end")
    finally:
        if process.poll() is None:
            process.kill()
        if events(log) and alive(events(log)[0]["pid"]):
            os.killpg(events(log)[0]["pid"], signal.SIGKILL)
    (job,) = jobs_json(workdir)
    assert job["state"] != "running"
    assert lock_is_free(Path(job["path"]))
