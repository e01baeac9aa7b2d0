"""@cache (docs/how-to/cache.md): one computation per path across coroutines, threads and
processes, an
event loop that keeps running while a coroutine waits, and locks that never leak."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest

from legato import Config, Param, cache, experiment
from legato import _cache as cache_module
from legato._core._identity import current_workdir
from support.cache import UseValue, Value
from support.waiting import poll

pytestmark = pytest.mark.anyio

CHILD = """\
import json, sys
from pathlib import Path
import anyio
from support.cache import Value, wait_for_file

mode, key = sys.argv[1], sys.argv[2]
if mode == "hold":  # hold the lock until the test creates the release file
    held, release = sys.argv[3:5]
    Value(key=key).hold(held, release)
else:  # "compute": coroutines and worker threads call at once, after the go signal
    log, ready, go, out, backend = sys.argv[3:8]

    async def main() -> None:
        value = Value(key=key, log=log, delay=0.2)
        results = []

        async def call_async() -> None:
            results.append(await value.get())

        async def call_sync() -> None:
            results.append(await anyio.to_thread.run_sync(value.get_sync))

        Path(ready).touch()
        await anyio.to_thread.run_sync(wait_for_file, go)
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(call_async)
            for _ in range(2):
                tg.start_soon(call_sync)
        Path(out).write_text(json.dumps(results))

    anyio.run(main, backend=backend)
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workdir of these tests, through $LEGATO_WORKDIR (inherited by helper processes)."""
    wd = tmp_path / "wd"
    monkeypatch.setenv("LEGATO_WORKDIR", str(wd))
    assert current_workdir.get() is None
    return wd


@pytest.fixture
def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
    return env


@pytest.fixture(autouse=True)
def no_lock_left() -> object:
    yield
    assert cache_module._slots == {}, "an in-process lock was left behind"


def lock_is_free(value: Value, name: str = "value.txt") -> bool:
    """Whether another open file description can take the lock file's flock now."""
    _path, key = cache_module._target(value, name)
    fd = os.open(key, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def slot_of(value: Value) -> cache_module._Slot:
    return cache_module._slots[cache_module._target(value, "value.txt")[1]]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Holder:
    """A helper process holding the lock of `Value(key=key)` until `release()`."""

    def __init__(self, tmp_path: Path, key: str, env: dict[str, str]) -> None:
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        self.held = tmp_path / f"held-{key}"
        self.release_file = tmp_path / f"release-{key}"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "hold", key, str(self.held), str(self.release_file)],
            env=env,
        )

    async def wait_held(self) -> None:
        await poll(lambda: self.held.exists() or self.proc.poll() is not None)
        assert self.proc.poll() is None, "the holder process died"

    def release(self) -> None:
        self.release_file.touch()

    def close(self) -> None:
        self.release()
        try:
            assert self.proc.wait(timeout=30) == 0
        finally:
            self.proc.kill()


# ---- one computation per path ----------------------------------------------------------


async def test_four_processes_of_coroutines_and_threads_compute_once(
    tmp_path: Path, workdir: Path, child_env: dict[str, str], anyio_backend: str
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    log, go = tmp_path / "computations", tmp_path / "go"
    procs, outs = [], []
    for i in range(4):
        out = tmp_path / f"out-{i}.json"
        outs.append(out)
        args = ["compute", "shared", str(log), str(tmp_path / f"ready-{i}"), str(go), str(out)]
        command = [sys.executable, str(script), *args, anyio_backend]
        procs.append(await anyio.open_process(command, env=child_env, stdout=None, stderr=None))
    try:
        await poll(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(4)), 60)
        go.touch()
        with anyio.fail_after(60):
            for proc in procs:
                assert await proc.wait() == 0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
    assert len(log.read_text().splitlines()) == 1
    results = [json.loads(out.read_text()) for out in outs]
    assert results == [["shared"] * 7] * 4
    value = Value(key="shared")
    path = workdir / "cache" / "tests.cache.Value" / value.__identifier__ / "value.txt"
    assert path.read_text() == "shared"
    assert sorted(p.name for p in path.parent.iterdir()) == [".value.txt.lock", "value.txt"]


def test_threads_compute_once(workdir: Path, tmp_path: Path) -> None:
    log = tmp_path / "computations"
    value = Value(key="t", log=str(log), delay=0.05)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: value.get_sync(), range(16)))
    assert results == ["t"] * 16
    assert len(log.read_text().splitlines()) == 1


def test_coroutines_of_two_loops_in_two_threads_compute_once(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiters are woken through their own loop: none relies on the safety re-check."""
    monkeypatch.setattr(cache_module, "_REWAIT", 60.0)
    log = tmp_path / "computations"
    value = Value(key="loops", log=str(log), delay=0.05)
    results: list[str] = []
    errors: list[BaseException] = []

    async def many() -> None:
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(lambda: _append(results, value.get()))

    def run(backend: str) -> None:
        try:
            anyio.run(many, backend=backend)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in ("asyncio", "trio")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == ["loops"] * 20
    assert len(log.read_text().splitlines()) == 1


async def _append(results: list[str], call: object) -> None:
    results.append(await call)  # type: ignore[misc]


async def test_in_a_job_process_and_in_the_experiment_process(tmp_path: Path) -> None:
    wd = tmp_path / "runs"
    log = tmp_path / "computations"
    async with experiment(wd, "xp") as xp:
        task = UseValue(value=Value(key="job", log=str(log)))
        await task.submit()
        here = await Value(key="experiment").other()
    ident = Value(key="experiment").__identifier__
    assert here == wd / "cache" / "tests.cache.Value" / ident / "other.txt"
    assert here.parent.is_dir()
    job = xp.jobs[0]
    assert (job.path / "stdout.log").read_text() == "job\n"
    value = Value(key="job")
    assert (wd / "cache" / "tests.cache.Value" / value.__identifier__ / "value.txt").exists()
    assert len(log.read_text().splitlines()) == 1


# ---- the event loop runs while a coroutine waits ---------------------------------------


async def test_loop_keeps_ticking_while_waiting_for_another_process(
    tmp_path: Path, workdir: Path, child_env: dict[str, str]
) -> None:
    holder = Holder(tmp_path, "busy", child_env)
    try:
        await holder.wait_held()
        gaps: list[float] = []
        got: list[str] = []
        done = anyio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await anyio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        async def waiter() -> None:
            got.append(await Value(key="busy").get())
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            tg.start_soon(waiter)
            await poll(lambda: len(gaps) >= 30)  # 0.3 s of ticks while the lock is held
            assert not got
            holder.release()
    finally:
        holder.close()
    assert got == ["busy"]
    assert max(gaps) < 0.1, f"the loop stalled for {max(gaps):.3f} s"


async def test_different_configurations_do_not_wait_on_each_other(
    tmp_path: Path, workdir: Path, child_env: dict[str, str]
) -> None:
    holder = Holder(tmp_path, "a", child_env)
    try:
        await holder.wait_held()
        finished: list[str] = []

        async def call(key: str) -> None:
            finished.append(await Value(key=key).get())

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a")
            assert await Value(key="b").get() == "b"
            assert await Value(key="a").other() is not None  # another name, same config
            assert finished == []
            holder.release()
    finally:
        holder.close()
    assert finished == ["a"]


async def test_sync_method_from_a_worker_thread_waits_for_a_coroutine(workdir: Path) -> None:
    value = Value(key="w")
    entered, release = anyio.Event(), anyio.Event()
    got: list[str] = []

    async def in_thread() -> None:
        got.append(await anyio.to_thread.run_sync(value.get_sync))

    async with anyio.create_task_group() as tg:
        tg.start_soon(value.hold_async, entered, release)
        await entered.wait()
        tg.start_soon(in_thread)
        await poll(lambda: slot_of(value).users == 2)  # the thread waits on the slot
        assert got == []
        release.set()
    assert got == ["w"]


# ---- locks are released ------------------------------------------------------------------


async def test_exception_releases_the_lock(workdir: Path) -> None:
    value = Value(key="e")
    with pytest.raises(RuntimeError, match="boom"):
        await value.fail()
    assert lock_is_free(value)
    with pytest.raises(RuntimeError, match="boom"):
        await anyio.to_thread.run_sync(value.fail_sync)
    assert lock_is_free(value)
    assert await value.get() == "e"


async def test_cancellation_inside_the_method_releases_the_lock(workdir: Path) -> None:
    value = Value(key="c")
    entered, never = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(value.hold_async, entered, never)
        await entered.wait()
        assert not lock_is_free(value)
        tg.cancel_scope.cancel()
    assert lock_is_free(value)
    assert await value.get() == "c"


async def test_cancelled_waiter_on_another_process_holds_nothing(
    tmp_path: Path, workdir: Path, child_env: dict[str, str]
) -> None:
    value = Value(key="p")
    holder = Holder(tmp_path, "p", child_env)
    try:
        await holder.wait_held()
        fds = open_fds()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(value.get)
                # the waiter holds the in-process slot and polls the lock file
                await poll(lambda: cache_module._slots and slot_of(value).lock.locked())
                scope.cancel()
        assert cache_module._slots == {}
        assert open_fds() == fds
        holder.release()
    finally:
        holder.close()
    assert await value.get() == "p"


async def test_cancelled_waiter_in_process_holds_nothing(workdir: Path) -> None:
    value = Value(key="q")
    entered, release = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(value.hold_async, entered, release)
        await entered.wait()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as inner:
                inner.start_soon(value.get)
                await poll(lambda: len(slot_of(value).wakers) == 1)
                scope.cancel()
        assert len(slot_of(value).wakers) == 0 and slot_of(value).users == 1
        release.set()
    assert await value.get() == "q"


async def test_a_woken_waiter_cancelled_passes_the_wake_on(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "_REWAIT", 60.0)  # a lost wake would hang
    value = Value(key="r")
    entered, release = anyio.Event(), anyio.Event()
    got: list[str] = []
    first = anyio.CancelScope()

    async def first_waiter() -> None:
        with first:
            await value.get()

    async def second_waiter() -> None:
        got.append(await value.get())

    async def holder() -> None:
        await value.hold_async(entered, release)
        first.cancel()  # the release just woke the first waiter: it leaves instead

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder)
            await entered.wait()
            tg.start_soon(first_waiter)
            await poll(lambda: len(slot_of(value).wakers) == 1)
            tg.start_soon(second_waiter)
            await poll(lambda: len(slot_of(value).wakers) == 2)
            release.set()
    assert got == ["r"]


def test_portable_lock_file_fallback(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without fcntl (Windows), filelock serialises; on Linux both use flock."""
    monkeypatch.setattr(cache_module, "_LockFile", cache_module._PortableFile)
    value = Value(key="portable", log=str(workdir.parent / "log"), delay=0.02)
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: value.get_sync(), range(8))) == ["portable"] * 8
    with pytest.raises(RuntimeError):
        value.fail_sync()
    assert lock_is_free(value)
    assert len((workdir.parent / "log").read_text().splitlines()) == 1


# ---- where ---------------------------------------------------------------------------------


def test_workdir_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = Value(key="where")
    ident = value.__identifier__

    def cached_dir() -> Path:
        return anyio.run(value.other).parent

    monkeypatch.delenv("LEGATO_WORKDIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    user = tmp_path / "xdg" / "legato"
    assert cached_dir() == user / "cache" / "tests.cache.Value" / ident
    monkeypatch.setenv("LEGATO_WORKDIR", str(tmp_path / "env"))
    assert cached_dir() == tmp_path / "env" / "cache" / "tests.cache.Value" / ident
    token = current_workdir.set(tmp_path / "xp")
    try:
        assert cached_dir() == tmp_path / "xp" / "cache" / "tests.cache.Value" / ident
        assert cached_dir().is_dir()
    finally:
        current_workdir.reset(token)
    assert cached_dir() == tmp_path / "env" / "cache" / "tests.cache.Value" / ident


def test_directory_is_recreated_when_removed(workdir: Path) -> None:
    value = Value(key="gone")
    assert value.get_sync() == "gone"
    import shutil

    shutil.rmtree(workdir / "cache")
    assert value.get_sync() == "gone"
    assert (workdir / "cache" / "tests.cache.Value" / value.__identifier__).is_dir()


def test_bad_names_and_bad_owners(workdir: Path) -> None:
    for bad in ("", "/abs.txt", "../up.txt", "a/../../b"):
        with pytest.raises((TypeError, ValueError)):
            cache(bad)

    class NotAConfig:
        @cache("x")
        def load(self, path: Path) -> Path:
            return path

    with pytest.raises(TypeError, match="Config"):
        NotAConfig().load()  # type: ignore[misc]


def test_subdirectory_names_and_extra_arguments(workdir: Path) -> None:
    class Sub(Config, name="tests.cache.Sub"):
        n: Param[int]

        @cache("parts/part.bin")
        def load(self, path: Path, suffix: str = "") -> Path:
            assert path.parent.is_dir()
            return path.with_name(path.name + suffix)

    got = Sub(n=1).load(suffix=".x")
    assert got.parent.name == "parts" and got.name == "part.bin.x"


async def test_sync_call_that_would_deadlock_raises(workdir: Path) -> None:
    value = Value(key="dead")
    entered, release = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(value.hold_async, entered, release)
        await entered.wait()
        with pytest.raises(RuntimeError, match="worker thread"):
            value.get_sync()  # on the loop's thread, while a coroutine of it holds the lock
        release.set()
    assert value.get_sync() == "dead"


def test_how_to_page_examples_run(workdir: Path) -> None:
    """docs/how-to/cache.md runs as written, block after block, in a temporary workdir."""
    import re

    page = Path(__file__).parent.parent / "docs" / "how-to" / "cache.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.M | re.S)
    assert len(blocks) >= 5
    namespace = {"__name__": "docs_how_to_cache"}
    for block in blocks:
        exec(compile(block, str(page), "exec", dont_inherit=True), namespace)
    assert (workdir / "cache" / "docs.Embeddings").is_dir()
