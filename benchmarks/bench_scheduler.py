"""Scheduler benchmarks (issue #3): trivial jobs fan-out and chain, resubmitting a finished
10,000-job sweep, and event-loop responsiveness while submitting 10,000 jobs.

    python benchmarks/bench_scheduler.py [--sizes 200,1000] [--xpm-sizes 200] [--no-xpm]

Figures are printed with their ratio against the floor (N x the start time of
`python -c "import legato"` / cores) and against experimaestro on the same workload, measured
in the same run when experimaestro is installed (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _bench_tasks import Noop  # noqa: E402

from legato import experiment  # noqa: E402

CORES = os.cpu_count() or 1


def import_time(runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import legato"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def legato_run(n: int, chain: bool, workdir: str) -> float:
    start = time.perf_counter()
    async with experiment(workdir, "bench", max_jobs=CORES):
        previous: Any = None
        for i in range(n):
            out = await Noop(index=i, after=previous if chain else None).submit()
            previous = out
    return time.perf_counter() - start


def xpm(kind: str, n: int, workdir: str) -> float | None:
    try:
        import _xpm_reference
    except ImportError:
        return None
    fn = getattr(_xpm_reference, f"run_{kind}", None)
    if fn is None:
        return None
    try:
        return float(fn(n, workdir))
    except Exception as exc:  # the reference is optional: report, do not fail
        print(f"    experimaestro {kind} failed: {exc!r}")
        return None


RESUBMIT = """
import sys, time, resource, tempfile, anyio
sys.path.insert(0, {here!r})
from pathlib import Path
from _bench_tasks import Noop
from legato import experiment
from legato._workdir import DONE, job_dir
N, wd = {n}, Path({workdir!r})
for i in range(N):  # a finished sweep: each job directory holds its done marker
    p = job_dir(wd, Noop.__legato_type_name__, Noop(index=i).__identifier__)
    p.mkdir(parents=True, exist_ok=True)
    (p / DONE).write_text("{{}}")
async def main():
    start = time.perf_counter()
    async with experiment(wd, "bench") as xp:
        for i in range(N):
            await Noop(index=i).submit()
    assert xp.counts()["done"] == N
    return time.perf_counter() - start
wall = anyio.run(main)
print(wall, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def legato_resubmit(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as wd:
        code = RESUBMIT.format(here=str(HERE), n=n, workdir=wd)
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        wall, rss = out.stdout.split()
        return float(wall), float(rss)


async def responsiveness(n: int, workdir: str) -> float:
    """Largest gap seen by a 10 ms ticker while `n` fresh jobs are submitted."""
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await anyio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last - 0.01)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        with anyio.CancelScope() as scope:
            async with experiment(workdir, "bench", max_jobs=CORES):
                for i in range(n):
                    await Noop(index=i).submit()
                scope.cancel()  # the point is submission: stop the sweep here
        tg.cancel_scope.cancel()
    return max(gaps) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="200,1000")
    parser.add_argument("--xpm-sizes", default="200")
    parser.add_argument("--no-xpm", action="store_true")
    parser.add_argument("--resubmit", type=int, default=10_000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    xpm_sizes = set() if args.no_xpm else {int(s) for s in args.xpm_sizes.split(",") if s}
    results: dict[str, Any] = {"cores": CORES}

    t_import = import_time()
    results["import_s"] = t_import
    print(f"python -c 'import legato': {t_import * 1000:.0f} ms, {CORES} cores")
    for n in sizes:
        floor = n * t_import / CORES
        for kind in ("fanout", "chain"):
            with tempfile.TemporaryDirectory() as wd:
                wall = anyio.run(legato_run, n, kind == "chain", wd)
            line = (
                f"{kind:<6} N={n:<5} legato {wall:7.2f} s ({wall / n * 1000:5.1f} ms/job)  "
                f"floor {floor:6.2f} s  ratio {wall / floor:4.2f}"
            )
            if kind == "chain":
                line += f"  (sequential floor {n * t_import:.2f} s: {wall / (n * t_import):.2f})"
            entry: dict[str, Any] = {"legato_s": wall, "floor_s": floor}
            if n in xpm_sizes:
                with tempfile.TemporaryDirectory() as wd:
                    ref = xpm(kind, n, wd)
                if ref is not None:
                    line += f"  experimaestro {ref:7.2f} s  speed-up {ref / wall:4.1f}x"
                    entry["xpm_s"] = ref
                else:
                    line += "  experimaestro: skipped (not installed)"
            results[f"{kind}_{n}"] = entry
            print(line, flush=True)

    wall, rss = legato_resubmit(args.resubmit)
    results["resubmit"] = {"n": args.resubmit, "legato_s": wall, "maxrss_mb": rss}
    line = f"resubmit {args.resubmit} done jobs: legato {wall:.2f} s, peak RSS {rss:.0f} MB"
    xpm_n = max(xpm_sizes) if xpm_sizes else 0
    if xpm_n:
        with tempfile.TemporaryDirectory() as wd:
            first = xpm("fanout", xpm_n, wd)
            again = xpm("fanout", xpm_n, wd) if first is not None else None
        if again is not None:
            per_xpm = again / xpm_n
            per_legato = wall / args.resubmit
            results["resubmit"]["xpm_per_job_s"] = per_xpm
            line += (
                f"; experimaestro rerun of {xpm_n} done jobs {again:.2f} s "
                f"({per_xpm * 1000:.2f} ms/job vs {per_legato * 1000:.3f}: "
                f"{per_xpm / per_legato:.0f}x)"
            )
    print(line, flush=True)

    with tempfile.TemporaryDirectory() as wd:
        gap = anyio.run(responsiveness, 10_000, wd)
    results["max_tick_gap_ms"] = gap
    print(f"10 ms ticker while submitting 10,000 jobs: largest extra delay {gap:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
