"""The `legato` command over a workdir made by a real experiment: listing, showing, logs,
ID prefixes, experiments, and bad input. Each test runs the installed console script."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from support.cli import (
    assert_one_line_error,
    cli,
    copy_workdir,
    finished_sweep,
    jobs_json,
)
from support.warm_support import job_processes  # noqa: F401 - every test, warm and fresh


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    return finished_sweep(tmp_path_factory)


@pytest.fixture()
def workdir(sweep: tuple[Path, dict[str, str]]) -> Path:
    return sweep[0]


@pytest.fixture()
def copy(sweep: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    """A copy of the sweep's workdir that a test may change."""
    return copy_workdir(sweep[0], tmp_path)


def by_type(jobs: list[dict[str, Any]], type_suffix: str) -> list[dict[str, Any]]:
    return [j for j in jobs if j["type"].endswith("." + type_suffix)]


def failed_job(workdir: Path) -> dict[str, Any]:
    (job,) = jobs_json(workdir, "--state", "failed")
    return job


# -- jobs ls --------------------------------------------------------------------------


def test_ls_json_lists_every_job_with_its_state_and_tags(
    sweep: tuple[Path, dict[str, str]],
) -> None:
    workdir, states = sweep
    jobs = jobs_json(workdir)
    assert {f"{j['type']}/{j['id']}": j["state"].upper() for j in jobs} == states
    for job in jobs:
        assert set(job) >= {"type", "id", "state", "tags", "started", "duration", "path"}
        assert Path(job["path"]).is_dir()
    learn = sorted(by_type(jobs, "Learn"), key=lambda j: j["tags"]["hidden"])
    assert [j["tags"] for j in learn] == [{"hidden": 13, "lr": 0.1}, {"hidden": 64, "lr": 0.1}]
    evaluate = by_type(jobs, "Evaluate")
    # Tags of dependencies are inherited.
    assert sorted(j["tags"]["hidden"] for j in evaluate) == [13, 64]
    failed = [j for j in evaluate if j["state"] == "failed"]
    assert [j["tags"]["hidden"] for j in failed] == [13]
    assert failed[0]["reason"] == "ValueError: bad size"
    assert all(j["duration"] is not None and j["duration"] >= 0 for j in jobs)


def test_ls_table(workdir: Path) -> None:
    done = cli("jobs", "ls", workdir=workdir)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["TYPE", "ID", "STATE", "TAGS", "START", "DURATION"]
    assert len(rows) == 6
    failed = [r for r in rows if " failed " in r]
    assert len(failed) == 1
    assert "cli_tasks.Evaluate" in failed[0]
    assert "hidden=13 lr=0.1" in failed[0]
    for row in rows:
        short_id = row.split()[1]
        assert len(short_id) == 12


def test_ls_filters(workdir: Path) -> None:
    assert [j["type"] for j in jobs_json(workdir, "--state", "failed")] == ["cli_tasks.Evaluate"]
    assert len(jobs_json(workdir, "--state", "done")) == 5
    assert len(jobs_json(workdir, "--state", "done", "--state", "failed")) == 6
    assert jobs_json(workdir, "--state", "running") == []
    assert {j["type"] for j in jobs_json(workdir, "--name", "Learn")} == {"cli_tasks.Learn"}
    assert len(jobs_json(workdir, "--name", "cli_tasks.*")) == 6
    assert {j["type"] for j in jobs_json(workdir, "--name", "*a*er")} == {"cli_tasks.Gather"}
    hidden64 = jobs_json(workdir, "--tag", "hidden=64")
    assert sorted(j["type"] for j in hidden64) == ["cli_tasks.Evaluate", "cli_tasks.Learn"]
    assert len(jobs_json(workdir, "--tag", "lr=1e-1")) == 4  # numbers compare as numbers
    assert len(jobs_json(workdir, "--tag", "hidden")) == 4
    assert jobs_json(workdir, "--tag", "hidden=64", "--name", "Evaluate")[0]["state"] == "done"
    assert len(jobs_json(workdir, "--experiment", "sweep")) == 6


def test_ls_bad_options(workdir: Path) -> None:
    bad_state = cli("jobs", "ls", "--state", "sleeping", workdir=workdir)
    assert bad_state.returncode == 2
    assert "Traceback" not in bad_state.stderr
    line = assert_one_line_error(cli("jobs", "ls", "-x", "nope", workdir=workdir), 2)
    assert "no experiment named 'nope'" in line
    assert_one_line_error(cli("jobs", "ls", "--tag", "=1", workdir=workdir), 2)


def test_workdir_from_environment_and_current_directory(workdir: Path) -> None:
    from_env = cli("jobs", "ls", "--json", env={"LEGATO_WORKDIR": str(workdir)})
    from_cwd = cli("jobs", "ls", "--json", cwd=workdir)
    from_option = cli("jobs", "ls", "--json", workdir=workdir)
    assert from_env.returncode == from_cwd.returncode == from_option.returncode == 0
    assert len(from_env.stdout.splitlines()) == 6
    assert from_env.stdout == from_cwd.stdout == from_option.stdout


# -- jobs show ------------------------------------------------------------------------


def test_show_failed_job(workdir: Path) -> None:
    job = failed_job(workdir)
    done = cli("jobs", "show", job["id"][:8], workdir=workdir)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0] == f"cli_tasks.Evaluate/{job['id']}"
    assert "state       failed" in out
    assert "reason      ValueError: bad size" in out
    assert "experiment  sweep" in out
    assert "hidden = 13" in out and "lr = 0.1" in out
    # The params as the user wrote them; the output of a submitted task says where from.
    assert "model = Trained(model=Model(hidden=13), checkpoint=Path(" in out
    assert "# output of cli_tasks.Learn/" in out
    deps = out.split("dependencies\n", 1)[1].splitlines()
    assert len(deps) == 1 and deps[0].split()[1] == "done"
    assert deps[0].strip().startswith("cli_tasks.Learn/")
    assert f"directory   {job['path']}" in out


def test_show_json(workdir: Path) -> None:
    learn = jobs_json(workdir, "--name", "Learn", "--tag", "hidden=64")[0]
    done = cli("jobs", "show", "--json", f"Learn/{learn['id'][:6]}", workdir=workdir)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["id"] == learn["id"]
    assert shown["state"] == "done"
    assert shown["tags"] == {"hidden": 64, "lr": 0.1}
    assert shown["params"] == {"model": {"__type__": "cli_tasks.Model", "hidden": 64}, "lr": 0.1}
    assert shown["paths"] == {"checkpoint": f"{learn['path']}/model.pt"}
    assert shown["dependencies"] == []
    assert shown["launcher"] == "local"
    assert isinstance(shown["pid"], int)


def test_show_dependency_on_a_submitted_task_inside_a_list(workdir: Path) -> None:
    (gather,) = jobs_json(workdir, "--name", "Gather")
    (plain,) = jobs_json(workdir, "--name", "Plain")
    shown = json.loads(cli("jobs", "show", "--json", gather["id"], workdir=workdir).stdout)
    assert shown["dependencies"] == [
        {"type": "cli_tasks.Plain", "id": plain["id"], "state": "done"}
    ]
    text = cli("jobs", "show", plain["id"][:10], workdir=workdir).stdout
    assert "name = 'a'" in text
    assert "opts = {'depth': 2, 'layers': [1, 2]}" in text


# -- IDs ------------------------------------------------------------------------------


def test_unknown_and_ambiguous_ids_exit_2(copy: Path) -> None:
    line = assert_one_line_error(cli("jobs", "show", "zzzz", workdir=copy), 2)
    assert "no job matches 'zzzz'" in line
    learn = jobs_json(copy, "--name", "Learn")[0]
    # A second job directory sharing the first 10 characters, half-written (empty).
    twin = Path(learn["path"]).with_name(learn["id"][:10] + "0" * 54)
    twin.mkdir()
    line = assert_one_line_error(cli("jobs", "show", learn["id"][:10], workdir=copy), 2)
    assert "ambiguous" in line and "2 jobs" in line
    assert cli("jobs", "show", learn["id"][:11], workdir=copy).returncode == 0
    assert_one_line_error(cli("jobs", "log", "Nothing/" + learn["id"][:11], workdir=copy), 2)
    assert_one_line_error(cli("jobs", "kill", learn["id"][:10], workdir=copy), 2)
    assert_one_line_error(cli("jobs", "rm", "--yes", learn["id"][:10], workdir=copy), 2)
    assert_one_line_error(cli("jobs", "show", "cli_tasks.Learn/", workdir=copy), 2)


def test_half_written_job_directories_are_listed(copy: Path) -> None:
    learn = jobs_json(copy, "--name", "Learn")[0]
    empty = Path(learn["path"]).with_name("f" * 64)
    empty.mkdir()  # what an experiment creates before it writes the params
    (Path(learn["path"]).with_name("e" * 64) / "sub").mkdir(parents=True)
    listed = {j["id"]: j for j in jobs_json(copy)}
    assert listed["f" * 64]["state"] == "incomplete"
    assert listed["f" * 64]["tags"] == {}
    assert len(listed) == 8
    shown = cli("jobs", "show", "ffff", workdir=copy)
    assert shown.returncode == 0, shown.stderr
    assert "(no params file yet" in shown.stdout
    table = cli("jobs", "ls", workdir=copy)
    assert table.returncode == 0 and table.stderr == ""


# -- jobs log -------------------------------------------------------------------------


def test_log(workdir: Path) -> None:
    learn = jobs_json(workdir, "--name", "Learn", "--tag", "hidden=64")[0]
    out = cli("jobs", "log", learn["id"][:12], workdir=workdir)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "learning hidden=64 lr=0.1\n"
    err = cli("jobs", "log", "--err", learn["id"][:12], workdir=workdir)
    assert err.stdout == "a warning\n"
    failed = failed_job(workdir)
    err = cli("jobs", "log", "-e", failed["id"], workdir=workdir)
    assert "ValueError: bad size" in err.stdout
    # --follow on a finished job prints the output and returns.
    follow = cli("jobs", "log", "--follow", learn["id"][:12], workdir=workdir, timeout=20)
    assert follow.returncode == 0 and follow.stdout == "learning hidden=64 lr=0.1\n"


def test_log_of_a_job_without_output(copy: Path) -> None:
    learn = jobs_json(copy, "--name", "Learn")[0]
    os.unlink(Path(learn["path"]) / "stdout.log")
    line = assert_one_line_error(cli("jobs", "log", learn["id"], workdir=copy), 1)
    assert "has no stdout.log" in line


# -- experiments ----------------------------------------------------------------------


def test_experiments_ls(workdir: Path) -> None:
    done = cli("experiments", "ls", workdir=workdir)
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split()[:8] == [
        "NAME", "STATUS", "JOBS", "DONE", "RUNNING", "FAILED", "CANCELLED", "WAITING"
    ]  # fmt: skip
    assert row.split()[:8] == ["sweep", "failed", "6", "5", "0", "1", "0", "0"]
    (record,) = [
        json.loads(line)
        for line in cli("experiments", "ls", "--json", workdir=workdir).stdout.splitlines()
    ]
    assert record["name"] == "sweep" and record["status"] == "failed"
    assert record["counts"]["done"] == 5


def test_status_once_without_running_experiments(workdir: Path) -> None:
    done = cli("status", "--once", workdir=workdir)
    assert done.returncode == 0, done.stderr
    assert "no running experiment" in done.stdout


# -- bad input ------------------------------------------------------------------------


def test_bad_workdirs(tmp_path: Path) -> None:
    line = assert_one_line_error(cli("jobs", "ls", workdir=tmp_path / "missing"))
    assert "does not exist" in line
    line = assert_one_line_error(cli("jobs", "ls", workdir=tmp_path))
    assert "not a legato workdir" in line
    (tmp_path / "file").write_text("")
    assert_one_line_error(cli("experiments", "ls", workdir=tmp_path / "file"))
    assert_one_line_error(cli("status", "--once", cwd=tmp_path))
    assert_one_line_error(cli("clean", "--failed", env={"LEGATO_WORKDIR": str(tmp_path)}))


def test_corrupt_params(copy: Path) -> None:
    learn = jobs_json(copy, "--name", "Learn", "--tag", "hidden=64")[0]
    (Path(learn["path"]) / "params.msgpack").write_bytes(b"\x93garbage")
    line = assert_one_line_error(cli("jobs", "show", learn["id"], workdir=copy), 1)
    assert "cannot read the params" in line and learn["id"][:12] in line
    # Listing goes on, with a warning, and without that job's tags.
    listed = cli("jobs", "ls", workdir=copy)
    assert listed.returncode == 0
    assert len(listed.stdout.splitlines()) == 7
    assert "warning: 1 job(s) have unreadable params" in listed.stderr
    assert "Traceback" not in listed.stderr


def test_corrupt_state_files(copy: Path) -> None:
    jobs = {j["id"]: j for j in jobs_json(copy)}
    failed = failed_job(copy)
    done_job = next(j for j in jobs.values() if j["state"] == "done")
    (Path(failed["path"]) / "failed.json").write_text('{"state": "fai')
    (Path(failed["path"]) / "state.json").write_text("[not json")
    (Path(done_job["path"]) / "done").write_text("garbage")  # DONE by its existence
    (copy / "experiments" / "sweep" / "state.json").write_text("{")
    listed = {j["id"]: j["state"] for j in jobs_json(copy)}
    assert listed[failed["id"]] == "incomplete"  # a corrupt verdict is not a verdict
    assert listed[done_job["id"]] == "done"
    assert cli("jobs", "show", failed["id"], workdir=copy).returncode == 0
    xps = cli("experiments", "ls", workdir=copy)
    assert xps.returncode == 0 and "unknown" in xps.stdout


def test_help_on_every_command() -> None:
    for command in (
        [],
        ["jobs"],
        ["jobs", "ls"],
        ["jobs", "show"],
        ["jobs", "log"],
        ["jobs", "kill"],
        ["jobs", "rm"],
        ["experiments"],
        ["experiments", "ls"],
        ["clean"],
        ["status"],
    ):
        done = cli(*command, "--help")
        assert done.returncode == 0, (command, done.stderr)
        assert "Usage" in done.stdout
