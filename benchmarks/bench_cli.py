"""Command-line benchmark (issue #5): `legato jobs ls` over a 10,000-job workdir, timed as a
whole process (interpreter start, imports, reading every job directory, printing).

    python benchmarks/bench_cli.py [--jobs 10000] [--runs 5] [--workdir DIR] [--json FILE]

The workdir is fake but valid: real params files written by `legato.dumps` (tagged fields,
a nested configuration), state.json files as a worker writes them, `done` markers (and a
few failure records), and an experiment listing every job. Figures are printed next to
the floor, `python -c "import legato"`, measured in the same run. Target: under 1 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _bench_common import (
    bench_workdir,
    fake_workdir,
    headline,
    legato_script,
    workdir_arguments,
    write_results,
)

from legato import Config, Param, Task, tag

TARGET = 1.0


class Model(Config, name="bench.Model"):
    hidden: Param[int] = 128
    dropout: Param[float] = 0.1


class Train(Task, name="bench.Train"):
    model: Param[Model]
    lr: Param[float]
    seed: Param[int] = 0
    epochs: Param[int] = 10

    def execute(self) -> None:
        pass


def make_workdir(root: Path, n: int) -> None:
    """`n` finished jobs (one in 20 failed) of one experiment."""
    from legato._jobdir._files import write_json
    from legato._jobdir._layout import DONE, FAILED, STATE, experiment_dir

    def train(i: int) -> Train:
        return Train(
            model=Model(hidden=tag(64 * (1 + i % 8))), lr=tag(10.0 ** -(1 + i % 5)), seed=i
        )

    def finish(i: int, path: Path, now: float) -> None:
        started = now - (n - i) * 2.0
        state = {
            "experiment": "bench",
            "launcher": "local",
            "submitted": started - 0.1,
            "pid": 10_000 + i,
            "host": "bench-host",
            "started": started,
        }
        write_json(path / STATE, state, durable=False)
        if i % 20 == 19:
            record = {"state": "failed", "reason": "ValueError: diverged", "ended": started + 1}
            write_json(path / FAILED, record, durable=False)
        else:
            write_json(path / DONE, {"ended": started + 1.5, "duration": 1.4}, durable=False)

    fake_workdir(root, n, train, finish)
    now = time.time()
    write_json(
        experiment_dir(root, "bench") / STATE,
        {"name": "bench", "pid": 1, "host": "bench-host", "started": now - 2 * n,
         "status": "done", "updated": now, "counts": {"done": n - n // 20, "failed": n // 20}},
        durable=False,
    )  # fmt: skip


def timed(argv: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    """Wall-clock seconds of each run, after one run that warms the page cache; the CPU
    seconds of each run (less moved by the machine's load) go to CPU."""
    subprocess.run(argv, check=True, stdout=subprocess.PIPE, env=env)
    times = []
    CPU.clear()
    for _ in range(runs):
        cpu = children_cpu()
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.PIPE, env=env)
        times.append(time.perf_counter() - start)
        CPU.append(children_cpu() - cpu)
    return times


CPU: list[float] = []


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    workdir_arguments(parser, runs=5)
    args = parser.parse_args()

    with bench_workdir(args.workdir, args.jobs, make_workdir, "legato-bench-cli-") as root:
        if args.build_only:
            return
        script = legato_script()
        env = {**os.environ, "LEGATO_WORKDIR": str(root)}
        floor = statistics.median(timed([sys.executable, "-c", "import legato"], args.runs))
        print(f"floor: python -c 'import legato'          {floor:.3f} s")
        results: dict[str, Any] = {"jobs": args.jobs, "runs": args.runs, "import_s": floor}
        headline(results, "python -c 'import legato'", floor, "s", "lower")
        headline(results, "python -c 'import legato' (CPU)", min(CPU), "cpu-s", "lower")
        cases = [
            ("legato jobs ls", ["jobs", "ls"]),
            ("legato jobs ls --json", ["jobs", "ls", "--json"]),
            ("legato jobs ls --state failed", ["jobs", "ls", "--state", "failed"]),
            ("legato jobs ls --tag lr=0.01", ["jobs", "ls", "--tag", "lr=0.01"]),
        ]
        worst = 0.0
        for label, argv in cases:
            times = timed([script, *argv], args.runs, env)
            median = statistics.median(times)
            worst = max(worst, median)
            headline(results, label, median, "s", "lower")
            headline(results, f"{label} (CPU)", min(CPU), "cpu-s", "lower")
            print(
                f"{label:<40} {median:.3f} s median of {args.runs} (min {min(times):.3f} s), "
                f"{median / floor:.1f}x the floor, {args.jobs / median:,.0f} jobs/s"
            )
        verdict = "OK" if worst < TARGET else "TOO SLOW"
        print(f"target: < {TARGET:.1f} s over {args.jobs:,} jobs: {verdict}")
        write_results(args.json, results)


if __name__ == "__main__":
    main()
