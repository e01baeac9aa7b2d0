"""SlurmLauncher benchmark (issue #6): N trivial jobs through a real SLURM cluster against
the same N jobs run locally, and the SLURM commands it took.

    scripts/slurm-cluster.sh start          # a one-node cluster on this machine
    python benchmarks/bench_slurm.py [--sizes 50,200] [--poll-interval 1.0] [--json FILE]

sbatch, squeue and scancel are counted by logging wrappers put first on PATH, which then
run the real commands. The target: calls grow with the number of poll intervals and of
batches, not with the number of jobs. Without a reachable cluster it says so and exits 0
(`nox -s bench` runs every benchmark). On a multi-node cluster, point TMPDIR at a directory
the nodes share: the workdirs are made there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _bench_common import headline, write_results  # noqa: E402
from _bench_tasks import Noop  # noqa: E402

from legato import Launcher, LocalLauncher, SlurmLauncher, experiment  # noqa: E402

COMMANDS = ("sbatch", "squeue", "scancel")


def wrap_commands(directory: Path) -> Path:
    """Logging wrappers of the SLURM commands in `directory`; the log's path."""
    log = directory / "calls.log"
    for command in COMMANDS:
        real = shutil.which(command)
        if real is None:
            print(f"skipped: {command} not on PATH (scripts/slurm-cluster.sh install && start)")
            sys.exit(0)
        wrapper = directory / command
        wrapper.write_text(f'#!/bin/sh\necho {command} >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    os.environ["PATH"] = f"{directory}{os.pathsep}{os.environ['PATH']}"
    return log


def counts(log: Path) -> dict[str, int]:
    lines = log.read_text().split() if log.exists() else []
    return {command: lines.count(command) for command in COMMANDS}


async def run(n: int, launcher: Launcher, max_jobs: int | None) -> float:
    with tempfile.TemporaryDirectory() as workdir:
        start = time.perf_counter()
        async with experiment(workdir, "bench", launcher=launcher, max_jobs=max_jobs) as xp:
            for i in range(n):
                await Noop(index=i).submit()
        wall = time.perf_counter() - start
        assert xp.counts()["done"] == n, xp.counts()
    return wall


def slurm_floor(n: int) -> float:
    """What SLURM alone takes: one array of `n` tasks that only import legato (no
    experiment), until squeue no longer lists it."""
    start = time.perf_counter()
    script = f"#!/bin/sh\nexec {sys.executable} -c 'import legato'\n"
    job = subprocess.run(
        ["sbatch", "--parsable", f"--array=0-{n - 1}", "--output=/dev/null"],
        input=script,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    while subprocess.run(
        ["squeue", "--noheader", f"--jobs={job}"], capture_output=True, text=True, check=True
    ).stdout.strip():
        time.sleep(0.05)
    return time.perf_counter() - start


def node_cpus() -> int:
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=True, timeout=30
        )
        return int(out.stdout.split()[0].rstrip("+"))
    except (OSError, subprocess.SubprocessError, IndexError, ValueError) as exc:
        print(f"skipped: no SLURM cluster answers ({exc})")
        sys.exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,200", help="job counts, comma-separated")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results: dict[str, Any] = {"poll_interval": args.poll_interval}
    sizes = [int(size) for size in args.sizes.split(",")]
    cores, slots = os.cpu_count() or 1, node_cpus()
    print(f"one-node cluster: {slots} CPUs declared in SLURM; this machine: {cores} cores")
    with tempfile.TemporaryDirectory() as bin_dir:
        log = wrap_commands(Path(bin_dir))
        for n in sizes:
            launcher = SlurmLauncher(poll_interval=args.poll_interval)
            before = counts(log)
            slurm = anyio.run(run, n, launcher, None)
            calls = {k: v - before[k] for k, v in counts(log).items()}
            floor = slurm_floor(n)
            local = anyio.run(run, n, LocalLauncher(), cores)
            local_slots = anyio.run(run, n, LocalLauncher(), slots)
            rows = [
                (f"SLURM, poll_interval={args.poll_interval:g} s", f"{slurm:7.2f} s"),
                ("SLURM alone: one array, no experiment", f"{floor:7.2f} s"),
                (f"local, max_jobs={cores}", f"{local:7.2f} s"),
                (f"local, max_jobs={slots}", f"{local_slots:7.2f} s"),
                (f"ratio SLURM / local, max_jobs={cores}", f"{slurm / local:7.2f}"),
                ("ratio SLURM / SLURM alone", f"{slurm / floor:7.2f}"),
            ]
            print(f"\n{n} trivial jobs")
            for label, value in rows:
                print(f"  {label:<38}{value}")
            polls = slurm / args.poll_interval
            print(
                f"  calls: sbatch {calls['sbatch']}, squeue {calls['squeue']}, "
                f"scancel {calls['scancel']} "
                f"({(calls['sbatch'] + calls['squeue']) / n:.3f} per job; "
                f"{polls:.0f} poll intervals in the SLURM run)"
            )
            results[f"n_{n}"] = {"slurm_s": slurm, "floor_s": floor, "local_s": local, **calls}
            headline(results, f"SLURM N={n}", slurm, "s", "lower")
    write_results(args.json, results)


if __name__ == "__main__":
    main()
