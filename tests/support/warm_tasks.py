"""Tasks of the warm-process tests: they report what their process inherited."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from legato import Meta, Param, Task
from support.cli import alive
from support.xp_tasks import events, record, wait_for_file

IMPORTED_BY = os.getpid()
"""The process that imported this module: a warm server, or the job itself."""
counter = 0


def open_fds() -> list[int]:
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


class Probe(Task):
    """Records what it sees, then leaves traces that no later job may see."""

    name: Param[str]
    log: Meta[str]
    gate: Meta[str] = ""
    after: Param[Any] = None

    def execute(self) -> None:
        global counter
        counter += 1
        record(
            self.log,
            event="start",
            name=self.name,
            ppid=os.getppid(),
            imported_by=IMPORTED_BY,
            counter=counter,
            env=os.environ.get("WARM_TEST_TRACE"),
            set_by_xp=os.environ.get("WARM_TEST_XP"),
            cuda=os.environ.get("CUDA_VISIBLE_DEVICES"),
            run_state=os.environ.get("LEGATO_RUN_STATE"),
            cwd=os.getcwd(),
            fds=open_fds(),
            pgid=os.getpgid(0),
            argv=sys.argv,
            path0=sys.path[0],
        )
        if self.gate:
            wait_for_file(self.gate)
        # traces for the next job to (not) see
        os.environ["WARM_TEST_TRACE"] = self.name
        os.chdir("/")
        self.__dict__["leak"] = open(os.devnull)  # noqa: SIM115 - left open on purpose
        record(self.log, event="end", name=self.name, time=time.time())


class Leaver(Task):
    """Leaves a child in its process group that ignores SIGTERM: the experiment ends it
    only once its grace period has passed."""

    log: Meta[str]

    def execute(self) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(300)
            os._exit(0)
        record(self.log, event="left", child=pid)


class Witness(Task):
    """Records whether the child that its dependency left behind is still there."""

    log: Meta[str]
    after: Param[Any]

    def execute(self) -> None:
        (left,) = [e for e in events(Path(self.log)) if e["event"] == "left"]
        record(self.log, event="witness", child_alive=alive(left["child"]))


class Quick(Task):
    """Does nothing: its process is done a moment after it is handed the job."""

    index: Param[int]

    def execute(self) -> None:
        pass


class Orphaner(Task):
    """Its first run leaves a child in its process group and waits for the gate; a run
    after that records whether the child is still there."""

    log: Meta[str]
    gate: Meta[str]

    def execute(self) -> None:
        left = [e for e in events(Path(self.log)) if e["event"] == "left"]
        if left:
            record(self.log, event="rerun", child_alive=alive(left[0]["child"]))
            return
        pid = os.fork()
        if pid == 0:
            time.sleep(300)
            os._exit(0)
        record(self.log, event="left", child=pid, server=os.getppid())
        wait_for_file(self.gate)


class SlowExit(Task):
    """Writes its `done` as any job, then takes its time on its way out (an `atexit`
    function that waits for a gate)."""

    log: Meta[str]
    gate: Meta[str]

    def execute(self) -> None:
        import atexit

        record(self.log, event="run", server=os.getppid())

        def leaving() -> None:
            record(self.log, event="exiting")
            wait_for_file(self.gate)

        atexit.register(leaving)
