"""A task module that starts a thread at import: not safe to fork from."""

from __future__ import annotations

import os
import threading

from legato import Meta, Param, Task
from support.xp_tasks import record

_stop = threading.Event()
threading.Thread(target=_stop.wait, name="warm-test-idle", daemon=True).start()
IMPORTED_BY = os.getpid()


class Threaded(Task):
    name: Param[str]
    log: Meta[str]

    def execute(self) -> None:
        record(self.log, event="start", name=self.name, imported_by=IMPORTED_BY, ppid=os.getppid())
