"""Warm job processes: jobs forked from the experiment's server, which imported their
modules once, behave as fresh processes do and never see each other's traces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from legato import JobState, LocalLauncher, experiment
from support.cli import alive
from support.waiting import lock_is_free, poll, wait_until
from support.warm_tasks import Probe
from support.xp_tasks import events

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="fork, /proc"),
]


def starts(log: Path) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in events(log) if e["event"] == "start"]


async def test_jobs_are_forked_from_one_server_that_imported_their_module(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    async with experiment(
        tmp_path / "wd", "xp", max_jobs=2, launcher=LocalLauncher(warm=True)
    ) as xp:
        for i in range(4):
            await Probe(name=str(i), log=str(log)).submit()
    assert [j.state for j in xp.jobs] == [JobState.DONE] * 4
    seen = starts(log)
    servers = {e["ppid"] for e in seen}
    assert len(servers) == 1 and os.getpid() not in servers
    # the module was imported once, by the server, not by each job
    assert all(e["imported_by"] == e["ppid"] != e["pid"] for e in seen)
    assert len({e["pid"] for e in seen}) == 4
    # each job leads its own process group, as a fresh one does
    assert all(e["pgid"] == e["pid"] for e in seen)
    # it ends with the experiment, and so does every process it forked (its jobs, and the
    # one it forks ahead for the next job)
    await poll(lambda: not server_family(), timeout=20)


async def test_warm_false_starts_fresh_processes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "xp", launcher=LocalLauncher(warm=False)):
        await Probe(name="a", log=str(log)).submit()
    (start,) = starts(log)
    assert start["ppid"] == os.getpid()
    assert start["imported_by"] == start["pid"]


async def test_a_job_never_sees_what_another_did(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "xp", max_jobs=1, launcher=LocalLauncher(warm=True)):
        first = await Probe(name="first", log=str(log)).submit()
        second = await Probe(name="second", log=str(log), after=first).submit()
    a, b = starts(log)
    assert a["ppid"] == b["ppid"] != os.getpid()  # both warm, from one server
    # module globals, environment, working directory, open files: as the first found them
    assert a["counter"] == b["counter"] == 1
    assert a["env"] is None and b["env"] is None
    assert (a["cwd"], b["cwd"]) == (str(first.__job__.path), str(second.__job__.path))
    # as `python -m legato._jobside._worker JOB_DIR` started in the job directory would have them
    assert a["argv"][1:] == [str(first.__job__.path)] and a["argv"][0].endswith("_worker.py")
    assert (a["path0"], b["path0"]) == (a["cwd"], b["cwd"])
    assert len(a["fds"]) == len(b["fds"])


async def test_a_job_of_a_module_new_to_the_server_runs_with_it_imported(
    tmp_path: Path,
) -> None:
    from support.warm_other import Other

    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "xp", max_jobs=1, launcher=LocalLauncher(warm=True)):
        a = await Probe(name="a", log=str(log)).submit()
        b = await Other(name="b", log=str(log), after=a).submit()
        await Probe(name="c", log=str(log), after=b).submit()
    seen = starts(log)
    assert [e["name"] for e in seen] == ["a", "b", "c"]
    (server,) = {e["ppid"] for e in seen}
    # every job found its module imported by the server: none was forked before the
    # server imported `warm_other`, and none imported it again
    assert all(e["imported_by"] == server != e["pid"] for e in seen)


async def test_no_process_holds_the_lock_of_a_job_that_ended(tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "xp", max_jobs=1, launcher=LocalLauncher(warm=True)):
        for name in ("a", "b", "c"):
            task = await Probe(name=name, log=str(log)).submit()
            await task.__job__.wait()
            # DONE once its process says `done` is written; the lock goes with the
            # process a moment later, and none keeps it: not the server, not the next
            # job's process forked ahead, not the experiment
            await poll(lambda: lock_is_free(task.__job__.path))


async def test_dependents_start_once_the_job_is_done_not_once_its_leftovers_are_gone(
    tmp_path: Path,
) -> None:
    from support.warm_tasks import Leaver, Witness

    log = str(tmp_path / "log")
    launcher = LocalLauncher(warm=True, grace_period=5.0)
    started = time.monotonic()
    async with experiment(tmp_path / "wd", "xp", max_jobs=2, launcher=launcher) as xp:
        left = await Leaver(log=log).submit()
        await Witness(log=log, after=left).submit()
    assert [j.state for j in xp.jobs] == [JobState.DONE] * 2
    (witness,) = [e for e in events(Path(log)) if e["event"] == "witness"]
    # the dependent ran while the experiment still waited to end the first job's leftover
    assert witness["child_alive"]
    # which it ended (SIGKILL after the grace period) before the block returned, and the
    # lock with it
    (leftover,) = [e for e in events(Path(log)) if e["event"] == "left"]
    assert not alive(leftover["child"])
    assert lock_is_free(left.__job__.path)
    assert time.monotonic() - started >= 5.0


@pytest.mark.parametrize("requires", [{}, {"mem_gb": 1}])
async def test_a_done_job_gives_its_slot_back_before_its_process_is_gone(
    tmp_path: Path, requires: dict[str, int]
) -> None:
    from support.warm_tasks import Leaver, Witness

    log = str(tmp_path / "log")
    launcher = LocalLauncher(warm=True, grace_period=5.0)
    async with experiment(
        tmp_path / "wd", "xp", max_jobs=1, resources={"mem_gb": 1}, launcher=launcher
    ) as xp:
        await Leaver(log=log).submit(requires=requires)  # holds its leftover 5 s more
        await Witness(log=log, after=None).submit(requires=requires)
    assert [j.state for j in xp.jobs] == [JobState.DONE] * 2
    (witness,) = [e for e in events(Path(log)) if e["event"] == "witness"]
    # one slot: the second job started while the first one's leftover was being ended,
    # unless the first held a resource, which is free only once all of it is gone
    assert witness["child_alive"] is not bool(requires)


async def test_environment_is_the_experiments_with_each_jobs_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    monkeypatch.setenv("WARM_TEST_XP", "set by the experiment")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    warm = LocalLauncher(warm=True)
    async with experiment(
        tmp_path / "wd", "xp", max_jobs=2, resources={"gpu": 3}, launcher=warm
    ) as xp:
        first = await Probe(name="first", log=str(log)).submit(requires={"gpu": 1})
        await first.__job__.wait()
        await Probe(name="second", log=str(log)).submit(requires={"gpu": 3})
    assert [j.state for j in xp.jobs] == [JobState.DONE] * 2
    a, b = starts(log)
    assert a["ppid"] == b["ppid"] != os.getpid()
    assert a["set_by_xp"] == b["set_by_xp"] == "set by the experiment"
    assert a["cuda"] == "0" and b["cuda"] == "0,1,2"


async def test_a_module_that_starts_threads_runs_fresh_with_one_warning(
    tmp_path: Path,
) -> None:
    from support.warm_threads import Threaded

    log = tmp_path / "log"
    with pytest.warns(RuntimeWarning, match="warm_threads.*threads at import") as caught:
        async with experiment(
            tmp_path / "wd", "xp", max_jobs=1, launcher=LocalLauncher(warm=True)
        ) as xp:
            for i in range(3):
                await Threaded(name=str(i), log=str(log)).submit()
            await Probe(name="warm", log=str(log)).submit()
    assert [j.state for j in xp.jobs] == [JobState.DONE] * 4
    assert len([w for w in caught if "warm_threads" in str(w.message)]) == 1
    seen = starts(log)
    threaded = [e for e in seen if e["name"] != "warm"]
    assert all(e["imported_by"] == e["pid"] and e["ppid"] == os.getpid() for e in threaded)
    (probe,) = [e for e in seen if e["name"] == "warm"]
    assert probe["imported_by"] == probe["ppid"] != os.getpid()  # others stay warm


async def test_a_server_that_dies_is_restarted_and_its_jobs_run_again(tmp_path: Path) -> None:
    log = tmp_path / "log"
    gate = tmp_path / "gate"
    async with experiment(
        tmp_path / "wd", "xp", max_jobs=2, launcher=LocalLauncher(warm=True)
    ) as xp:
        await Probe(name="a", log=str(log), gate=str(gate)).submit()
        await poll(lambda: len(starts(log)) == 1)
        (first,) = starts(log)
        server_env = anyio.Path(f"/proc/{first['ppid']}/environ")
        if await server_env.exists():  # the record of the job that started it is not its own
            assert b"LEGATO_RUN_STATE" not in await server_env.read_bytes()
        os.kill(first["ppid"], signal.SIGKILL)  # the server
        await poll(lambda: len(starts(log)) == 2)
        gate.touch()
    (job,) = xp.jobs
    assert job.state is JobState.DONE
    a, b = starts(log)
    assert a["ppid"] != b["ppid"] and b["ppid"] != os.getpid()
    assert not alive(a["pid"])
    # The run that died is an attempt, whose logs are kept: the one after it is the second.
    state = json.loads((job.path / "state.json").read_text())
    assert (state["attempt"], state["preempted"], state["pid"]) == (2, 1, b["pid"])
    assert (job.path / "attempts" / "1" / "stderr.log").exists()
    assert a["run_state"] is None and b["run_state"] is None  # not the task's to see


async def test_two_experiments_in_one_process_have_a_server_each(tmp_path: Path) -> None:
    log = tmp_path / "log"

    async def one(name: str) -> None:
        async with experiment(tmp_path / name, name, launcher=LocalLauncher(warm=True)):
            await Probe(name=name, log=str(log)).submit()

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "x")
        tg.start_soon(one, "y")
    a, b = starts(log)
    assert a["ppid"] != b["ppid"] and os.getpid() not in (a["ppid"], b["ppid"])
    await poll(lambda: not alive(a["ppid"]) and not alive(b["ppid"]), timeout=20)


SCRIPT = textwrap.dedent(
    """
    import sys
    import anyio
    from legato import experiment
    from support.warm_tasks import Probe

    async def main():
        async with experiment(sys.argv[1], "xp", max_jobs=2):
            for i in range(2):
                await Probe(name=str(i), log=sys.argv[2], gate=sys.argv[3]).submit()

    anyio.run(main)
    """
)  # the default launcher: warm unless LEGATO_WARM=0


def test_kill_9_of_the_experiment_ends_the_server_and_its_jobs(tmp_path: Path) -> None:
    script = tmp_path / "xp.py"
    script.write_text(SCRIPT)
    log = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    env["LEGATO_WARM"] = "1"
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "wd"), str(log), str(tmp_path / "gate")],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while len(starts(log)) < 2:
            assert time.monotonic() < deadline, "jobs did not start"
            time.sleep(0.02)
        seen = starts(log)
        assert {e["ppid"] for e in seen} != {process.pid}
        server = seen[0]["ppid"]
        # its jobs, and the process it forks ahead for the next job
        pids = [server, *children(server)]
        assert {e["pid"] for e in seen} < set(pids)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 20
        while any(alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "a job or the server outlived the experiment"
            time.sleep(0.02)
    finally:
        process.kill()
        process.wait()


async def test_each_job_draws_its_own_random_numbers(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    from support.warm_numpy import Draw

    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "xp", launcher=LocalLauncher(warm=True)):
        for i in range(3):
            await Draw(index=i, log=str(log)).submit()
    draws = events(log)
    assert len({e["ppid"] for e in draws}) == 1  # from one server
    assert len({e["python"] for e in draws}) == 3
    assert len({e["numpy"] for e in draws}) == 3


async def test_cancelled_while_the_server_imports_the_job_never_runs_on(tmp_path: Path) -> None:
    from support.warm_slow import SlowStart

    log, gate = tmp_path / "log", tmp_path / "never"
    with anyio.CancelScope() as scope:
        async with experiment(tmp_path / "wd", "xp", launcher=LocalLauncher(warm=True)) as xp:
            task = SlowStart(name="a", log=str(log), gate=str(gate))
            await task.submit()
            await poll(lambda: bool(warm_servers()))
            await poll(lambda: (task.__job__.path / "params.msgpack").exists())
            scope.cancel()  # the request is out; the server is still importing warm_slow
    (job,) = xp.jobs
    assert job.state is JobState.CANCELLED
    assert lock_is_free(job.path)
    record = json.loads((job.path / "failed.json").read_text())
    assert record["state"] == "cancelled", record
    assert all(not alive(e["pid"]) for e in starts(log))


def warm_servers() -> list[int]:
    """The warm servers this process started."""
    return children(os.getpid(), b"legato._jobside._warm_server")


def server_family() -> list[int]:
    """The warm servers of this process and whatever they forked (a fork keeps the
    server's command line, which names this process)."""
    ours = b"\0%d\0" % os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            continue
        if b"legato._jobside._warm_server" in cmdline and ours in cmdline and alive(int(entry)):
            found.append(int(entry))
    return found


def children(parent: int, command: bytes = b"") -> list[int]:
    """The live child processes of `parent` whose command line holds `command`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().split(")")[-1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if ppid == parent and command in cmdline:
            found.append(int(entry))
    return found


def fast_dir(tmp_path: Path) -> Path:
    """A directory in memory when the machine has one: there a trivial job is done within
    a few hundred microseconds of being handed over, as fast as on a local SSD."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        import tempfile

        return Path(tempfile.mkdtemp(dir=shm, prefix="legato-test-"))
    return tmp_path


async def test_a_job_done_before_its_server_says_it_started_is_done(tmp_path: Path) -> None:
    import shutil

    from support.warm_tasks import Quick

    # A trivial job runs as soon as its process has it, and can say it is done (`E`)
    # before its server's word that it started (`P`) reaches the experiment. Each job
    # here races its server so; every one must still end DONE.
    wd = fast_dir(tmp_path)
    try:
        async with experiment(wd, "xp", max_jobs=2, launcher=LocalLauncher(warm=True)) as xp:
            for i in range(300):
                await Quick(index=i).submit()
        assert xp.counts()["done"] == 300, [j.failure for j in xp.jobs if j.failure]
    finally:
        if wd != tmp_path:
            shutil.rmtree(wd, ignore_errors=True)


async def test_many_jobs_at_once_while_the_server_imports_all_run(tmp_path: Path) -> None:
    from support.warm_slow import SlowModuleQuick

    # The server imports the module for a second, while a hundred requests with long
    # job directories fill its socket: each waits its turn to be sent, none fails.
    wd = tmp_path.joinpath(*["d" * 200] * 8)
    async with experiment(wd, "xp", max_jobs=100, launcher=LocalLauncher(warm=True)) as xp:
        for i in range(100):
            await SlowModuleQuick(index=i).submit()
    assert xp.counts()["done"] == 100, [j.failure for j in xp.jobs if j.failure]


async def test_a_server_that_dies_ends_what_its_jobs_left_before_they_run_again(
    tmp_path: Path,
) -> None:
    from support.warm_tasks import Orphaner

    log = tmp_path / "log"
    launcher = LocalLauncher(warm=True, grace_period=1.0)
    with anyio.fail_after(60):  # the leftover lives 300 s: the experiment must not wait
        async with experiment(tmp_path / "wd", "xp", max_jobs=1, launcher=launcher) as xp:
            await Orphaner(log=str(log), gate=str(tmp_path / "gate")).submit()
            await poll(lambda: any(e["event"] == "left" for e in events(log)))
            (left,) = [e for e in events(log) if e["event"] == "left"]
            os.kill(left["server"], signal.SIGKILL)
    assert [j.state for j in xp.jobs] == [JobState.DONE]
    # the job's own process died with its server; the child it left in its group was
    # ended before the job ran again, as a fresh job's would be
    (rerun,) = [e for e in events(log) if e["event"] == "rerun"]
    assert not rerun["child_alive"]


@pytest.mark.parametrize("refused", ["alternate", "all"])
async def test_a_server_that_cannot_fork_loses_no_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    # The kernel refuses every second fork of the server, those of its spares (each job
    # is forked when it comes), or all of them (the jobs run as fresh processes).
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "support" / "failfork"))
    monkeypatch.setenv("LEGATO_TEST_FAILFORK", refused)
    log = tmp_path / "log"
    with anyio.fail_after(60):
        async with experiment(
            tmp_path / "wd", "xp", max_jobs=1, launcher=LocalLauncher(warm=True)
        ) as xp:
            for name in ("a", "b", "c"):
                await Probe(name=name, log=str(log)).submit()
    assert [j.state for j in xp.jobs] == [JobState.DONE] * 3
    seen = starts(log)
    assert sorted(e["name"] for e in seen) == ["a", "b", "c"]  # each ran once
    if refused == "alternate":  # one server forked them all: its failed spares did not end it
        assert len({e["ppid"] for e in seen}) == 1 and seen[0]["ppid"] != os.getpid()
    else:  # each job was sent to three servers, then run as a fresh process
        assert all(e["ppid"] == os.getpid() for e in seen)


async def test_a_request_waiting_on_a_server_that_is_retired_goes_to_the_next() -> None:
    import socket

    from legato._launchers._warm import _Gone, _Server

    # The request waits for room on a server's full socket when another job learns that
    # the server no longer forks (`R`) and retires it: the request must not wait for ever,
    # it is told the server is gone, and the job goes to the next server.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    server = _Server(process=None, ctrl=ours, env={})  # type: ignore[arg-type]
    with pytest.raises(BlockingIOError):
        while True:
            socket.send_fds(ours, [b"x" * 300], [])
    told = []

    async def request() -> None:
        with pytest.raises(_Gone):
            await server.request(b"x" * 300, [])
        told.append(True)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(3):  # one waits for room, two for their turn
                tg.start_soon(request)
            await anyio.wait_all_tasks_blocked()
            server.retire()
    assert told == [True] * 3
    theirs.close()


SERVER_DIES_BEFORE_ITS_JOB_STARTS = """
import os, socket, sys
from legato._jobside._warm_job import become_job

job = sys.argv[1]
go, wait = os.pipe()
server = os.fork()
if server == 0:  # plays the warm server: forks the job's process, then dies
    request = {"unset": [], "env": {}, "job_dir": job, "real_dir": job, "server": os.getpid()}
    if os.fork() == 0:
        os.close(wait)
        os.read(go, 1)  # returns once the server is gone
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        os._exit(become_job(request, theirs, []))
    os._exit(0)
os.waitpid(server, 0)
os.close(go)
os.close(wait)
"""


def test_a_job_whose_server_died_before_it_started_does_not_run(tmp_path: Path) -> None:
    from support.warm_tasks import Quick

    # The experiment was killed, and its server with it, just after the server forked a
    # job: the job's process must see that its parent is gone (a job that took init for
    # its parent would run on, unwatched, after its experiment was killed).
    async def prepare() -> Path:
        async with experiment(tmp_path / "wd", "xp", launcher=LocalLauncher(warm=False)):
            task = await Quick(index=1).submit()
        return task.__job__.path

    job = anyio.run(prepare)
    (job / "done").unlink()
    (job / "state.json").unlink()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = [sys.executable, "-c", SERVER_DIES_BEFORE_ITS_JOB_STARTS, str(job)]
    subprocess.run(code, env=env, check=True, timeout=60)
    verdicts = (job / "failed.json", job / "done")
    wait_until(lambda: any(v.exists() for v in verdicts), 30, "the job's verdict")
    assert not (job / "done").exists()
    failure = json.loads((job / "failed.json").read_text())
    assert "ended before the job started" in failure["reason"]


async def test_what_a_module_made_when_the_server_imported_it_outlives_each_job(
    tmp_path: Path,
) -> None:
    from support.warm_scratch import UsesScratch

    # A temporary directory made at import is the server's, made once for its jobs: a
    # job's way out (its atexit functions, its finalizers) must not remove it.
    async with experiment(
        tmp_path / "wd", "xp", max_jobs=1, launcher=LocalLauncher(warm=True)
    ) as xp:
        for i in range(3):
            await UsesScratch(index=i).submit()
    assert [j.state for j in xp.jobs] == [JobState.DONE] * 3


async def test_a_job_whose_server_dies_on_its_way_out_is_not_run_again(tmp_path: Path) -> None:
    from support.warm_tasks import SlowExit

    # Its `done` is written; its server dies while it runs its exit functions, before it
    # could say it is done; it is killed a grace period later. It is DONE: not run again.
    log, gate = tmp_path / "log", tmp_path / "gate"
    launcher = LocalLauncher(warm=True, grace_period=1.0)
    with anyio.fail_after(60):
        async with experiment(tmp_path / "wd", "xp", launcher=launcher) as xp:
            task = await SlowExit(log=str(log), gate=str(gate)).submit()
            await poll(lambda: any(e["event"] == "exiting" for e in events(log)))
            os.kill(events(log)[0]["server"], signal.SIGKILL)
            ran_again = lambda: [e["event"] for e in events(log)].count("run") > 1  # noqa: E731
            await poll(lambda: task.__job__.state is JobState.DONE or ran_again())
            gate.touch()  # a run again, if any, may end
    assert [j.state for j in xp.jobs] == [JobState.DONE]
    assert [e["event"] for e in events(log)] == ["run", "exiting"]


async def test_exit_functions_a_module_registered_run_in_each_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.warm_exit_hook import Hooked

    log = tmp_path / "log"
    monkeypatch.setenv("LEGATO_TEST_EXIT_LOG", str(log))
    async with experiment(tmp_path / "wd", "xp", launcher=LocalLauncher(warm=True)) as xp:
        task = await Hooked(log=str(log)).submit()
        await task.__job__.wait()
        (run,) = [e for e in events(log) if e["event"] == "run"]
        # registered once, when the server imported the module; run by the job as it ended
        assert {"event": "exit function", "pid": run["pid"]} in [
            {"event": e["event"], "pid": e["pid"]} for e in events(log)
        ]
    assert [j.state for j in xp.jobs] == [JobState.DONE]
