"""What the benchmarks share: a checkout of another revision's sources, bytecode caches for
the processes a benchmark starts, headline figures in its JSON output, and the fake but valid
10,000-job workdirs that bench_cli, bench_web and bench_results read.

The timed parts of the benchmarks use legato's public API (and its console script) only, so
that `compare.py` can run today's benchmark scripts against an older revision's sources;
private modules are imported only where a fake workdir is written, which `compare.py` does
once, with the current sources (the on-disk format is the same for both: docs/workdir.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@contextmanager
def baseline_worktree(rev: str) -> Iterator[Path]:
    """The repository at git revision `rev`, checked out in a temporary worktree (detached,
    so no branch is touched) that is removed on exit, even after an error or ^C."""
    tmp = Path(tempfile.mkdtemp(prefix="legato-baseline-"))
    tree = tmp / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(tree), rev], cwd=ROOT, check=True
    )
    try:
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, check=False)


def sources_env(src: Path, **extra: str) -> dict[str, str]:
    """This process's environment with legato imported from `src` (job processes inherit it)."""
    return {**os.environ, **extra, "PYTHONPATH": str(src)}


def bytecode_caches(warm: list[Path]) -> str | None:
    """Give every process started from now on bytecode caches, as an installed package has,
    when the environment disables them (PYTHONDONTWRITEBYTECODE): otherwise each process
    compiles every module it imports, which measures the size of the sources rather than
    legato. The caches go to a temporary PYTHONPYCACHEPREFIX, filled now for the `warm`
    directories; returns it, or None if caches were on already."""
    if not sys.flags.dont_write_bytecode and "PYTHONDONTWRITEBYTECODE" not in os.environ:
        return None
    prefix = tempfile.mkdtemp(prefix="legato-bench-pyc-")
    import atexit

    atexit.register(shutil.rmtree, prefix, ignore_errors=True)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    for directory in warm:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(directory)], check=True)
    return prefix


def legato_package() -> Path:
    """The directory of the legato package this process imports."""
    import legato

    return Path(legato.__file__).parent


def headline(results: dict[str, Any], name: str, value: float, unit: str, better: str) -> None:
    """Record one of the figures `compare.py` compares across revisions: `better` is
    "lower" (seconds, bytes) or "higher" (throughput)."""
    assert better in ("lower", "higher"), better
    results.setdefault("headline", {})[name] = {"value": value, "unit": unit, "better": better}


def write_results(path: str | Path | None, results: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2))


def legato_script() -> str:
    """The `legato` console script, this interpreter's first: the command a user times."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("legato", path=path)
    if found is None:
        sys.exit("the `legato` console script is not installed: pip install -e .")
    return found


def fake_workdir(
    root: Path, n: int, make_task: Callable[[int], Any], finish: Callable[[int, Path, float], None]
) -> None:
    """`n` job directories of one experiment "bench" that lists them all: each holds the
    params file `legato.dumps` writes for `make_task(i)`; `finish(i, job_dir, now)` writes
    the rest (state, markers, results)."""
    from legato import dumps
    from legato._core._identity import current_workdir
    from legato._jobdir._files import atomic_write
    from legato._jobdir._layout import JOBS_LIST, PARAMS, experiment_dir, job_dir

    token = current_workdir.set(root)
    lines = []
    now = time.time()
    try:
        for i in range(n):
            task = make_task(i)
            type_name = type(task).__legato_type_name__
            path = job_dir(root, type_name, task.__identifier__)
            path.mkdir(parents=True)
            atomic_write(path / PARAMS, dumps(task), durable=False)
            finish(i, path, now)
            lines.append(f"{type_name}/{task.__identifier__}\n")
    finally:
        current_workdir.reset(token)
    xp = experiment_dir(root, "bench")
    xp.mkdir(parents=True)
    (xp / JOBS_LIST).write_text("".join(lines))


def workdir_arguments(parser: argparse.ArgumentParser, runs: int) -> None:
    """The options of a benchmark that reads a workdir of `--jobs` fake jobs."""
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--workdir", help="build (or reuse) the workdir here, and keep it")
    parser.add_argument("--build-only", action="store_true", help="build --workdir, time nothing")
    parser.add_argument("--json", help="also write the figures to this file")


@contextmanager
def bench_workdir(
    workdir: str | None, jobs: int, make: Callable[[Path, int], None], prefix: str
) -> Iterator[Path]:
    """The workdir a benchmark reads: `workdir` (built there if it holds no jobs yet, and
    kept) or a temporary one, built and removed on exit."""
    tmp = None if workdir else tempfile.mkdtemp(prefix=prefix)
    root = Path(workdir or tmp or ".").absolute()
    try:
        if not (root / "jobs").exists():
            start = time.perf_counter()
            make(root, jobs)
            print(f"built a {jobs:,}-job workdir in {time.perf_counter() - start:.1f} s")
        yield root
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
