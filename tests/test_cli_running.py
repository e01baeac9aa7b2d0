"""The `legato` command while experiments run: `jobs kill`, `jobs log --follow`, `status`.

The running job waits for a gate file the tests never create (or create to let it end);
every wait polls a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from legato import JobState, experiment
from support.cli import (
    alive,
    assert_one_line_error,
    cli,
    jobs_json,
    make_project,
    parse_states,
    start_wait,
)
from support.waiting import job_state, wait_until
from support.warm_support import job_processes  # noqa: F401 - every test, warm and fresh
from support.xp_tasks import Step, events

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


@pytest.fixture()
def experiments() -> Iterator[list[subprocess.Popen[str]]]:
    """Experiment processes started by a test; killed (with their jobs) if still running."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def running_job(workdir: Path, timeout: float = 90.0) -> dict[str, Any]:
    """Wait until exactly one job runs (its process up and recorded); return it."""

    def one_running() -> dict[str, Any] | None:
        if not workdir.exists():
            return None
        jobs = jobs_json(workdir, "--state", "running")
        if len(jobs) != 1:
            return None
        return jobs[0] if "pid" in job_state(jobs[0]["path"]) else None

    job: dict[str, Any] = wait_until(one_running, timeout, "a running job")
    return job


def start_running(
    project: Path,
    tmp_path: Path,
    experiments: list[subprocess.Popen[str]],
    name: str,
    gate: Path | None = None,
    ignore_term: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """An experiment `name` started in the background, whose job runs until `gate` exists
    (never, by default): its workdir and the running job (`jobs ls --json`)."""
    workdir = tmp_path / "runs"
    gate = gate or tmp_path / "never"
    experiments.append(start_wait(project, workdir, name, gate, ignore_term=ignore_term))
    return workdir, running_job(workdir)


def job_pid(job: dict[str, Any]) -> int:
    pid: int = json.loads((Path(job["path"]) / "state.json").read_text())["pid"]
    return pid


def finish(process: subprocess.Popen[str]) -> dict[str, str]:
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return parse_states(stdout)


def test_kill_a_running_job(
    project: Path, tmp_path: Path, experiments: list[subprocess.Popen[str]]
) -> None:
    workdir, job = start_running(project, tmp_path, experiments, "k1")
    pid = job_pid(job)
    assert alive(pid)
    shown = json.loads(cli("jobs", "show", "--json", job["id"][:8], workdir=workdir).stdout)
    assert shown["state"] == "running" and shown["pid"] == pid

    done = cli("jobs", "kill", job["id"][:8], workdir=workdir)
    assert done.returncode == 0, done.stderr
    assert "cancelled" in done.stdout and "SIGTERM" in done.stdout
    assert not alive(pid)
    (listed,) = jobs_json(workdir)
    assert listed["state"] == "cancelled"
    record = json.loads((Path(job["path"]) / "failed.json").read_text())
    assert record["state"] == "cancelled"
    assert (Path(job["path"]) / "cancel").exists()
    # The experiment saw it CANCELLED, and ended.
    assert finish(experiments[0]) == {f"{job['type']}/{job['id']}": "CANCELLED"}
    again = cli("jobs", "kill", job["id"], workdir=workdir)
    assert again.returncode == 0 and "already cancelled" in again.stdout


def test_kill_escalates_to_sigkill(
    project: Path, tmp_path: Path, experiments: list[subprocess.Popen[str]]
) -> None:
    workdir, job = start_running(project, tmp_path, experiments, "k2", ignore_term=True)
    pid = job_pid(job)
    # The job ignores SIGTERM only once its code runs: wait for its first output.
    wait_until(lambda: (Path(job["path"]) / "stdout.log").read_text(), 30, "the job's output")
    done = cli("jobs", "kill", "--grace", "0.5", job["id"], workdir=workdir)
    assert done.returncode == 0, done.stderr
    assert "SIGKILL" in done.stdout
    assert not alive(pid)
    assert jobs_json(workdir)[0]["state"] == "cancelled"
    assert finish(experiments[0]) == {f"{job['type']}/{job['id']}": "CANCELLED"}


def test_kill_a_job_that_does_not_run(
    project: Path, tmp_path: Path, experiments: list[subprocess.Popen[str]]
) -> None:
    """An interrupted job (its experiment and itself killed with -9) is marked CANCELLED."""
    workdir = tmp_path / "runs"
    process = start_wait(project, workdir, "k3", tmp_path / "never")
    experiments.append(process)
    job = running_job(workdir)
    pid = job_pid(job)
    os.kill(pid, signal.SIGSTOP)  # so that it cannot record a verdict when its parent dies
    process.kill()
    process.wait()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), 30, "the job to die")
    assert jobs_json(workdir)[0]["state"] == "incomplete"
    xps = cli("experiments", "ls", "--json", workdir=workdir)
    assert json.loads(xps.stdout)["status"] == "interrupted"
    done = cli("jobs", "kill", job["id"][:5], workdir=workdir)
    assert done.returncode == 0, done.stderr
    assert "no process was running" in done.stdout
    assert jobs_json(workdir)[0]["state"] == "cancelled"


def test_kill_a_slurm_job_calls_scancel(tmp_path: Path) -> None:
    """With "launcher": "slurm" in state.json, `scancel <slurm_id>` is called (a fake one
    here, which records its arguments and, as SLURM would, lets the job record its end)."""
    job = tmp_path / "runs" / "jobs" / "m.T" / ("ab" * 32)
    job.mkdir(parents=True)
    info = {"launcher": "slurm", "slurm_id": "4242", "pid": 77, "host": "node-1"}
    (job / "state.json").write_text(json.dumps(info))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scancel = bin_dir / "scancel"
    scancel.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/scancel.log\n'
        f'echo \'{{"state": "cancelled", "reason": "slurm"}}\' > {job}/failed.json\n'
    )
    scancel.chmod(scancel.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = cli("jobs", "kill", "abab", workdir=tmp_path / "runs", env=env)
    assert done.returncode == 0, done.stderr
    assert "scancel 4242" in done.stdout
    assert (tmp_path / "scancel.log").read_text().split() == ["4242"]
    assert (job / "cancel").exists()
    assert jobs_json(tmp_path / "runs")[0]["state"] == "cancelled"
    # Without scancel on PATH: one clear line.
    (job / "failed.json").unlink()
    line = assert_one_line_error(
        cli("jobs", "kill", "abab", workdir=tmp_path / "runs", env={"PATH": "/nonexistent"})
    )
    assert "scancel is not on PATH" in line


def test_log_follow_until_the_job_ends(
    project: Path, tmp_path: Path, experiments: list[subprocess.Popen[str]]
) -> None:
    gate = tmp_path / "gate"
    workdir, job = start_running(project, tmp_path, experiments, "f1", gate)
    follow = subprocess.Popen(
        [*cli_argv(workdir), "jobs", "log", "--follow", job["id"][:12]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline()  # arrives while the job runs
        assert first == f"waiting for {gate}\n"
        assert follow.poll() is None
        gate.write_text("")
        rest, err = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert rest == "gate open\n"
    assert finish(experiments[0]) == {f"{job['type']}/{job['id']}": "DONE"}


def test_status_shows_running_experiments(
    project: Path, tmp_path: Path, experiments: list[subprocess.Popen[str]]
) -> None:
    workdir, job = start_running(project, tmp_path, experiments, "s1")

    def shows_progress() -> str | None:
        out = cli("status", "--once", workdir=workdir, env={"COLUMNS": "200"}).stdout
        return out if "halfway" in out else None

    out = wait_until(shows_progress, 30, "status to show the job's progress")
    assert "waiting" in out.splitlines()[0]  # the experiment's name
    assert f"{job['type']}/{job['id'][:12]}" in out
    assert "50% halfway" in out
    assert "1 running" in out
    xps = [
        json.loads(line)
        for line in cli("experiments", "ls", "--json", workdir=workdir).stdout.splitlines()
    ]
    assert [(x["name"], x["status"]) for x in xps] == [("waiting", "running")]


def test_rm_and_clean_refuse_a_running_job(
    project: Path, tmp_path: Path, experiments: list[subprocess.Popen[str]]
) -> None:
    workdir, job = start_running(project, tmp_path, experiments, "r1")
    (workdir / "experiments" / "waiting" / "jobs.txt").write_text("")  # now an orphan
    done = cli("jobs", "rm", "--yes", job["id"], workdir=workdir)
    assert done.returncode == 1
    assert "is running; not removed" in done.stderr
    assert Path(job["path"]).is_dir()
    clean = cli("clean", "--orphans", "--failed", "--yes", workdir=workdir)
    assert clean.returncode == 0, clean.stderr
    assert "nothing to remove" in clean.stdout
    assert Path(job["path"]).is_dir()


def cli_argv(workdir: Path) -> list[str]:
    from support.cli import legato_script

    return [legato_script(), "--workdir", str(workdir)]


def test_status_refreshes_on_a_terminal_until_ctrl_c(
    project: Path, tmp_path: Path, experiments: list[subprocess.Popen[str]]
) -> None:
    workdir, job = start_running(project, tmp_path, experiments, "s2")
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    status = subprocess.Popen(
        [*cli_argv(workdir), "status", "--interval", "0.2"],
        stdout=secondary,
        stderr=subprocess.PIPE,
        env={**env, "COLUMNS": "200", "TERM": "xterm"},
        text=True,
    )
    os.close(secondary)
    seen = b""
    try:

        def redrawn() -> bool:
            nonlocal seen
            while select.select([primary], [], [], 0.1)[0]:
                try:
                    seen += os.read(primary, 65536)
                except OSError:
                    break
            return seen.count(job["id"][:12].encode()) >= 3  # drawn, then redrawn

        wait_until(redrawn, 30, "the live view to refresh")
        assert status.poll() is None
        status.send_signal(signal.SIGINT)
        assert status.wait(timeout=30) == 0
        assert status.stderr is not None
        assert "Traceback" not in status.stderr.read()
    finally:
        if status.poll() is None:
            status.kill()
            status.wait()
        os.close(primary)


@pytest.mark.anyio
async def test_kill_a_job_that_waits_for_its_dependencies(tmp_path: Path) -> None:
    """A job killed before it starts never starts in this run, and runs in the next."""
    workdir, log, gate = tmp_path / "runs", str(tmp_path / "log"), tmp_path / "gate"
    async with experiment(workdir, "xp", raise_on_failure=False):
        first = await Step(name="first", log=log, gate=str(gate)).submit()
        second = Step(name="second", log=log, inputs=[first])
        await second.submit()
        with anyio.fail_after(60):
            while not second.__job__.path.is_dir():
                await anyio.sleep(0.01)
        listed = await anyio.to_thread.run_sync(lambda: jobs_json(workdir, "--state", "incomplete"))
        assert second.__identifier__ in [job["id"] for job in listed]
        done = await anyio.to_thread.run_sync(
            lambda: cli("jobs", "kill", second.__identifier__[:12], workdir=workdir)
        )
        assert done.returncode == 0, done.stderr
        assert "cancelled" in done.stdout
        gate.touch()
    assert first.__job__.state is JobState.DONE
    assert second.__job__.state is JobState.CANCELLED
    assert "before it started" in (second.__job__.failure_reason or "")
    assert [e["name"] for e in events(Path(log)) if e["event"] == "start"] == ["first"]

    async with experiment(workdir, "xp"):  # a later run is not bound by that request
        again = Step(name="second", log=log, inputs=[await Step(name="first", log=log).submit()])
        await again.submit()
    assert again.__job__.state is JobState.DONE
