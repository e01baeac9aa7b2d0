"""`legato jobs rm` and `legato clean` over copies of a workdir made by a real experiment."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from support.cli import (
    assert_one_line_error,
    cli,
    copy_workdir,
    finished_sweep,
    jobs_json,
    legato_script,
)
from support.warm_support import job_processes  # noqa: F401 - every test, warm and fresh


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return finished_sweep(tmp_path_factory)[0]


@pytest.fixture()
def workdir(original: Path, tmp_path: Path) -> Path:
    return copy_workdir(original, tmp_path)


def ids(workdir: Path, *args: str) -> set[str]:
    return {j["id"] for j in jobs_json(workdir, *args)}


def test_clean_needs_something_to_clean(workdir: Path) -> None:
    line = assert_one_line_error(cli("clean", workdir=workdir), 2)
    assert "--failed" in line and "--orphans" in line


def test_clean_failed_dry_run_then_for_real(workdir: Path) -> None:
    everything = ids(workdir)
    failed = ids(workdir, "--state", "failed")
    assert len(failed) == 1
    dry = cli("clean", "--failed", "--dry-run", workdir=workdir)
    assert dry.returncode == 0, dry.stderr
    (line, summary) = dry.stdout.splitlines()
    assert line.startswith("would remove cli_tasks.Evaluate/") and "ValueError: bad size" in line
    assert summary == "1 job(s) would be removed (dry run)"
    assert ids(workdir) == everything
    # Not a terminal: no question asked.
    done = cli("clean", "--failed", workdir=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "1 job(s) removed"
    assert ids(workdir) == everything - failed
    assert not any(p.name.startswith(".") for p in (workdir / "jobs").glob("*/*"))
    again = cli("clean", "--failed", "--yes", workdir=workdir)
    assert again.returncode == 0 and again.stdout == "nothing to remove\n"


def test_clean_orphans(workdir: Path) -> None:
    jobs_txt = workdir / "experiments" / "sweep" / "jobs.txt"
    lines = jobs_txt.read_text().splitlines()
    kept = [line for line in lines if "Plain" not in line and "Gather" not in line]
    assert len(kept) == len(lines) - 2
    jobs_txt.write_text("".join(line + "\n" for line in kept))
    orphans = ids(workdir, "--name", "Plain") | ids(workdir, "--name", "Gather")
    dry = cli("clean", "--orphans", "-n", workdir=workdir)
    assert dry.returncode == 0, dry.stderr
    assert len(dry.stdout.splitlines()) == 3
    before = ids(workdir)
    done = cli("clean", "--orphans", "--yes", workdir=workdir)
    assert done.returncode == 0, done.stderr
    assert ids(workdir) == before - orphans
    # --failed and --orphans together: the failed Evaluate goes too.
    both = cli("clean", "--orphans", "--failed", "-y", workdir=workdir)
    assert both.stdout.splitlines()[-1] == "1 job(s) removed"
    assert ids(workdir, "--state", "failed") == set()


def test_rm(workdir: Path) -> None:
    learn = jobs_json(workdir, "--name", "Learn", "--tag", "hidden=64")[0]
    dry = cli("jobs", "rm", "--dry-run", learn["id"][:9], workdir=workdir)
    assert dry.returncode == 0 and "would remove cli_tasks.Learn/" in dry.stdout
    assert Path(learn["path"]).is_dir()
    (plain,) = jobs_json(workdir, "--name", "Plain")
    done = cli("jobs", "rm", learn["id"][:9], f"Plain/{plain['id'][:6]}", workdir=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2 job(s) removed"
    assert not Path(learn["path"]).exists() and not Path(plain["path"]).exists()
    assert len(jobs_json(workdir)) == 4
    # A job whose dependency was removed still shows; the dependency is "missing".
    gather = cli("jobs", "show", "Gather/", workdir=workdir)
    assert_one_line_error(gather, 2)  # empty prefix
    (gather_job,) = jobs_json(workdir, "--name", "Gather")
    shown = cli("jobs", "show", gather_job["id"], workdir=workdir)
    assert shown.stdout.rstrip().endswith("missing")


def run_on_a_terminal(workdir: Path, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run legato with a pseudo-terminal as stdin and type `answer`."""
    primary, secondary = pty.openpty()
    try:
        os.write(primary, answer.encode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
        return subprocess.run(
            [legato_script(), "--workdir", str(workdir), *args],
            stdin=secondary,
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, "NO_COLOR": "1"},
        )
    finally:
        os.close(primary)
        os.close(secondary)


def test_confirmation_on_a_terminal(workdir: Path) -> None:
    failed = ids(workdir, "--state", "failed")
    declined = run_on_a_terminal(workdir, "n\n", "clean", "--failed")
    assert declined.returncode == 1
    assert "Remove 1 job directory?" in declined.stdout
    assert "nothing removed" in declined.stdout
    assert ids(workdir, "--state", "failed") == failed
    accepted = run_on_a_terminal(workdir, "y\n", "clean", "--failed")
    assert accepted.returncode == 0, accepted.stderr
    assert ids(workdir, "--state", "failed") == set()
    # --yes does not ask.
    (plain,) = jobs_json(workdir, "--name", "Plain")
    quiet = run_on_a_terminal(workdir, "", "jobs", "rm", "--yes", plain["id"])
    assert quiet.returncode == 0 and "?" not in quiet.stdout


def test_kill_of_a_finished_job_changes_nothing(workdir: Path) -> None:
    learn = jobs_json(workdir, "--name", "Learn")[0]
    done = cli("jobs", "kill", learn["id"], workdir=workdir)
    assert done.returncode == 0, done.stderr
    assert "already done" in done.stdout
    assert not (Path(learn["path"]) / "failed.json").exists()
    assert not (Path(learn["path"]) / "cancel").exists()
