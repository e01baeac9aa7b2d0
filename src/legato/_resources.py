"""Counted resources: job slots (`max_jobs`), named counters, and GPU device indices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio

from ._errors import ResourceError

__all__ = ["Grant", "ResourcePool", "SLOTS"]

SLOTS = "__jobs__"
GPU = "gpu"


@dataclass
class Grant:
    """What a running job holds; `gpus` are the device indices for CUDA_VISIBLE_DEVICES."""

    amounts: dict[str, int]
    gpus: list[int] = field(default_factory=list)


class ResourcePool:
    """First-fit allocation in submission order: a large request does not stop smaller
    ones from starting while it waits, and what is taken is taken atomically."""

    def __init__(self, max_jobs: int, resources: Mapping[str, int] | None) -> None:
        if not isinstance(max_jobs, int) or isinstance(max_jobs, bool) or max_jobs < 1:
            raise ResourceError(f"max_jobs must be a positive int, got {max_jobs!r}")
        totals = {SLOTS: max_jobs}
        for name, amount in (resources or {}).items():
            if not isinstance(name, str) or not isinstance(amount, int) or amount < 0:
                raise ResourceError(
                    f"resources: expected str names and non-negative int counts, "
                    f"got {name!r}: {amount!r}"
                )
            totals[name] = amount
        self.totals = totals
        self.free = dict(totals)
        self.free_gpus = list(range(totals.get(GPU, 0)))
        self._waiters: list[_Waiter] = []

    def check(self, requires: Mapping[str, int] | None) -> dict[str, int]:
        """Validate a job's request against what exists: fail at submit, not after hours."""
        amounts = {SLOTS: 1}
        for name, amount in (requires or {}).items():
            if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
                raise ResourceError(f"requires[{name!r}] must be a non-negative int")
            if name not in self.totals:
                raise ResourceError(
                    f"requires {name!r} but the experiment declares no such resource "
                    f"(declared: {sorted(k for k in self.totals if k != SLOTS) or 'none'})"
                )
            if amount > self.totals[name]:
                raise ResourceError(
                    f"requires {amount} {name!r} but the experiment has only {self.totals[name]}"
                )
            amounts[name] = amount
        return amounts

    def _fits(self, amounts: dict[str, int]) -> bool:
        return all(self.free[k] >= v for k, v in amounts.items())

    def _take(self, amounts: dict[str, int]) -> Grant:
        for k, v in amounts.items():
            self.free[k] -= v
        n = amounts.get(GPU, 0)
        gpus, self.free_gpus = self.free_gpus[:n], self.free_gpus[n:]
        return Grant(amounts, gpus)

    async def acquire(self, amounts: dict[str, int]) -> Grant:
        if not self._waiters and self._fits(amounts):
            return self._take(amounts)
        waiter = _Waiter(amounts)
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.grant is None:
                self._waiters.remove(waiter)
            else:  # granted while being cancelled: give it back
                self.release(waiter.grant)
            raise
        assert waiter.grant is not None
        return waiter.grant

    def release(self, grant: Grant) -> None:
        for k, v in grant.amounts.items():
            self.free[k] += v
        self.free_gpus = sorted(self.free_gpus + grant.gpus)
        for waiter in list(self._waiters):
            if not self.free[SLOTS]:
                break  # every request takes a slot: nobody else can start
            if self._fits(waiter.amounts):
                self._waiters.remove(waiter)
                waiter.grant = self._take(waiter.amounts)
                waiter.event.set()


class _Waiter:
    __slots__ = ("amounts", "event", "grant")

    def __init__(self, amounts: dict[str, int]) -> None:
        self.amounts = amounts
        self.event = anyio.Event()
        self.grant: Grant | None = None
