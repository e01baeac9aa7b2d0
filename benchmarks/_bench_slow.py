"""A task module that takes 0.5 s to import (as one that loads a large library does): a job
started afresh pays it each time; a warm server pays it once."""

from __future__ import annotations

import time

from legato import Param, Task

time.sleep(0.5)


class SlowNoop(Task):
    index: Param[int]

    def execute(self) -> None:
        pass
