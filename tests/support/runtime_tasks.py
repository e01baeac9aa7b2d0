"""Tasks of the runtime integrity tests (imported by job processes through sys.path)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

from legato import Config, Meta, Param, Task, cache, pathgenerator
from support.xp_tasks import record, wait_for_file


class Fickle(Task):
    """Fails or waits as its `Meta` fields say: the same job, rerun with other behaviour."""

    name: Param[str]
    log: Meta[str]
    inputs: Param[list[Any]] = []
    fail: Meta[bool] = False
    gate: Meta[str] = ""
    output: Annotated[Path, pathgenerator("out.txt")]

    def execute(self) -> None:
        record(self.log, event="start", name=self.name)
        if self.gate:
            wait_for_file(self.gate)
        if self.fail:
            raise ValueError(f"{self.name} failed on purpose")
        self.output.write_text(self.name)


class Shouter(Task):
    """Raises an exception whose message is `size` characters long."""

    size: Param[int]

    def execute(self) -> None:
        raise ValueError("x" * (self.size - 1) + "!")


class Forker(Task):
    """Leaves a child behind that keeps the job's inherited descriptors open."""

    log: Meta[str]

    def execute(self) -> None:
        pid = os.fork()
        if pid == 0:  # the leftover: sleeps long, with the lock and progress pipe open
            time.sleep(300)
            os._exit(0)
        record(self.log, event="forked", child=pid)


class Stubborn(Task):
    """Ignores SIGTERM and waits for a gate that never opens."""

    name: Param[str]
    log: Meta[str]
    gate: Meta[str]

    def execute(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        record(self.log, event="start", name=self.name)
        wait_for_file(self.gate, timeout=600)


class Corpus(Config):
    """A configuration with a cached value, for the read-only workdir test."""

    name: Param[str]

    @cache("words.txt")
    def words(self, path: Path) -> str:
        if not path.exists():
            path.write_text(f"words of {self.name}")
        return path.read_text()
