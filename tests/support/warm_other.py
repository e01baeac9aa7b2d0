"""A second task module for the warm-process tests: a job of it, after jobs of
`warm_tasks`, needs the server to import it before forking that job."""

from __future__ import annotations

import os
from typing import Any

from legato import Meta, Param, Task
from support.xp_tasks import record

IMPORTED_BY = os.getpid()


class Other(Task):
    name: Param[str]
    log: Meta[str]
    after: Param[Any] = None

    def execute(self) -> None:
        record(self.log, event="start", name=self.name, ppid=os.getppid(), imported_by=IMPORTED_BY)
