"""Scheduler benchmarks (issue #3, "How fast"), each figure with its target and verdict.

    python benchmarks/bench_scheduler.py [--sizes 200,1000] [--xpm-sizes 200] [--no-xpm]
                                         [--steps 1,2,3,4] [--no-floor] [--json FILE]

1. Trivial jobs (`Noop`, whose `execute` does nothing), N independent ("fanout") and N in a
   chain, `max_jobs` = CPU count: wall time from opening the experiment to the end of its
   block, against the floor, N x the wall time of `python -c "import legato"` / cores (a
   job cannot cost much less than starting Python and importing legato), that time being
   measured again before and after each run. A chain runs one job at a time whatever the cores, so
   its floor is N x that time. Target: within 1.3x of the floor. As a check of the
   machine's load, the fan-out's floor is also given with CPU-count imports at once.
   experimaestro (`pip install -e '.[bench]'`) runs the same workload with its own
   scheduler and local launcher (`_xpm_reference.py`) in the same run, for the sizes of
   `--xpm-sizes`, in a process of its own. Target: at least 3x faster.
2. Resubmitting a finished sweep of `--resubmit` jobs (every job directory holds its done
   marker), in a fresh process: wall time of the experiment block and the process's peak
   resident memory. Targets: under 2 s and 300 MB. experimaestro reruns, in a fresh
   process, the fan-out it finished in step 1 (the largest xpm size: running 10,000 of its
   jobs first would take most of an hour); legato resubmits a sweep of that size too, and
   the speed-up is given at that size and, per job, against legato's 10,000. Target: at
   least 10x faster, at the same size.
3. Responsiveness, in a fresh process: a coroutine ticking every 10 ms while 10,000 jobs
   are submitted, then run for a second, then cancelled as the experiment is left. Target:
   no tick more than 50 ms late. For reference, the same ticker without legato, beside
   CPU-count busy processes.

Jobs start a Python process each, so the figures depend on the machine's load: the load
average is printed before and after. When the environment disables bytecode caches
(PYTHONDONTWRITEBYTECODE), every job would compile every module it imports, which no
installed package does: caches then go to a temporary PYTHONPYCACHEPREFIX for every
process of the run, floor included (`--keep-env` measures the environment as it is).

Every run's workdir is a new directory under one temporary directory (`TMPDIR` chooses
its file system: `TMPDIR=/dev/shm` measures legato without the disk), which is removed
once everything is measured, not run by run: see `workdir`. Step 4 prints what creating
a file and a page fault cost there, which bound what a warm job can cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

from _bench_common import bytecode_caches, headline, legato_package, write_results  # noqa: E402
from _bench_numpy import NumpyNoop  # noqa: E402
from _bench_slow import SlowNoop  # noqa: E402
from _bench_tasks import Noop  # noqa: E402

from legato import LocalLauncher, experiment  # noqa: E402

CORES = os.cpu_count() or 1
FLOOR_RATIO = 1.3
XPM_SPEEDUP = 3.0
RESUBMIT_S, RESUBMIT_MB, RESUBMIT_SPEEDUP = 2.0, 300.0, 10.0
TICK_S, MAX_GAP_MS = 0.01, 50.0
WARM_FANOUT, WARM_CHAIN, WARM_HEAVY, WARM_XPM, XP_CPU_MS = 10.0, 10.0, 20.0, 30.0, 5.0
SCRATCH_ENV = "LEGATO_BENCH_SCRATCH"


def workdir(prefix: str = "run-") -> str:
    """A new directory for one run, under the benchmark's scratch directory, which `main`
    removes at the very end rather than after each run. ext4 without a journal (as on
    some cloud machines) passes over the inodes freed in the last seconds each time it
    makes a file: deleting a run's thousands of files made every file of the next run
    cost up to a millisecond of CPU, and the warm runs, which make the same files in a
    tenth of the time, paid for it most."""
    root = os.environ.get(SCRATCH_ENV)
    if root is None:
        root = os.environ[SCRATCH_ENV] = tempfile.mkdtemp(prefix="legato-bench-")
    return tempfile.mkdtemp(prefix=prefix, dir=root)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def use_bytecode_caches() -> str:
    """Give every process of the run bytecode caches, as an installed package has."""
    prefix = bytecode_caches([legato_package(), HERE])
    if prefix is None:
        return "on"
    # Every module a job of the run imports (numpy's too, whose own caches the prefix hides):
    # otherwise the first process to import one (the warm server, which runs first) would
    # compile it for all the others. The legato of PYTHONPATH is the one the jobs import.
    path = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    warm = "import legato._jobside._worker, legato._runtime._experiment, "
    warm += "legato._jobside._warm_server, _bench_tasks, _bench_numpy, _bench_slow"
    subprocess.run([sys.executable, "-c", warm], check=True, env=env)
    return f"on (PYTHONDONTWRITEBYTECODE was set: caches in {prefix})"


def import_time(runs: int = 11) -> float:
    """Median wall time of `python -c "import legato"`, one at a time; measured again
    before and after each workload, so that the floor sees the machine's load of the
    moment (other work on a shared machine moves it by 20% within minutes)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import legato"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parallel_import_time(n: int = 40) -> float:
    """Wall time per process of `n` runs of `python -c "import legato"`, CORES at a time:
    what this machine, with its current load, gives a job's start when every core runs one."""
    start = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    for _ in range(n):
        if len(running) == CORES:
            running.pop(0).wait()
        running.append(subprocess.Popen([sys.executable, "-c", "import legato"]))
    for process in running:
        process.wait()
    return (time.perf_counter() - start) * CORES / n


async def legato_run(
    n: int, chain: bool, workdir: str, warm: bool | None = None, task: type[Any] = Noop
) -> float:
    start = time.perf_counter()
    launcher = LocalLauncher(warm=warm)
    async with experiment(workdir, "bench", max_jobs=CORES, launcher=launcher) as xp:
        previous: Any = None
        for i in range(n):
            if chain:
                previous = await task(index=i, after=previous).submit()
            else:
                await task(index=i).submit()
    wall = time.perf_counter() - start
    assert xp.counts()["done"] == n, xp.counts()
    return wall


def timed_run(
    n: int, chain: bool, warm: bool | None, task: type[Any] = Noop
) -> tuple[float, float, float]:
    """(wall s, CPU s of this process: the experiment's own work, its threads included,
    CPU s of the job processes and the warm server, reaped by the end of the block)."""
    import resource

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    wd = workdir()
    cpu, jobs_cpu = time.process_time(), children()
    wall = anyio.run(legato_run, n, chain, wd, warm, task)
    return wall, time.process_time() - cpu, children() - jobs_cpu


def _print_rows(stats: Any, n: int, top: int, total: float | None = None) -> None:
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)
    for (file, line, func), (_cc, calls, tottime, _cum, _callers) in rows[:top]:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"      {tottime / n * 1000:6.3f} ms  {calls / n:5.1f} calls  {func} ({where})")


def profile_summary(n: int, top: int = 12) -> None:
    """Where the CPU goes in a warm fan-out of `n` trivial jobs: cProfile (CPU time) of
    the experiment's event loop thread, of the warm server and of its jobs (their
    `LEGATO_WARM_PROFILE`), and the page faults of the server and jobs, which no
    profile of Python code shows: every page a forked job (or the server after a fork)
    writes to is copied first."""
    import cProfile
    import io
    import pstats
    import resource

    def children() -> tuple[float, int]:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime, usage.ru_minflt

    profiler = cProfile.Profile(time.thread_time)
    folder = workdir("profiles-")
    os.environ["LEGATO_WARM_PROFILE"] = folder
    try:
        wd = workdir()
        (cpu, faults), start = children(), time.thread_time()
        profiler.enable()
        anyio.run(legato_run, n, False, wd, True)
        profiler.disable()
        loop_cpu = time.thread_time() - start
        jobs_cpu, jobs_faults = children()
        jobs_cpu, jobs_faults = jobs_cpu - cpu, jobs_faults - faults
        loop = pstats.Stats(profiler)
        print(f"   where the CPU goes, warm fan-out of {n} (cProfile, CPU time; per job):")
        print(f"   - the experiment's event loop thread: {loop_cpu / n * 1000:.2f} ms")
        _print_rows(loop, n, top)
        files = sorted(Path(folder).glob("job-*.prof"))
        if files:
            jobs = pstats.Stats(str(files[0]), stream=io.StringIO())
            for file in files[1:]:
                jobs.add(str(file))
            python = jobs.total_tt / len(files) * 1000  # type: ignore[attr-defined]
            print(
                f"   - a job's process, from its fork to its exit: {python:.2f} ms in Python code"
                f" (the jobs and the server: {jobs_cpu / n * 1000:.2f} ms CPU in all, "
                f"{jobs_faults / n:.0f} page faults)"
            )
            _print_rows(jobs, len(files), top)
        for file in Path(folder).glob("server-*.prof"):
            server = pstats.Stats(str(file), stream=io.StringIO())
            print(f"   - the warm server: {server.total_tt / n * 1000:.2f} ms")  # type: ignore[attr-defined]
            _print_rows(server, n, 5)
    finally:
        del os.environ["LEGATO_WARM_PROFILE"]


def file_creation_cost(n: int = 200) -> float:
    """CPU seconds that creating one file (a new inode, as `mkdir` and every atomic write
    of a record make) costs in the file system where the benchmark's workdirs are: a job
    makes seven (its directory, lock, params, two logs, state.json, `done`), and on
    some cloud machines each costs a millisecond, which then outweighs legato's own work."""
    folder = workdir("files-")
    start = time.process_time()
    for i in range(n):
        os.close(os.open(os.path.join(folder, str(i)), os.O_WRONLY | os.O_CREAT, 0o644))
    return (time.process_time() - start) / n


def settled_file_creation_cost(patience: float = 90.0) -> float:
    """`file_creation_cost`, once it no longer falls: files deleted just before (by an
    earlier benchmark, or the test suite) can make each new one cost a millisecond for
    half a minute (see `workdir`), which would weigh on the first runs only."""
    deadline = time.monotonic() + patience
    cost = file_creation_cost()
    while time.monotonic() < deadline:
        time.sleep(5.0)
        again = file_creation_cost()
        if again > cost * 0.8:
            return min(cost, again)
        print(f"   (creating a file costs {again * 1e6:.0f} us of CPU, falling: waiting)")
        cost = again
    return cost


def page_fault_cost(pages: int = 5000) -> float:
    """CPU seconds of one page fault: the first write to a page of fresh anonymous memory,
    what a forked job's first write to each page of its server's memory costs too (copy on
    write). About 0.1-0.3 us on a bare machine; much more in some virtual machines, where a
    warm job's 600 to 900 faults (its server's included) then make most of its CPU."""
    import mmap
    import resource

    memory = mmap.mmap(-1, pages * mmap.PAGESIZE)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # one fault a page, even where huge pages are on
        memory.madvise(mmap.MADV_NOHUGEPAGE)
    try:
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.process_time()
        for offset in range(0, pages * mmap.PAGESIZE, mmap.PAGESIZE):
            memory[offset] = 1
        spent = time.process_time() - start
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    finally:
        memory.close()
    return spent / max(faults, 1)


def warm_section(args: argparse.Namespace, with_xpm: bool, results: dict[str, Any]) -> None:
    """4. Warm job processes against fresh ones (`LocalLauncher(warm=False)`), in the same run."""
    fan, chain, heavy, xpm_n = (int(s) for s in args.warm_sizes.split(","))
    print(f"4. Warm job processes (max_jobs={CORES}), against warm=False in the same run")
    create = settled_file_creation_cost()
    results["file_creation_us"] = create * 1e6
    fault = page_fault_cost()
    results["page_fault_us"] = fault * 1e6
    print(
        f"   creating a file in {tempfile.gettempdir()} costs {create * 1e6:.0f} us of CPU here "
        f"(a trivial job creates 7); a page fault {fault * 1e6:.1f} us"
    )
    rows = [
        ("fanout", fan, False, Noop, WARM_FANOUT),
        ("chain", chain, True, Noop, WARM_CHAIN),
        ("slow-import", heavy, False, SlowNoop, WARM_HEAVY),
        ("numpy", heavy, False, NumpyNoop, WARM_HEAVY),
    ]
    for kind, n, is_chain, task, target in rows:
        warm, cpu, jobs_cpu = timed_run(n, is_chain, True, task)
        cold, _, cold_jobs_cpu = timed_run(n, is_chain, False, task)
        speedup = cold / warm
        results[f"warm_{kind}_{n}"] = {"warm_s": warm, "fresh_s": cold, "speedup": speedup}
        results[f"warm_{kind}_{n}"]["xp_cpu_ms_per_job"] = cpu / n * 1000
        results[f"warm_{kind}_{n}"]["jobs_cpu_ms_per_job"] = jobs_cpu / n * 1000
        headline(results, f"warm {kind} N={n}", warm, "s", "lower")
        headline(results, f"fresh {kind} N={n}", cold, "s", "lower")
        headline(results, f"warm {kind} N={n}, experiment CPU", cpu / n * 1000, "ms/job", "lower")
        print(
            f"   {kind:<11} N={n:<5} warm {warm:6.2f} s ({warm / n * 1000:5.1f} ms/job)  "
            f"fresh {cold:6.2f} s ({cold / n * 1000:5.1f} ms/job)  {speedup:5.1f}x "
            f"(target >= {target:.0f}x: {verdict(speedup >= target)})"
        )
        print(
            f"   {'':<11} {'':<7} the experiment's own CPU: {cpu / n * 1000:.2f} ms/job "
            f"(target < {XP_CPU_MS:.0f} ms: {verdict(cpu / n * 1000 < XP_CPU_MS)}); "
            f"jobs and server {jobs_cpu / n * 1000:.1f} ms/job "
            f"(fresh: {cold_jobs_cpu / n * 1000:.1f} ms/job)"
        )
    if with_xpm:
        warm, _, _ = timed_run(xpm_n, False, True)
        ref = xpm("fanout", xpm_n, workdir("xpm-"))
        if ref is not None:
            results[f"warm_xpm_{xpm_n}"] = {"warm_s": warm, "xpm_s": ref, "speedup": ref / warm}
            print(
                f"   fanout      N={xpm_n:<5} warm {warm:6.2f} s  experimaestro {ref:6.2f} s "
                f"({ref / xpm_n * 1000:5.1f} ms/job)  {ref / warm:5.1f}x "
                f"(target >= {WARM_XPM:.0f}x: {verdict(ref / warm >= WARM_XPM)})"
            )
    profile_summary(min(fan, 300))
    print(f"   creating a file, measured again: {file_creation_cost() * 1e6:.0f} us of CPU")


def xpm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("experimaestro") is not None


XPM_RUN = """
import sys
sys.path.insert(0, {here!r})
import _xpm_reference
print(_xpm_reference.run_{kind}({n}, {workdir!r}))
"""


def xpm(kind: str, n: int, workdir: str) -> float | None:
    """experimaestro's wall time for the workload, in a process of its own as legato's
    share of the run has (its scheduler leaves threads behind)."""
    code = XPM_RUN.format(here=str(HERE), kind=kind, n=n, workdir=workdir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True)
    if out.returncode:  # the reference is optional: report, do not fail
        print(f"    experimaestro {kind} failed: {out.stderr.decode()[-800:]}")
        return None
    return float(out.stdout.split()[-1])


# The peak resident memory of the process itself: VmHWM, which starts afresh at exec, where
# getrusage's ru_maxrss keeps the high-water mark of the process that forked it.
PEAK_MB = """
def peak_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

RESUBMIT = """
import sys, time
sys.path.insert(0, {here!r})
from pathlib import Path
import anyio
from _bench_tasks import Noop
from legato import experiment
N, wd = {n}, Path({workdir!r})
for i in range(N):  # a finished sweep: each job directory holds its done marker
    p = wd / "jobs" / Noop.__legato_type_name__ / Noop(index=i).__identifier__
    p.mkdir(parents=True, exist_ok=True)
    (p / "done").write_text("{{}}")  # the layout of docs/workdir.md
async def main():
    start = time.perf_counter()
    async with experiment(wd, "bench") as xp:
        for i in range(N):
            await Noop(index=i).submit()
    assert xp.counts()["done"] == N
    return time.perf_counter() - start
wall = anyio.run(main)
print(wall, peak_mb())
"""

XPM_RERUN = """
import sys
sys.path.insert(0, {here!r})
import _xpm_reference
wall = _xpm_reference.run_fanout({n}, {workdir!r})
print(wall, peak_mb())
"""


def in_fresh_process(code: str) -> tuple[float, float]:
    """(wall s, peak RSS MB) that `code` prints."""
    out = subprocess.run([sys.executable, "-c", PEAK_MB + code], check=True, capture_output=True)
    wall, rss = out.stdout.split()[-2:]
    return float(wall), float(rss)


def legato_resubmit(n: int) -> tuple[float, float]:
    return in_fresh_process(RESUBMIT.format(here=str(HERE), n=n, workdir=workdir()))


async def responsiveness(n: int, workdir: str) -> tuple[float, float, float]:
    """Largest extra delay (ms) of a 10 ms ticker while `n` fresh jobs are submitted, then
    while they run for a second, then while the experiment is left; and the seconds the
    submissions took."""
    gaps: list[tuple[float, float]] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await anyio.sleep(TICK_S)
            now = time.perf_counter()
            gaps.append((now, now - last - TICK_S))
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.1)
        start = time.perf_counter()
        with anyio.CancelScope() as scope:
            async with experiment(workdir, "bench", max_jobs=CORES):
                for i in range(n):
                    await Noop(index=i).submit()
                submitted = time.perf_counter()
                await anyio.sleep(1.0)
                scope.cancel()
        await anyio.sleep(0.1)
        tg.cancel_scope.cancel()
    during = max(gap for t, gap in gaps if start <= t <= submitted)
    overall = max(gap for t, gap in gaps if t >= start)
    return during * 1000, overall * 1000, submitted - start


def ticker_in_fresh_process(n: int) -> tuple[float, float, float]:
    """`responsiveness(n)` in a new process, as a program embedding legato runs it: not
    here, where experimaestro has run, leaving its threads and many more objects for the
    garbage collector."""
    out = subprocess.run(
        [sys.executable, __file__, "--ticker-only", str(n)], check=True, capture_output=True
    )
    during, overall, took = json.loads(out.stdout)
    return float(during), float(overall), float(took)


async def _largest_tick_delay(seconds: float) -> float:
    worst = 0.0
    last = time.perf_counter()
    end = last + seconds
    while last < end:
        await anyio.sleep(TICK_S)
        now = time.perf_counter()
        worst = max(worst, now - last - TICK_S)
        last = now
    return worst * 1000


def ticker_beside_busy_processes(seconds: float = 2.0) -> float:
    """Largest extra delay (ms) of the ticker alone, while CORES processes keep the CPUs
    busy (as running jobs do): what the machine itself gives a sleeping coroutine."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(CORES)]
    try:
        return anyio.run(_largest_tick_delay, seconds)
    finally:
        for process in busy:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="200,1000", help="N for fanout and chain")
    parser.add_argument("--xpm-sizes", default="200", help="N run by experimaestro too")
    parser.add_argument("--no-xpm", action="store_true", help="skip experimaestro")
    parser.add_argument("--resubmit", type=int, default=10_000, help="finished sweep size")
    parser.add_argument("--submit", type=int, default=10_000, help="jobs for the ticker")
    parser.add_argument("--keep-env", action="store_true", help="leave bytecode settings")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--warm-sizes",
        default="1000,200,100,60",
        help="N of step 4: fanout, chain, slow imports, against experimaestro",
    )
    parser.add_argument("--warm-only", action="store_true", help="run step 4 only")
    parser.add_argument("--steps", default="1,2,3,4", help="the steps to run (see above)")
    parser.add_argument("--no-floor", action="store_true", help="step 1 without its floors")
    parser.add_argument("--ticker-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ticker_only:  # step 3, in a process of its own (see ticker_in_fresh_process)
        print(json.dumps(anyio.run(responsiveness, args.ticker_only, workdir())))
        return
    # One scratch directory for every run's workdir, removed once all are measured (see
    # `workdir`); the ticker's process, started below, makes its workdir there too.
    os.environ[SCRATCH_ENV] = tempfile.mkdtemp(prefix="legato-bench-")
    try:
        run_steps(args)
    finally:
        shutil.rmtree(os.environ.pop(SCRATCH_ENV), ignore_errors=True)


def run_steps(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    steps = {4} if args.warm_only else {int(s) for s in args.steps.split(",") if s}
    with_xpm = not args.no_xpm and xpm_available()
    xpm_sizes = {int(s) for s in args.xpm_sizes.split(",") if s} if with_xpm else set()
    bytecode = "as the environment says" if args.keep_env else use_bytecode_caches()
    results: dict[str, Any] = {"cores": CORES, "python": sys.version.split()[0]}
    results["load_before"] = os.getloadavg()

    print(f"Python {results['python']}, {CORES} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"bytecode caches: {bytecode}")
    if not with_xpm:
        print("experimaestro: skipped (--no-xpm, or not installed: pip install -e '.[bench]')")
    finished_xpm: dict[int, str] = {}  # size -> workdir of experimaestro's finished fan-out
    if 1 in steps and args.no_floor:
        print(f"1. Trivial jobs, max_jobs={CORES} (no floor: --no-floor)")
        for n in sizes:
            for kind in ("fanout", "chain"):
                wall, cpu, jobs_cpu = timed_run(n, kind == "chain", None)
                print(
                    f"   {kind:<6} N={n:<5} legato {wall:7.2f} s ({wall / n * 1000:5.1f} ms/job), "
                    f"CPU {cpu:.2f} s + {jobs_cpu:.2f} s in the jobs"
                )
                results[f"{kind}_{n}"] = {"legato_s": wall, "cpu_s": cpu, "jobs_cpu_s": jobs_cpu}
                headline(results, f"{kind} N={n}", wall, "s", "lower")
                label = f"{kind} N={n} (CPU, jobs included)"
                headline(results, label, cpu + jobs_cpu, "cpu-s", "lower")
    elif 1 in steps:
        t_import = import_time()
        t_parallel = parallel_import_time()
        results["import_s"], results["parallel_import_s"] = t_import, t_parallel
        print(
            f"python -c 'import legato': {t_import * 1000:.0f} ms alone; "
            f"{t_parallel * 1000:.0f} ms per process with {CORES} at once on this machine now"
        )
        print("(the floor below: N x that time [measured before and after each run] / cores; a")
        print(" chain's jobs run one at a time, so its floor is N x that time)")
        print()
        print(f"1. Trivial jobs, max_jobs={CORES} (targets: <= {FLOOR_RATIO}x the floor, ", end="")
        print(f">= {XPM_SPEEDUP:.0f}x experimaestro)")
        for n in sizes:
            for kind in ("fanout", "chain"):
                before = import_time()
                wall = anyio.run(legato_run, n, kind == "chain", workdir())
                t_import = (before + import_time()) / 2
                floor = n * t_import / (1 if kind == "chain" else CORES)
                ratio = wall / floor
                entry: dict[str, Any] = {"legato_s": wall, "floor_s": floor, "ratio": ratio}
                entry["import_s"] = t_import
                print(
                    f"   {kind:<6} N={n:<5} legato {wall:7.2f} s ({wall / n * 1000:5.1f} ms/job)  "
                    f"floor {floor:6.2f} s ({t_import * 1000:3.0f} ms)  ratio {ratio:4.2f} "
                    f"({verdict(ratio <= FLOOR_RATIO)})"
                )
                if kind == "fanout":  # the same floor, its processes run CORES at once
                    busy_floor = n * parallel_import_time(20) / CORES
                    entry["parallel_floor_s"] = busy_floor
                    print(
                        f"   {'':<6} {'':<7} floor with {CORES} imports at once now "
                        f"{busy_floor:6.2f} s: ratio {wall / busy_floor:4.2f}"
                    )
                if n in xpm_sizes:
                    wd = workdir("xpm-")
                    ref = xpm(kind, n, wd)
                    if kind == "fanout" and ref is not None:
                        finished_xpm[n] = wd
                    if ref is not None:
                        entry["xpm_s"], entry["speedup"] = ref, ref / wall
                        print(
                            f"   {'':<6} {'':<7} experimaestro {ref:7.2f} s "
                            f"({ref / n * 1000:5.1f} ms/job)  legato is {ref / wall:4.1f}x faster "
                            f"({verdict(ref / wall >= XPM_SPEEDUP)})"
                        )
                results[f"{kind}_{n}"] = entry
            headline(results, f"{kind} N={n}", wall, "s", "lower")

    if 2 in steps:
        print()
        print(
            f"2. Resubmitting a finished sweep, fresh process (targets: < {RESUBMIT_S:.0f} s, "
            f"< {RESUBMIT_MB:.0f} MB, >= {RESUBMIT_SPEEDUP:.0f}x experimaestro)"
        )
        n = args.resubmit
        wall, rss = legato_resubmit(n)
        results["resubmit"] = {"n": n, "legato_s": wall, "maxrss_mb": rss}
        headline(results, f"resubmit N={n}", wall, "s", "lower")
        headline(results, f"resubmit N={n}, peak RSS", rss, "MB", "lower")
        ok = wall < RESUBMIT_S and rss < RESUBMIT_MB
        print(
            f"   legato        N={n:<6} {wall:6.2f} s ({wall / n * 1e6:5.0f} us/job), "
            f"peak RSS {rss:4.0f} MB ({verdict(ok)})"
        )
        if finished_xpm:
            m = max(finished_xpm)
            code = XPM_RERUN.format(here=str(HERE), n=m, workdir=finished_xpm[m])
            try:
                ref, ref_rss = in_fresh_process(code)
            except subprocess.CalledProcessError as exc:
                print(f"   experimaestro rerun failed: {exc.stderr.decode()[-500:]}")
            else:
                small, small_rss = legato_resubmit(m)
                per_job = (ref / m) / (wall / n)
                results["resubmit"].update(
                    xpm_n=m, xpm_s=ref, xpm_maxrss_mb=ref_rss, legato_same_n_s=small
                )
                print(
                    f"   legato        N={m:<6} {small:6.2f} s ({small / m * 1e6:5.0f} us/job), "
                    f"peak RSS {small_rss:4.0f} MB"
                )
                print(
                    f"   experimaestro N={m:<6} {ref:6.2f} s ({ref / m * 1e6:5.0f} us/job), "
                    f"peak RSS {ref_rss:4.0f} MB (the fan-out of step 1, run again)"
                )
                print(
                    f"   legato is {ref / small:.0f}x faster at N={m} "
                    f"({verdict(ref / small >= RESUBMIT_SPEEDUP)}); per job, legato at N={n} "
                    f"against experimaestro at N={m}: {per_job:.0f}x"
                )

    if 3 in steps:
        print()
        print(f"3. Event loop, 10 ms ticker (target: no extra delay above {MAX_GAP_MS:.0f} ms)")
        during, overall, took = ticker_in_fresh_process(args.submit)
        control = ticker_beside_busy_processes()
        results["ticker"] = {
            "submit_s": took,
            "during_ms": during,
            "overall_ms": overall,
            "without_legato_ms": control,
        }
        print(
            f"   submitting {args.submit:,} jobs ({took:.2f} s): "
            f"largest extra delay {during:.1f} ms"
            f" ({verdict(during <= MAX_GAP_MS)}); with a second of running and leaving the "
            f"experiment: {overall:.1f} ms ({verdict(overall <= MAX_GAP_MS)})"
        )
        print(f"   the same ticker without legato, beside {CORES} busy processes: {control:.1f} ms")
        headline(results, f"submit {args.submit:,} jobs", took, "s", "lower")
    if 4 in steps:
        print()
        warm_section(args, with_xpm, results)
    results["load_after"] = os.getloadavg()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    write_results(args.json, results)


if __name__ == "__main__":
    main()
