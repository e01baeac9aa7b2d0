"""The files legato writes in a workdir, as other users and tools see them."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import legato
from legato import JobState, experiment
from legato._jobdir._job import JobDir
from support.cli import cli
from support.xp_tasks import Evaluate, Learn, Model, Step, events

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_blocking")]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_state_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    """A shared workdir must stay readable by the group: no 0600 files from temp-then-rename."""
    async with experiment(tmp_path, "xp"):
        step = Step(name="a", log=str(tmp_path / "log"))
        await step.submit()
    modes = file_modes(tmp_path)
    names = {Path(p).name for p in modes}
    assert {"params.msgpack", "done", "state.json", "jobs.txt"} <= names, names
    assert all(mode & 0o044 == 0o044 for mode in modes.values()), modes
    assert not [p for p in names if p.startswith(".")], "temporary files left behind"


def file_modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file() and p.name != "log"
    }


async def test_a_moved_workdir_keeps_paths_and_identifiers(tmp_path: Path) -> None:
    """Paths inside the workdir follow it: `load` after a move, and a rerun there, agree."""
    log = str(tmp_path / "log")
    async with experiment(tmp_path / "before", "xp"):
        trained = await Learn(model=Model()).submit()
        evaluate = Evaluate(trained=trained, log=log)
        await evaluate.submit()
    identifier = evaluate.__identifier__
    before, after = tmp_path / "before", tmp_path / "moved" / "after"
    (tmp_path / "moved").mkdir()
    before.rename(after)

    loaded = legato.load(after / "jobs" / "support.xp_tasks.Evaluate" / identifier)
    assert loaded.__identifier__ == identifier
    assert loaded.trained.weights.is_relative_to(after)
    assert loaded.trained.weights.read_text() == "16"
    assert loaded.__taskdir__ == after / "jobs" / "support.xp_tasks.Evaluate" / identifier
    shown = await anyio.to_thread.run_sync(
        lambda: cli("jobs", "show", "--json", identifier[:12], workdir=after)
    )
    assert shown.returncode == 0, shown.stderr
    params = json.loads(shown.stdout)["params"]
    assert params["trained"]["weights"] == str(loaded.trained.weights)

    async with experiment(after, "xp") as xp:
        again = Evaluate(trained=await Learn(model=Model()).submit(), log=log)
        await again.submit()
    assert again.__identifier__ == identifier
    assert {job.state for job in xp.jobs} == {JobState.DONE}
    assert [e["event"] for e in events(Path(log))] == ["eval"], "nothing ran twice"


def test_job_dir_reads_and_writes_the_files_of_a_job(tmp_path: Path) -> None:
    job = JobDir(tmp_path)
    assert not job.is_done() and job.failure() is None and job.state() is None
    assert job.merge_state(launcher="slurm") == {"launcher": "slurm"}
    assert job.merge_state(pid=7) == {"launcher": "slurm", "pid": 7}  # merged, not replaced
    assert json.loads((tmp_path / "state.json").read_text()) == {"launcher": "slurm", "pid": 7}
    job.request_cancel(by="test")
    assert (job.cancel_requested() or {})["by"] == "test"
    job.write_failure({"state": "failed", "reason": "boom"})
    assert job.has_failure() and job.failure() == {"state": "failed", "reason": "boom"}
    (tmp_path / "failed.json").write_text("{trunc")  # a corrupt record reads as absent
    assert job.failure() is None
    (tmp_path / "slurm.err").write_text("first\nslurmstepd: error: *** TIME LIMIT ***\n\n")
    assert job.last_line("slurm.err") == "slurmstepd: error: *** TIME LIMIT ***"
    assert job.last_line("missing.log") == ""
    job.write_done({"ended": 1.0})
    assert job.is_done()
    (tmp_path / "cancel").unlink()
    job.request_cancel(by="late")  # nothing to cancel in a DONE job
    assert job.cancel_requested() is None
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_job_dir_lock_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    job = JobDir(tmp_path)
    fd = job.try_lock()
    assert fd is not None
    try:
        assert job.try_lock() is None  # another open of the file: refused while held
    finally:
        os.close(fd)
    again = job.try_lock()  # the kernel let go with the descriptor
    assert again is not None
    os.close(again)
    with pytest.raises(FileNotFoundError):  # no directory: the caller decides
        JobDir(tmp_path / "gone").try_lock()


def test_job_dir_attempts_markers_and_done_record(tmp_path: Path) -> None:
    job = JobDir(tmp_path)
    assert job.done_record() is None and job.failure_mtime() is None
    job.write_params(b"\x80")
    assert job.read_params() == b"\x80"
    (tmp_path / "stdout.log").write_text("attempt 1\n")
    job.write_failure({"state": "interrupted", "kind": "timeout"})
    job.archive_attempt(1, ("stdout.log", "failed.json", "slurm.out"))  # slurm.out: none
    assert (tmp_path / "attempts" / "1" / "stdout.log").read_text() == "attempt 1\n"
    assert not job.has_failure() and job.failure_mtime() is None
    job.write_attempt_failure(1, {"state": "interrupted", "kind": "preempted"})
    assert json.loads((tmp_path / "attempts" / "1" / "failed.json").read_text())["kind"] == (
        "preempted"
    )
    log = job.open_log("stdout.log")
    try:
        os.write(log, b"attempt 2\n")
    finally:
        os.close(log)
    assert (tmp_path / "stdout.log").read_text() == "attempt 2\n"
    job.request_interrupt({"kind": "preempted", "reason": "test"}, durable=False)
    assert job.has_interrupt() and (job.interrupt_requested() or {})["kind"] == "preempted"
    job.request_cancel(by="test")
    assert job.has_cancel() and job.cancelled_since(0.0)
    assert not job.cancelled_since((job.cancel_requested() or {})["time"] + 1.0)  # older
    job.write_progress({"fraction": 0.5})
    job.discard("interrupt", "cancel", "progress.json", "never-written")
    assert not job.has_interrupt() and not job.has_cancel() and job.progress() is None
    job.clear_attempts()
    assert not (tmp_path / "attempts").exists()
    assert job.write_result(b"value") == "result.msgpack"
    job.write_done({"ended": 2.0, "result": "result.msgpack"})
    assert job.done_record() == {"ended": 2.0, "result": "result.msgpack"}
    (tmp_path / "done").write_text("{trunc")  # DONE by its existence: content unreadable
    assert job.done_record() == {}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
