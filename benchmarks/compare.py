"""Every benchmark's headline figures at a git revision against the current sources, measured
in the same run: the check behind "no benchmark slower by more than 5%" for a change.

    python benchmarks/compare.py --baseline REV [--only NAMES] [--rounds 3] [--full]
                                 [--tolerance 5]
    nox -s bench_compare -- REV [--only NAMES] ...

REV is checked out in a temporary git worktree (removed at the end). Each benchmark script
of this tree then runs, in a fresh process, once with legato imported from REV's `src/` and
once from this tree's `src/` (uncommitted changes included), and again, `--rounds` times,
alternating which goes first (A B, B A, A B, ...) so that a machine that gets busier or
quieter during the run weighs on both alike. Each script writes its headline figures with
`--json` (see `headline` in _bench_common.py); the best of the rounds counts for each side
(the least disturbed run), and the spread of the rounds is printed beside it, the noise to
read the ratio against.

By default the sizes are small (`quick`: a few minutes in all on two cores); `--full` runs
the benchmarks' own sizes (experimaestro and joblib, which do not change with legato, are
left out). bench_slurm runs only when a SLURM cluster answers. The workdirs that bench_cli,
bench_web and bench_results read are built once, with the current sources, and read by both
sides. Bytecode caches are on for every process (in a temporary PYTHONPYCACHEPREFIX if the
environment disables them), as for an installed package.

A figure slower than the tolerance allows, by less than the spread of its rounds, is marked
"(inside the spread)": the machine moved it as much, so measure it again (`--only`, more
`--rounds`, a quieter machine). Exit status: 1 if a figure is slower beyond the tolerance
and the spread, 2 if a benchmark failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _bench_common import HERE, ROOT, baseline_worktree, bytecode_caches, sources_env


@dataclass(frozen=True)
class Benchmark:
    script: str
    quick: list[str]
    full: list[str]
    workdir: str | None = None
    """The script (bench_cli or bench_results) whose `--build-only` makes the workdir it
    reads, shared by both sides."""
    needs_slurm: bool = False


BENCHMARKS = {
    "identity": Benchmark("bench_identity.py", ["--n", "1000", "--repeats", "10"], []),
    "cache": Benchmark("bench_cache.py", ["--calls", "200", "--repeats", "25"], []),
    "cli": Benchmark(
        "bench_cli.py", ["--jobs", "1000", "--runs", "3"], ["--jobs", "10000"], "bench_cli.py"
    ),
    "results": Benchmark(
        "bench_results.py",
        ["--jobs", "1000", "--runs", "5"],
        ["--jobs", "10000"],
        "bench_results.py",
    ),
    "scheduler": Benchmark(
        "bench_scheduler.py",
        [
            "--steps",
            "1,2,3",
            "--no-floor",
            "--sizes",
            "50",
            "--resubmit",
            "2000",
            "--submit",
            "2000",
        ],
        ["--no-floor"],
    ),
    "web": Benchmark(
        "bench_web.py",
        ["--jobs", "1000", "--runs", "5", "--no-idle"],
        ["--jobs", "10000", "--no-idle"],
        "bench_cli.py",
    ),
    "slurm": Benchmark(
        "bench_slurm.py", ["--sizes", "20", "--poll-interval", "0.5"], [], needs_slurm=True
    ),
}
REFERENCES_OFF = {"bench_identity.py": ["--no-xpm"], "bench_scheduler.py": ["--no-xpm"]}
"""experimaestro's figures do not depend on legato's sources: not run (joblib is optional)."""


@dataclass
class Figure:
    unit: str
    better: str
    values: dict[str, list[float]] = field(default_factory=lambda: {"baseline": [], "current": []})

    def best(self, side: str) -> float:
        values = self.values[side]
        return min(values) if self.better == "lower" else max(values)

    def spread(self) -> float:
        """The largest distance of a round from its side's best, as a fraction of it."""
        return max(
            (abs(v - self.best(side)) / self.best(side) if self.best(side) else 0.0)
            for side, values in self.values.items()
            for v in values
        )


def verdict(figure: Figure, tolerance: float) -> tuple[float, str, bool]:
    """(current / baseline, verdict, whether slower beyond the tolerance)."""
    base, current = figure.best("baseline"), figure.best("current")
    ratio = current / base if base else float("inf")
    cost = ratio if figure.better == "lower" else 1 / ratio if ratio else float("inf")
    if cost > 1 + tolerance:
        said = f"SLOWER by {(cost - 1) * 100:.1f}%"
        if cost - 1 <= figure.spread():
            said += " (inside the spread)"
        return ratio, said, True
    if cost < 1 - tolerance:
        return ratio, f"faster by {(1 - cost) * 100:.1f}%", False
    return ratio, f"within {tolerance * 100:g}%", False


def slurm_answers() -> bool:
    try:
        subprocess.run(["sinfo", "-h"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def run(script: str, argv: list[str], src: Path, out: Path, verbose: bool) -> dict[str, Any]:
    """One run of a benchmark script in a fresh process, legato imported from `src`; its
    headline figures (empty if it skipped itself)."""
    out.unlink(missing_ok=True)
    command = [sys.executable, str(HERE / script), *argv, "--json", str(out)]
    done = subprocess.run(
        command, env=sources_env(src), cwd=HERE, capture_output=not verbose, text=True
    )
    if done.returncode:
        tail = (done.stderr or "")[-2000:]
        raise RuntimeError(f"{script} exited with {done.returncode}\n{tail}")
    if not out.exists():
        return {}
    figures: dict[str, Any] = json.loads(out.read_text()).get("headline", {})
    return figures


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", required=True, metavar="REV", help="git revision")
    parser.add_argument(
        "--only", help=f"comma-separated benchmarks, of: {', '.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument("--full", action="store_true", help="the benchmarks' own sizes")
    parser.add_argument("--tolerance", type=float, default=5.0, help="percent (default 5)")
    parser.add_argument("--verbose", action="store_true", help="show the benchmarks' output")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if args.rounds < 1:
        parser.error("--rounds takes a whole number from 1")
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    tolerance = args.tolerance / 100
    rev = subprocess.run(
        ["git", "rev-parse", "--short", f"{args.baseline}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if rev.returncode:
        parser.error(f"not a git revision here: {args.baseline} ({rev.stderr.strip()})")
    cluster = [name for name in names if BENCHMARKS[name].needs_slurm]
    if cluster and not slurm_answers():
        print(f"{', '.join(cluster)}: skipped (no SLURM cluster answers)")
        names = [name for name in names if name not in cluster]
    current = ROOT / "src"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()

    failed = False
    slower: list[str] = []
    noisy: list[str] = []
    table: dict[str, dict[str, Figure]] = {}
    start = time.perf_counter()
    with baseline_worktree(args.baseline) as tree, tempfile.TemporaryDirectory() as tmp:
        sides = {"baseline": tree / "src", "current": current}
        bytecode_caches([*sides.values(), HERE])
        print(
            f"baseline {rev.stdout.strip()} ({args.baseline}) against the current sources "
            f"({head}{', with uncommitted changes' if dirty else ''}): {args.rounds} rounds, "
            f"{'full' if args.full else 'quick'} sizes, load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores"
        )
        workdirs: dict[str, Path] = {}
        for name in names:
            bench = BENCHMARKS[name]
            argv = [*(bench.full if args.full else bench.quick)]
            argv += REFERENCES_OFF.get(bench.script, [])
            try:
                if bench.workdir is not None:
                    jobs = argv[argv.index("--jobs") + 1]
                    key = f"{bench.workdir} {jobs}"  # one workdir for each script and size
                    if key not in workdirs:
                        workdirs[key] = Path(tmp) / f"workdir-{len(workdirs)}"
                        build = [str(HERE / bench.workdir), "--jobs", jobs, "--build-only"]
                        build += ["--workdir", str(workdirs[key])]
                        subprocess.run(
                            [sys.executable, *build],
                            env=sources_env(current),
                            check=True,
                            capture_output=not args.verbose,
                        )
                    argv += ["--workdir", str(workdirs[key])]
                figures: dict[str, Figure] = {}
                for round_ in range(args.rounds):
                    order = ["baseline", "current"]
                    if round_ % 2:
                        order.reverse()
                    for side in order:
                        began = time.perf_counter()
                        out = Path(tmp) / f"{name}.json"
                        got = run(bench.script, argv, sides[side], out, args.verbose)
                        print(
                            f"  {name} round {round_ + 1}/{args.rounds} {side:<8} "
                            f"{time.perf_counter() - began:5.1f} s",
                            flush=True,
                        )
                        for label, entry in got.items():
                            figure = figures.setdefault(
                                label, Figure(entry["unit"], entry["better"])
                            )
                            figure.values[side].append(float(entry["value"]))
                table[name] = figures
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                failed = True
                print(f"{name}: FAILED: {exc}")

    print()
    print(f"{'benchmark':<10} {'figure':<40} {'unit':>8} {'baseline':>10} {'current':>10} ", end="")
    print(f"{'ratio':>6} {'spread':>7}  verdict")
    for name, figures in table.items():
        if not figures:
            print(f"{name:<10} (skipped itself: nothing to compare)")
        for label, figure in figures.items():
            if not figure.values["baseline"] or not figure.values["current"]:
                print(f"{name:<10} {label:<40} only one side has this figure")
                continue
            ratio, said, is_slower = verdict(figure, tolerance)
            if is_slower:
                (noisy if "spread" in said else slower).append(f"{name}: {label}")
            print(
                f"{name:<10} {label:<40} {figure.unit:>8} {fmt(figure.best('baseline')):>10} "
                f"{fmt(figure.best('current')):>10} {ratio:6.3f} {figure.spread():6.1%}  {said}"
            )
    print(
        f"\n(best of {args.rounds} rounds a side; ratio = current / baseline; spread = the "
        f"largest distance of a round from its side's best; {time.perf_counter() - start:.0f} s)"
    )
    if slower:
        print(f"slower beyond the spread of the rounds: {'; '.join(slower)}")
    if noisy:
        print(f"slower, but inside the spread of the rounds: {'; '.join(noisy)}")
        print("   (measure again, e.g. with --only and more --rounds, on a quieter machine)")
    if not slower and not noisy and not failed:
        print(f"no figure slower by more than {args.tolerance:g}%")
    return 2 if failed else 1 if slower else 0


if __name__ == "__main__":
    sys.exit(main())
