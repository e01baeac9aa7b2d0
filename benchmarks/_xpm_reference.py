"""experimaestro's side of the scheduler benchmark (`bench_scheduler.py`): the same trivial
jobs, run by experimaestro's own scheduler and local launcher, timed the same way.

    run_fanout(n, workdir)  # n independent tasks
    run_chain(n, workdir)   # n tasks, each depending on the one before

Each returns the wall seconds from opening the experiment to its end (experimaestro waits
for every job when the `with experiment(...)` block exits). At most `max_jobs` jobs run at
once (default: CPU count, as legato's side), through an experimaestro counter token; the
task parameters depend only on `n`, so running again in the same workdir finds every job
done. Job processes import this module: the benchmarks folder is put on their PYTHONPATH.
Needs the `bench` extra (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Optional

from experimaestro import DirtyGitAction, Param, Task, experiment
from experimaestro.tokens import CounterToken

HERE = Path(__file__).resolve().parent


class XNoop(Task):  # type: ignore[misc]
    index: Param[int]
    size: Param[int]  # with `chain`: no two workloads share a job (experimaestro's scheduler
    chain: Param[bool]  # is one per process and remembers jobs by identifier)
    after: Param[Optional[XNoop]] = None  # noqa: UP045 - experimaestro reads the annotation

    def execute(self) -> None:
        pass


def _run(n: int, workdir: Path | str, chain: bool, max_jobs: int | None) -> float:
    logging.getLogger("xpm").setLevel(logging.ERROR)  # per-job warnings of a new version
    workdir = Path(workdir).absolute()
    start = time.perf_counter()
    with experiment(
        workdir, "bench", no_environmental_impact=True, dirty_git=DirtyGitAction.IGNORE
    ) as xp:
        xp.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
        # in the workdir, not the per-user token folder that `xp.token()` would use
        token = CounterToken.create(
            f"bench-{workdir}", workdir / "cpu.counter", max_jobs or os.cpu_count() or 1
        )
        previous = None
        for i in range(n):
            task = XNoop.C(index=i, size=n, chain=chain, after=previous)
            submitted = task.add_dependencies(token.dependency(1)).submit()
            if chain:
                previous = submitted
    return time.perf_counter() - start


def run_fanout(n: int, workdir: Path | str, max_jobs: int | None = None) -> float:
    """Wall seconds for `n` independent trivial tasks."""
    return _run(n, workdir, chain=False, max_jobs=max_jobs)


def run_chain(n: int, workdir: Path | str, max_jobs: int | None = None) -> float:
    """Wall seconds for `n` trivial tasks, each depending on the previous one."""
    return _run(n, workdir, chain=True, max_jobs=max_jobs)


if __name__ == "__main__":
    import sys
    import tempfile

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for kind, run in (("fanout", run_fanout), ("chain", run_chain)):
        with tempfile.TemporaryDirectory() as wd:
            print(f"experimaestro {kind} N={size}: {run(size, wd):.2f} s")
