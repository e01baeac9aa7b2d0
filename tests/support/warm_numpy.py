"""A task module that imports numpy: its global generator is seeded in the warm server."""

from __future__ import annotations

import os
import random

import numpy as np

from legato import Meta, Param, Task
from support.xp_tasks import record


class Draw(Task):
    index: Param[int]
    log: Meta[str]

    def execute(self) -> None:
        record(
            self.log,
            event="draw",
            ppid=os.getppid(),
            python=random.random(),
            numpy=float(np.random.random()),
        )
