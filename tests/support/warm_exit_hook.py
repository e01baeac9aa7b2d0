"""A task module that registers an exit function when imported, as `logging`,
`multiprocessing` and torch do: a warm job runs it on its way out, as a fresh one does."""

from __future__ import annotations

import atexit
import os

from legato import Meta, Task
from support.xp_tasks import record


def _on_exit() -> None:
    log = os.environ.get("LEGATO_TEST_EXIT_LOG")
    if log:
        record(log, event="exit function")


atexit.register(_on_exit)


class Hooked(Task):
    log: Meta[str]

    def execute(self) -> None:
        record(self.log, event="run")
