"""A task module that makes a temporary directory when imported: in a warm server, once
for all the jobs it forks, which share it."""

from __future__ import annotations

import os
import tempfile

from legato import Param, Task

SCRATCH = tempfile.TemporaryDirectory(prefix="legato-test-scratch-")


class UsesScratch(Task):
    index: Param[int]

    def execute(self) -> None:
        # a job that ended before this one must not have removed it on its way out
        with open(os.path.join(SCRATCH.name, f"job-{self.index}"), "w") as f:
            f.write("here")
