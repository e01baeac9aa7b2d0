"""Results benchmark (issue #15): `legato.results(workdir)` and `.to_pandas()` over a
10,000-job workdir, in this process (as a notebook calls them).

    python benchmarks/bench_results.py [--jobs 10000] [--runs 5] [--workdir DIR] [--json FILE]

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
import statistics
import time
from pathlib import Path
from typing import Any

from _bench_common import bench_workdir, fake_workdir, headline, workdir_arguments, write_results

import legato
from legato import Param, Task, tag

TARGET = 2.0


class Evaluate(Task, name="bench.Evaluate"):
    lr: Param[float]
    seed: Param[int] = 0

    def execute(self) -> None:
        pass


def make_workdir(root: Path, n: int) -> None:
    from legato._core._result import encode_result
    from legato._jobdir._files import atomic_write, write_json
    from legato._jobdir._layout import DONE, RESULT

    def evaluate(i: int) -> Evaluate:
        return Evaluate(lr=tag(10.0 ** -(1 + i % 5)), seed=tag(i))

    def finish(i: int, path: Path, now: float) -> None:
        value = {"score": i / n, "loss": {"train": 0.5, "valid": 0.25}, "epochs": 10}
        atomic_write(path / RESULT, encode_result(value, root), durable=False)
        marker = {"ended": now - (n - i), "duration": 0.5, "result": RESULT}
        write_json(path / DONE, marker, durable=False)

    fake_workdir(root, n, evaluate, finish)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    workdir_arguments(parser, runs=5)
    args = parser.parse_args()
    with bench_workdir(args.workdir, args.jobs, make_workdir, "legato-bench-results-") as root:
        if args.build_only:
            return
        listing, table, cpu = [], [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            found = legato.results(root, type=Evaluate)
            _ = [r.result for r in found]
            t1 = time.perf_counter()
            frame = legato.results(root, type=Evaluate).to_pandas()
            t2, c2 = time.perf_counter(), time.process_time()
            listing.append(t1 - t0)
            table.append(t2 - t1)
            cpu.append(c2 - c0)  # this process's CPU, all its threads: less moved by the load
            assert len(found) == len(frame) == args.jobs, (len(found), len(frame))
        n = args.jobs
        print(f"results() + every result, {n} jobs: median {statistics.median(listing):.3f} s")
        best = statistics.median(table)
        print(f"results().to_pandas(), {n} jobs: median {best:.3f} s (target < {TARGET} s)")
        verdict = "OK" if best < TARGET else "ABOVE TARGET"
        print(f"per job: {best / n * 1e6:.0f} us; {verdict}")
        results: dict[str, Any] = {"jobs": n, "runs": args.runs}
        headline(results, "results() + every result", statistics.median(listing), "s", "lower")
        headline(results, "results().to_pandas()", best, "s", "lower")
        headline(results, "both (CPU, best run)", min(cpu), "cpu-s", "lower")
        write_results(args.json, results)


if __name__ == "__main__":
    main()
