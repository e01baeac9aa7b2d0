"""A task module that takes a while to import: the server is busy importing it when the
experiment is cancelled."""

from __future__ import annotations

import time

from legato import Meta, Param, Task
from support.xp_tasks import record, wait_for_file

time.sleep(1.0)


class SlowStart(Task):
    name: Param[str]
    log: Meta[str]
    gate: Meta[str]

    def execute(self) -> None:
        record(self.log, event="start", name=self.name)
        wait_for_file(self.gate)


class SlowModuleQuick(Task):
    """Does nothing, but its module takes a second to import."""

    index: Param[int]

    def execute(self) -> None:
        pass
