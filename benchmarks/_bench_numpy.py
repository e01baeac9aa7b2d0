"""A task module that imports numpy, as most real task modules do."""

from __future__ import annotations

import numpy as np

from legato import Param, Task


class NumpyNoop(Task):
    index: Param[int]

    def execute(self) -> None:
        np.zeros(self.index + 1).sum()
