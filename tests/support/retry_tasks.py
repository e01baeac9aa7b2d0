"""Tasks of the retry and time-limit tests (test_retries.py, test_slurm.py): each records
what its attempts did in a JSON-lines log, `events(log)`."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import legato
from legato import Interrupted, Meta, Param, Requeue, Task
from support.xp_tasks import events, record

__all__ = [
    "Broken",
    "Checkpointed",
    "Clock",
    "KillsItsExperiment",
    "Requeuer",
    "Sleeper",
    "Stubborn",
    "events",
]


class Checkpointed(Task):
    """`steps` steps of `step_time` seconds, the count saved after each: an interrupted
    attempt resumes where the last one stopped."""

    name: Param[str]
    steps: Param[int]
    log: Meta[str]
    step_time: Meta[float] = 0.2

    def execute(self) -> None:
        checkpoint = self.__taskdir__ / "checkpoint.txt"
        done = int(checkpoint.read_text()) if checkpoint.exists() else 0
        print(f"attempt {legato.attempt()} resumes at step {done}", flush=True)
        record(self.log, event="start", name=self.name, attempt=legato.attempt(), at=done)
        try:
            while done < self.steps:
                time.sleep(self.step_time)
                done += 1
                checkpoint.write_text(str(done))
        except Interrupted:
            print(f"interrupted at step {done}: checkpoint saved", flush=True)
            record(self.log, event="interrupted", name=self.name, at=done)
            raise
        record(self.log, event="end", name=self.name, attempt=legato.attempt())


class Requeuer(Task):
    """Asks for another attempt until attempt `until`."""

    name: Param[str]
    log: Meta[str]
    until: Meta[int] = 2

    def execute(self) -> None:
        record(self.log, event="start", name=self.name, attempt=legato.attempt(), pid=os.getpid())
        time.sleep(0.1)
        if legato.attempt() < self.until:
            record(self.log, event="requeue", name=self.name, attempt=legato.attempt())
            raise Requeue(f"not yet at attempt {legato.attempt()}")
        record(self.log, event="end", name=self.name, attempt=legato.attempt())


class Broken(Task):
    name: Param[str]
    log: Meta[str]

    def execute(self) -> None:
        record(self.log, event="start", name=self.name, attempt=legato.attempt())
        raise ValueError("diverged")


class Sleeper(Task):
    """Sleeps until interrupted, from attempt 1 to attempt `wake_at` - 1."""

    name: Param[str]
    log: Meta[str]
    wake_at: Meta[int] = 1_000_000

    def execute(self) -> None:
        record(self.log, event="start", name=self.name, attempt=legato.attempt())
        if legato.attempt() >= self.wake_at:
            return
        try:
            while True:
                time.sleep(0.05)
        except Interrupted as exc:
            record(self.log, event="interrupted", name=self.name, why=str(exc))
            raise


class Stubborn(Task):
    """Swallows the interruption and goes on: only SIGKILL ends it."""

    name: Param[str]
    log: Meta[str]

    def execute(self) -> None:
        record(self.log, event="start", name=self.name)
        print("the last words of", self.name)  # left in the buffer: the process is killed
        while True:
            try:
                time.sleep(0.05)
            except Interrupted:
                record(self.log, event="ignored", name=self.name)


class Clock(Task):
    """Records what a job knows of its attempt."""

    name: Param[str]
    log: Meta[str]

    def execute(self) -> None:
        record(
            self.log,
            event="clock",
            name=self.name,
            attempt=legato.attempt(),
            remaining=legato.remaining_time(),
        )


class KillsItsExperiment(Task):
    """Attempt 1 kills its experiment (kill -9), then asks for another attempt: the
    experiment dies between two attempts."""

    name: Param[str]
    log: Meta[str]

    def execute(self) -> None:
        record(self.log, event="start", name=self.name, attempt=legato.attempt())
        if legato.attempt() == 1:
            # The SIGTERM its experiment's death sends must not end this attempt first.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            # The experiment's pid from its record (a warm job's parent is the server).
            env = os.environ
            xp_dir = Path(env["LEGATO_WORKDIR"], "experiments", env["LEGATO_EXPERIMENT"])
            state = json.loads((xp_dir / "state.json").read_text())
            os.kill(int(state["pid"]), signal.SIGKILL)
            raise Requeue("the experiment was killed")
        record(self.log, event="end", name=self.name, attempt=legato.attempt())


def attempts_of(log: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in events(log) if e.get("name") == name and e["event"] == "start"]


class AsyncSleeper(Task):
    """An async `execute`: the interruption reaches it as the cancellation of its await."""

    name: Param[str]
    log: Meta[str]

    async def execute(self) -> None:
        import asyncio

        record(self.log, event="start", name=self.name, attempt=legato.attempt())
        if legato.attempt() > 1:
            return
        try:
            await asyncio.sleep(3600)
        except (Interrupted, asyncio.CancelledError) as exc:
            record(self.log, event="interrupted", name=self.name, why=type(exc).__name__)
            raise
