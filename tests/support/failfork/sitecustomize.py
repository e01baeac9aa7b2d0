"""Run by every Python process started with this folder on its import path (a test puts
it there for its warm server): `os.fork` fails, as the kernel refuses one when processes
or memory run out, every time with `LEGATO_TEST_FAILFORK=all`, every second time with
`LEGATO_TEST_FAILFORK=alternate` (for a warm server: the forks of spares, ahead of jobs)."""

from __future__ import annotations

import os

if os.environ.get("LEGATO_TEST_FAILFORK") in ("all", "alternate"):
    _every = 1 if os.environ["LEGATO_TEST_FAILFORK"] == "all" else 2
    _fork = os.fork
    _calls = 0

    def _failing_fork() -> int:
        global _calls
        _calls += 1
        if _calls % _every == 0:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return _fork()

    os.fork = _failing_fork
