"""Tasks of the warm-process tests: they report what their process inherited."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from legato import Meta, Param, Task
from support.xp_tasks import record, wait_for_file

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
