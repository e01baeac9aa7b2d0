"""Results benchmark (issue #15): `legato.results(workdir)` and `.to_pandas()` over a
10,000-job workdir, in this process (as a notebook calls them).

    python benchmarks/bench_results.py [--jobs 10000] [--runs 5] [--workdir DIR]

The workdir is fake but valid: real params files written by `legato.dumps` (two tags),
`done` markers naming result files written as a job's process writes them (a dict of
three scores, one nested), and an experiment listing every job. Each run reads the
workdir afresh: every job's marker, params and result. Target: under 2 s for 10,000 jobs
(pandas' own work included), on the shared 2-core machine of the project's CI.

Measured 2026-12-01 on that machine while other test suites ran (load average 7-9 on
2 cores): results() and every result 1.20 s, to_pandas() 2.35 s (235 us a job), median
of 5; single runs between 1.4 and 2.1 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import legato
from legato import Param, Task, dumps, tag
from legato._core._identity import current_workdir
from legato._core._result import encode_result
from legato._jobdir._workdir import (
    DONE,
    JOBS_LIST,
    PARAMS,
    RESULT,
    atomic_write,
    experiment_dir,
    job_dir,
    write_json,
)

TARGET = 2.0


class Evaluate(Task, name="bench.Evaluate"):
    lr: Param[float]
    seed: Param[int] = 0

    def execute(self) -> None:
        pass


def make_workdir(root: Path, n: int) -> None:
    token = current_workdir.set(root)
    lines = []
    now = time.time()
    try:
        for i in range(n):
            task = Evaluate(lr=tag(10.0 ** -(1 + i % 5)), seed=tag(i))
            path = job_dir(root, type(task).__legato_type_name__, task.__identifier__)
            path.mkdir(parents=True)
            atomic_write(path / PARAMS, dumps(task), durable=False)
            value = {"score": i / n, "loss": {"train": 0.5, "valid": 0.25}, "epochs": 10}
            atomic_write(path / RESULT, encode_result(value, root), durable=False)
            ended = now - (n - i)
            marker = {"ended": ended, "duration": 0.5, "result": RESULT}
            write_json(path / DONE, marker, durable=False)
            lines.append(f"bench.Evaluate/{task.__identifier__}\n")
    finally:
        current_workdir.reset(token)
    experiment_dir(root, "bench").mkdir(parents=True)
    (experiment_dir(root, "bench") / JOBS_LIST).write_text("".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="legato-bench-results-"))
    try:
        if not (root / "jobs").exists():
            t0 = time.perf_counter()
            make_workdir(root, args.jobs)
            print(f"made {args.jobs} jobs in {time.perf_counter() - t0:.1f} s at {root}")
        listing, table = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            found = legato.results(root, type=Evaluate)
            _ = [r.result for r in found]
            t1 = time.perf_counter()
            frame = legato.results(root, type=Evaluate).to_pandas()
            t2 = time.perf_counter()
            listing.append(t1 - t0)
            table.append(t2 - t1)
            assert len(found) == len(frame) == args.jobs, (len(found), len(frame))
        n = args.jobs
        print(f"results() + every result, {n} jobs: median {statistics.median(listing):.3f} s")
        best = statistics.median(table)
        print(f"results().to_pandas(), {n} jobs: median {best:.3f} s (target < {TARGET} s)")
        verdict = "OK" if best < TARGET else "ABOVE TARGET"
        print(f"per job: {best / n * 1e6:.0f} us; {verdict}")
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
