"""Tasks the scheduler tests run in real job processes (imported there through sys.path)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import legato
from legato import Config, Meta, Param, Task, pathgenerator
from support.waiting import wait_for_file


def record(log: str, **event: Any) -> None:
    """Append one JSON line (O_APPEND keeps lines whole across processes)."""
    event.setdefault("pid", os.getpid())
    event.setdefault("time", time.time())
    with open(log, "a") as f:
        f.write(json.dumps(event) + "\n")


def events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


class Step(Task):
    """Records its start and end; optionally waits for a gate file, fails, or dies."""

    name: Param[str]
    log: Meta[str]
    inputs: Param[list[Any]] = []
    gate: Meta[str] = ""
    fail: Meta[str] = ""
    output: Annotated[Path, pathgenerator("out.txt")]

    def execute(self) -> None:
        record(
            self.log,
            event="start",
            name=self.name,
            cwd=os.getcwd(),
            cuda=os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
        for item in self.inputs:
            if isinstance(item, Step):
                assert item.output.read_text() == item.name, "dependency not done"
        if self.gate:
            wait_for_file(self.gate)
        if self.fail == "raise":
            raise ValueError(f"step {self.name} failed on purpose")
        if self.fail == "exit":
            os._exit(3)
        if self.fail == "exit0":  # a success status, without the verdict
            os._exit(0)
        if self.fail == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        print(f"hello from {self.name}")
        self.output.write_text(self.name)
        record(self.log, event="end", name=self.name)


class Holder(Config):
    """Holds task outputs inside a nested config, to test dependency discovery."""

    steps: Param[dict[str, Any]]


class Gather(Task):
    holder: Param[Holder]
    log: Meta[str]

    def execute(self) -> None:
        for step in self.holder.steps.values():
            assert step.output.read_text() == step.name
        record(self.log, event="gather", tags=self.__tags__, taskdir=str(self.__taskdir__))


class Reporter(Task):
    """Reports progress, then waits for a gate."""

    gate: Meta[str]

    def execute(self) -> None:
        legato.progress(0.5, "halfway")
        wait_for_file(self.gate)
        legato.progress(1.0)


class Chatty(Task):
    """Reports progress many times at once, the last with a long description, and ends."""

    reports: Param[int]

    def execute(self) -> None:
        for i in range(1, self.reports):
            legato.progress(i / self.reports, f"step {i}")
        legato.progress(1.0, "done " + "x" * 20_000)


class AsyncStep(Task):
    value: Param[int]
    log: Meta[str]

    async def execute(self) -> None:
        import asyncio

        await asyncio.sleep(0)
        record(self.log, event="async", value=self.value)


class Model(Config):
    hidden: Param[int] = 16


class Trained(Config):
    model: Param[Model]
    weights: Param[Path]


class Learn(Task):
    model: Param[Model]
    weights: Annotated[Path, pathgenerator("weights.txt")]

    def config(self) -> Trained:
        return Trained(model=self.model, weights=self.weights)

    def execute(self) -> None:
        self.weights.write_text(str(self.model.hidden))


class Evaluate(Task):
    trained: Param[Trained]
    log: Meta[str]

    def execute(self) -> None:
        record(self.log, event="eval", weights=self.trained.weights.read_text(), tags=self.__tags__)


class Leaving(Task):
    """Leaves work for its process's way out, as a fresh interpreter does it: an `atexit`
    function, a thread that is not a daemon, a thread pool's queued work, output that C
    code printed (buffered: its stdout is a file)."""

    log: Meta[str]

    def execute(self) -> None:
        import atexit
        import ctypes
        import threading
        from concurrent.futures import ThreadPoolExecutor

        def late(what: str) -> None:
            time.sleep(0.2)
            record(self.log, event=what)

        atexit.register(record, self.log, event="atexit")
        threading.Thread(target=late, args=("thread",)).start()
        pool = ThreadPoolExecutor(1)
        pool.submit(late, "pool")
        pool.submit(late, "pool")
        ctypes.CDLL(None).printf(b"printed by C\n")


class AfterLeaving(Task):
    """Records what its dependency's way out had done when it started."""

    log: Meta[str]
    after: Param[Any]

    def execute(self) -> None:
        record(self.log, event="dependent", seen=[e["event"] for e in events(Path(self.log))])
