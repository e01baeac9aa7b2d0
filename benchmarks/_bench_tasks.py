"""Trivial tasks for the scheduler benchmarks (importable by job processes)."""

from __future__ import annotations

from typing import Any

from legato import Param, Task


class Noop(Task):
    index: Param[int]
    after: Param[Any] = None

    def execute(self) -> None:
        pass
