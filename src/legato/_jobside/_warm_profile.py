"""CPU profiles of warm processes, for the benchmarks: with `LEGATO_WARM_PROFILE=<dir>`,
the warm server and each job it forks write their cProfile (CPU time) there, as
`server-<pid>.prof` and `job-<pid>.prof` (benchmarks/bench_scheduler.py reads them)."""

from __future__ import annotations

import os
import sys
from typing import Any

from .._jobdir._names import WARM_PROFILE_ENV

__all__ = ["profile_end", "profile_start"]


def profile_start() -> Any:
    """A new profiler (in a forked job: not the server's, which it inherits), if asked."""
    if not os.environ.get(WARM_PROFILE_ENV):
        return None
    import cProfile
    import time

    sys.setprofile(None)
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    return profile


def profile_end(profile: Any, kind: str) -> None:
    if profile is not None:
        profile.disable()
        folder = os.environ.get(WARM_PROFILE_ENV) or "."
        profile.dump_stats(os.path.join(folder, f"{kind}-{os.getpid()}.prof"))
