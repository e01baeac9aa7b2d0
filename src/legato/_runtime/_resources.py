"""Counted resources: job slots (`max_jobs`), named counters, and GPU device indices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .._errors import ResourceError

__all__ = ["Grant", "ResourcePool", "SLOTS"]

SLOTS = "__jobs__"
GPU = "gpu"


@dataclass
class Grant:
    """What a running job holds; `gpus` are the device indices for CUDA_VISIBLE_DEVICES."""

    amounts: dict[str, int]
    gpus: list[int] = field(default_factory=list)
    released: bool = False


class ResourcePool:
    """What is free of each counted resource; a request is taken whole or not at all.

    The experiment decides who asks, and in which order (first fit in submission order)."""

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

    def take(self, amounts: dict[str, int]) -> Grant | None:
        """Take `amounts` (one slot included) if all of it is free, else take nothing."""
        free = self.free
        for k, v in amounts.items():
            if free[k] < v:
                return None
        for k, v in amounts.items():
            free[k] -= v
        n = amounts.get(GPU, 0)
        gpus, self.free_gpus = self.free_gpus[:n], self.free_gpus[n:]
        return Grant(amounts, gpus)

    def release(self, grant: Grant) -> None:
        """Give back what `grant` holds; a second release of the same grant does nothing."""
        if grant.released:
            return
        grant.released = True
        for k, v in grant.amounts.items():
            self.free[k] += v
        self.free_gpus = sorted(self.free_gpus + grant.gpus)
