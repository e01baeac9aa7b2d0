"""Configurations with cached methods for tests/test_cache.py, importable by the helper
processes and job processes those tests start (their `sys.path` is the test's)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio

from legato import Config, Meta, Param, Task, cache
from support.waiting import wait_for_file


def _record(log: str) -> None:
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")


class Value(Config, name="tests.cache.Value"):
    """Every method below caches the same file, `value.txt`: they share one lock."""

    key: Param[str]
    log: Meta[str] = ""  # one line appended per computation
    delay: Meta[float] = 0.0  # how long a computation takes

    @cache("value.txt")
    async def get(self, path: Path) -> str:
        target = anyio.Path(path)
        if await target.exists():
            return await target.read_text()
        if self.log:
            await anyio.to_thread.run_sync(_record, self.log)
        await anyio.sleep(self.delay)
        tmp = target.with_name(target.name + ".tmp")
        await tmp.write_text(self.key)
        await tmp.replace(target)
        return self.key

    @cache("value.txt")
    def get_sync(self, path: Path) -> str:
        if path.exists():
            return path.read_text()
        if self.log:
            _record(self.log)
        time.sleep(self.delay)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.key)
        os.replace(tmp, path)
        return self.key

    @cache("value.txt")
    def hold(self, path: Path, held: str, release: str) -> Path:
        """Hold the lock: signal `held`, return once `release` exists."""
        Path(held).touch()
        wait_for_file(release)
        return path

    @cache("value.txt")
    async def hold_async(self, path: Path, entered: anyio.Event, release: anyio.Event) -> Path:
        entered.set()
        await release.wait()
        return path

    @cache("value.txt")
    async def fail(self, path: Path) -> None:
        raise RuntimeError("boom")

    @cache("value.txt")
    def fail_sync(self, path: Path) -> None:
        raise RuntimeError("boom")

    @cache("other.txt")
    async def other(self, path: Path) -> Path:
        return path


class UseValue(Task, name="tests.cache.UseValue"):
    """A job that calls a cached method in its own process."""

    value: Param[Value]

    def execute(self) -> None:
        print(self.value.get_sync())
