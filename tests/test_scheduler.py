"""The scheduler through the public API: real job processes, real files, asyncio and trio."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import anyio
import pytest
import sniffio
from blockbuster import BlockingError

import legato
from legato import JobState, experiment, tag
from legato._jobdir._files import read_json
from legato._runtime._job import Job
from legato._runtime._resources import Grant, ResourcePool
from legato._runtime._scheduler import Scheduler
from support.waiting import poll
from support.warm_support import job_processes  # noqa: F401 - every test, warm and fresh
from support.xp_tasks import (
    AsyncStep,
    Chatty,
    Evaluate,
    Gather,
    Holder,
    Learn,
    Model,
    Reporter,
    Step,
    events,
)

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_blocking")]


async def test_submit_outside_experiment_raises() -> None:
    with pytest.raises(legato.NoExperimentError):
        await Step(name="a", log="x").submit()


async def test_job_runs_in_its_directory(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path / "wd", "xp") as xp:
        step = Step(name="a", log=log)
        out = await step.submit()
        assert out is step
        job = step.__job__
        assert job.state in (JobState.WAITING, JobState.READY, JobState.RUNNING)
    assert job.state is JobState.DONE
    assert job.path == tmp_path / "wd" / "jobs" / "support.xp_tasks.Step" / job.identifier
    assert job.identifier == step.__identifier__
    assert step.output == job.path / "out.txt" and step.output.read_text() == "a"
    assert (job.path / "done").exists()
    assert (job.path / "stdout.log").read_text() == "hello from a\n"
    (start, _end) = events(tmp_path / "log")
    assert start["cwd"] == str(job.path)
    assert xp.jobs == [job]
    assert legato.load(job.path).__identifier__ == job.identifier


class Watching(legato.LocalLauncher):
    """A LocalLauncher that notes, at each launch, whether the job directory holds a
    state.json and what record the experiment handed the job instead. It overrides
    `launch`, so it is not taken to hand the job its environment as given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, str | None]] = []

    async def launch(self, spec: legato.LaunchSpec) -> legato.Exit:
        state = await anyio.Path(spec.job_dir / "state.json").exists()
        self.seen.append((state, spec.env.get("LEGATO_RUN_STATE")))
        return await super().launch(spec)


class WatchingHanding(Watching):
    """One that says it does (it passes `spec` on whole)."""

    hands_state = True


@pytest.mark.parametrize("hands_state", [True, False])
async def test_a_first_run_writes_state_json_once(tmp_path: Path, hands_state: bool) -> None:
    """A job directory's first run leaves state.json to the job's process when the
    launcher hands it its environment as given: one file written, not one replaced by
    another. A rerun, and any run of a launcher that does not hand it, finds state.json
    written by the experiment. Either way the record is whole."""
    log = str(tmp_path / "log")
    launcher = WatchingHanding() if hands_state else Watching()
    assert legato.LocalLauncher().hands_state
    with pytest.raises(legato.ExperimentFailed):
        async with experiment(tmp_path, "xp", launcher=launcher):
            failing = Step(name="a", log=log, fail="exit")
            await failing.submit()
    assert failing.__job__.state is JobState.FAILED
    first = json.loads((failing.__job__.path / "state.json").read_text())
    async with experiment(tmp_path, "xp", launcher=launcher):
        step = Step(name="a", log=log)
        await step.submit()
    assert step.__job__.state is JobState.DONE
    (handed, at_first), (found, at_rerun) = launcher.seen
    assert handed is not hands_state and found and at_rerun is None
    if hands_state:
        assert at_first is not None and json.loads(at_first)["attempt"] == 1
    else:
        assert at_first is None
    again = json.loads((step.__job__.path / "state.json").read_text())
    for info in (first, again):
        assert {"experiment": "xp", "launcher": "local", "attempt": 1}.items() <= info.items()
        assert {"submitted", "started", "pid", "host", "max_preemptions"} <= info.keys()
    assert first["pid"] != again["pid"] and again["submitted"] > first["submitted"]


class Failing(legato.LocalLauncher):
    """A launcher that hands its jobs their record, whose process never starts: `launch`
    raises, or says the process exited at once (as one killed at its start would)."""

    hands_state = True

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    async def launch(self, spec: legato.LaunchSpec) -> legato.Exit:
        if self.how == "raise":
            raise OSError("no process for this job")
        return legato.Exit(exit_code=1)


@pytest.mark.parametrize("how", ["raise", "exit"])
async def test_a_first_run_whose_process_never_started_keeps_its_state_json(
    tmp_path: Path, how: str
) -> None:
    """The record that the job's process was to write is written beside its failure."""
    with pytest.raises(legato.ExperimentFailed):
        async with experiment(tmp_path, "xp", launcher=Failing(how)):
            step = Step(name="a", log=str(tmp_path / "log"))
            await step.submit()
    assert step.__job__.state is JobState.FAILED
    info = json.loads((step.__job__.path / "state.json").read_text())
    assert {"experiment": "xp", "launcher": "local", "attempt": 1}.items() <= info.items()
    assert "pid" not in info and "submitted" in info
    failure = json.loads((step.__job__.path / "failed.json").read_text())
    assert failure.get("stage") == ("launch" if how == "raise" else None)


async def test_same_identifier_is_one_job_and_done_is_not_rerun(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "xp") as xp:
        first = Step(name="a", log=log)
        await first.submit()
        await Step(name="a", log=log).submit()
    assert len(xp.jobs) == 1
    async with experiment(tmp_path, "again") as xp2:
        again = Step(name="a", log=log)
        await again.submit()
        await poll(lambda: again.__job__.state.final)
        assert again.__job__.state is JobState.DONE
    assert [e["event"] for e in events(tmp_path / "log")] == ["start", "end"]
    assert len(xp2.jobs) == 1


async def test_dependencies_nested_in_lists_dicts_and_configs(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "xp", max_jobs=2):
        a = await Step(name="a", log=log).submit()
        b = await Step(name="b", log=log, inputs=[a]).submit()
        c = await Step(name="c", log=log).submit()
        gather = Gather(holder=Holder(steps={"b": b, "c": c}), log=log)
        await gather.submit()
        assert {d.identifier for d in gather.__job__.dependencies} == {
            b.__job__.identifier,
            c.__job__.identifier,
        }
    order = [(e["event"], e.get("name")) for e in events(tmp_path / "log")]
    assert order.index(("end", "a")) < order.index(("start", "b"))
    assert order[-1] == ("gather", None)


async def test_config_output_carries_dependency_and_tags(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "xp") as xp:
        learn = Learn(model=Model(hidden=tag(32)))
        trained = await learn.submit()
        assert isinstance(trained, legato.Config) and trained.weights == learn.weights
        evaluate = Evaluate(trained=trained, log=log)
        await evaluate.submit()
        assert evaluate.__job__.dependencies == [learn.__job__]
        assert evaluate.__job__.tags == {"hidden": 32}
    (event,) = events(tmp_path / "log")
    assert event["weights"] == "32" and event["tags"] == {"hidden": 32}
    assert {j.state for j in xp.jobs} == {JobState.DONE}


async def test_failure_propagates_and_independent_jobs_go_on(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    with pytest.raises(legato.ExperimentFailed) as info:
        async with experiment(tmp_path, "xp", max_jobs=2):
            bad = await Step(name="bad", log=log, fail="raise").submit()
            after = Step(name="after", log=log, inputs=[bad])
            await after.submit()
            ok = Step(name="ok", log=log)
            await ok.submit()
            with pytest.raises(legato.JobFailed, match="step bad failed on purpose"):
                await bad.__job__.wait()
    assert bad.__job__.state is JobState.FAILED
    assert after.__job__.state is JobState.DEPENDENCY_FAILED
    assert ok.__job__.state is JobState.DONE
    message = str(info.value)
    assert "step bad failed on purpose" in message
    assert str(bad.__job__.stderr_path) in message
    assert "ValueError" in bad.__job__.stderr_path.read_text()
    assert not (bad.__job__.path / "done").exists()
    # the skipped job never ran: its error log is the failed dependency's
    assert after.__job__.error_log == bad.__job__.stderr_path
    assert str(after.__job__.stderr_path) not in message
    # FAILED on disk runs again
    async with experiment(tmp_path, "xp", raise_on_failure=False):
        again = Step(name="bad", log=log, fail="raise")
        await again.submit()
    assert [e["name"] for e in events(tmp_path / "log") if e["event"] == "start"].count("bad") == 2


async def test_skipped_job_points_at_the_log_of_the_first_failure_up_the_chain(
    tmp_path: Path,
) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "xp", raise_on_failure=False):
        bad = await Step(name="bad", log=log, fail="raise").submit()
        middle = await Step(name="middle", log=log, inputs=[bad]).submit()
        last = Step(name="last", log=log, inputs=[middle])
        await last.submit()
        with pytest.raises(legato.JobFailed) as info:
            await last.__job__.wait()
    assert last.__job__.state is JobState.DEPENDENCY_FAILED
    assert last.__job__.error_log == bad.__job__.stderr_path
    assert str(bad.__job__.stderr_path) in str(info.value)
    assert bad.__job__.error_log == bad.__job__.stderr_path


@pytest.mark.parametrize(
    ("fail", "reason"),
    [("exit", "code 3"), ("kill", "SIGKILL"), ("exit0", "exited with code 0 without a verdict")],
)
async def test_exit_code_and_signal_are_failures(tmp_path: Path, fail: str, reason: str) -> None:
    async with experiment(tmp_path, "xp", raise_on_failure=False):
        step = Step(name="x", log=str(tmp_path / "log"), fail=fail)
        await step.submit()
    assert step.__job__.state is JobState.FAILED
    assert reason in (step.__job__.failure_reason or "")
    assert not (step.__job__.path / "done").exists()


async def test_a_job_process_ends_as_an_interpreter_does(tmp_path: Path) -> None:
    from support.xp_tasks import AfterLeaving, Leaving

    # A warm job ends with `os._exit`, as any forked process: it must first do what a
    # fresh interpreter does on its way out, before its dependents start.
    log = tmp_path / "log"
    async with experiment(tmp_path / "wd", "xp") as xp:
        left = await Leaving(log=str(log)).submit()
        await AfterLeaving(log=str(log), after=left).submit()
    assert [j.state for j in xp.jobs] == [JobState.DONE] * 2
    (dependent,) = [e for e in events(log) if e["event"] == "dependent"]
    assert sorted(dependent["seen"]) == ["atexit", "pool", "pool", "thread"]
    assert (left.__job__.path / "stdout.log").read_text() == "printed by C\n"


async def test_async_execute(tmp_path: Path) -> None:
    async with experiment(tmp_path, "xp"):
        await AsyncStep(value=3, log=str(tmp_path / "log")).submit()
    assert events(tmp_path / "log")[0]["value"] == 3


async def test_progress_reaches_the_experiment(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with experiment(tmp_path, "xp"):
        task = Reporter(gate=str(gate))
        await task.submit()
        job = task.__job__
        await poll(lambda: job.progress == 0.5)
        assert job.progress_desc == "halfway"
        assert job.state is JobState.RUNNING
        gate.touch()
    assert job.progress == 1.0


async def test_every_progress_report_arrives_before_the_verdict(tmp_path: Path) -> None:
    """More reports than a channel queues before its reader wakes, written as the job
    starts and just before it ends: none is lost, cut, or taken for the launcher's own."""
    async with experiment(tmp_path, "xp"):
        task = Chatty(reports=50)
        await task.submit()
        job = task.__job__
    assert job.state is JobState.DONE
    assert job.progress == 1.0
    assert job.progress_desc == "done " + "x" * 20_000


async def test_xp_wait_and_several_experiments_at_once(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path / "one", "a") as a, experiment(tmp_path / "two", "b") as b:
        s1 = Step(name="1", log=log)
        await a.submit(s1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(b.submit, Step(name="2", log=log))  # concurrent submits
            tg.start_soon(Step(name="3", log=log).submit)  # the innermost experiment: b
        await a.wait()
        assert s1.__job__.state is JobState.DONE
        await b.wait()
        assert [j.state for j in b.jobs] == [JobState.DONE] * 2
    assert s1.__job__.path.is_relative_to(tmp_path / "one")


async def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name"):
        async with experiment(tmp_path, "a/b"):
            pass
    with pytest.raises(legato.ResourceError, match="max_jobs"):
        async with experiment(tmp_path, "xp", max_jobs=0):
            pass
    async with experiment(tmp_path, "xp") as xp:
        with pytest.raises(TypeError, match="Task"):
            await xp.submit(Model())  # type: ignore[arg-type]


def running_tasks() -> int:
    """Tasks alive in the current event loop."""
    if sniffio.current_async_library() == "asyncio":
        return len(asyncio.all_tasks())
    import trio

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    return count(trio.lowlevel.current_root_task())


async def test_waiting_jobs_hold_no_task_and_end_cancelled(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    with anyio.CancelScope() as scope:
        async with experiment(tmp_path, "xp", max_jobs=1):
            steps = [Step(name=str(i), log=log, gate=str(tmp_path / "never")) for i in range(300)]
            for step in steps:
                await step.submit()
            await poll(lambda: len(events(tmp_path / "log")) == 1)
            assert running_tasks() < 20  # one job runs; 299 wait without a task each
            scope.cancel()
    assert {s.__job__.state for s in steps} == {JobState.CANCELLED}


async def test_a_failure_skips_a_long_chain_at_once(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    async with experiment(tmp_path, "xp", raise_on_failure=False) as xp:
        previous = await Step(name="bad", log=log, fail="raise").submit()
        for i in range(2000):  # far deeper than the recursion limit
            previous = await Step(name=str(i), log=log, inputs=[previous]).submit()
    states = [job.state for job in xp.jobs]
    assert states == [JobState.FAILED] + [JobState.DEPENDENCY_FAILED] * 2000
    assert [e["name"] for e in events(tmp_path / "log")] == ["bad"]
    assert xp.jobs[-1].error_log == xp.jobs[0].stderr_path


# ---- the line of READY jobs (`_scheduler.py`), without processes --------------------------


def line(resources: dict[str, int], *requires: dict[str, int]) -> tuple[Scheduler, list[Job]]:
    pool = ResourcePool(2, resources)
    jobs = []
    for i, req in enumerate(requires):
        job = Job(Step(name=str(i), log=""), f"{i:064x}", Path(str(i)), [], req, None)
        job._amounts = pool.check(req)
        jobs.append(job)
    return Scheduler(pool, lambda job, grant: started.append((job, grant)), lambda job: None), jobs


started: list[tuple[Job, Grant]] = []


def test_first_fit_in_submission_order() -> None:
    started.clear()
    sched, (a, b, c, d) = line({"gpu": 1}, {"gpu": 1}, {"gpu": 1}, {}, {})
    for job in (a, b, c, d):
        sched.add(job)
    sched.settle()
    # a holds the GPU; b waits for it without holding back c; two slots: d waits
    assert [job for job, _ in started] == [a, c]
    assert [job.state for job in (a, b, c, d)] == [JobState.READY] * 4
    sched.release(started[0][1])
    assert [job for job, _ in started] == [a, c, b]  # the GPU and a slot: b, first in line
    sched.release(started[0][1])  # a second release of the same grant changes nothing
    assert [job for job, _ in started] == [a, c, b]
    sched.release(started[1][1])
    assert [job for job, _ in started] == [a, c, b, d]


def test_requeued_job_is_first_in_line_and_stop_starts_nothing() -> None:
    started.clear()
    sched, (a, b, c) = line({}, {}, {}, {})
    for job in (a, b, c):
        sched.add(job)
    sched.settle()
    assert [job for job, _ in started] == [a, b]
    sched.requeue(a)  # its run elsewhere died: it runs here, before c
    sched.release(started[0][1])
    assert [job for job, _ in started] == [a, b, a]
    sched.stop()
    sched.release(started[1][1])
    assert [job for job, _ in started] == [a, b, a]


def test_dependents_wait_for_every_dependency() -> None:
    started.clear()
    sched, (a, b, c) = line({}, {}, {}, {})
    c.dependencies = [a, b]
    for job in (a, b, c):
        sched.add(job)
    sched.settle()
    assert [job for job, _ in started] == [a, b] and c.state is JobState.WAITING
    a._finish(JobState.DONE)
    assert c.state is JobState.WAITING
    b._finish(JobState.FAILED, "boom")
    assert c.state is JobState.DEPENDENCY_FAILED and c._cause is b


async def test_a_blocking_call_of_legato_on_the_loop_fails_the_test(
    anyio_backend: str, tmp_path: Path
) -> None:
    """The check behind `no_blocking` (used by this module) is live: legato's file I/O on
    the loop's thread raises."""
    if anyio_backend != "asyncio":
        pytest.skip("blockbuster sees asyncio's loop only")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(BlockingError, match="Blocking call"):
        read_json(tmp_path / "x.json")
    assert await anyio.to_thread.run_sync(read_json, tmp_path / "x.json") == {}
