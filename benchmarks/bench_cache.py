"""@cache benchmark (issue #4): the cost of a cache hit against joblib.Memory's, same run.

    python benchmarks/bench_cache.py [--calls 5000] [--repeats 7] [--json FILE]

A hit is: resolve the path (workdir, type name, identifier), take the in-process and the
cross-process lock, load a tiny pickled value, release. joblib.Memory's hit on the same
value (a list of ten floats, the configuration as its argument) hashes the argument,
checks its store and unpickles. Figures are the best of `repeats` runs of `calls` calls,
per call. Target: a legato hit is no slower than joblib's.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from _bench_common import headline, write_results

from legato import Config, Param, cache

VALUE = [float(i) for i in range(10)]


class Features(Config, name="bench.Features"):
    dataset: Param[str]
    size: Param[int] = 128
    scale: Param[float] = 1.0

    @cache("features.pkl")
    def load(self, path: Path) -> list[float]:
        try:
            with open(path, "rb") as f:
                return pickle.load(f)  # type: ignore[no-any-return]
        except FileNotFoundError:
            pass
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(pickle.dumps(VALUE))
        os.replace(tmp, path)
        return VALUE

    @cache("features.pkl")
    async def aload(self, path: Path) -> list[float]:
        # a tiny file: read inline, as the sync method does, to time the lock alone
        with open(path, "rb") as f:  # noqa: ASYNC230
            return pickle.load(f)  # type: ignore[no-any-return]


def compute(config: Features) -> list[float]:
    return VALUE


def best(run: Callable[[int], tuple[float, float]], calls: int, repeats: int) -> float:
    """Seconds per call, best of `repeats`; the best CPU seconds per call go to CPU."""
    runs = [run(calls) for _ in range(repeats)]
    CPU[run] = min(cpu for _, cpu in runs) / calls
    return min(wall for wall, _ in runs) / calls


CPU: dict[object, float] = {}
"""This process's CPU seconds per call (all its threads), best of the repeats: it moves
less than wall-clock time with the machine's load."""


def timed_sync(call: Callable[[], object]) -> Callable[[int], tuple[float, float]]:
    def run(n: int) -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            call()
        return time.perf_counter() - start, time.process_time() - cpu

    return run


def timed_async(config: Features, backend: str) -> Callable[[int], tuple[float, float]]:
    def run(n: int) -> tuple[float, float]:
        async def loop() -> tuple[float, float]:
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                await config.aload()
            return time.perf_counter() - start, time.process_time() - cpu

        return anyio.run(loop, backend=backend)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    try:  # the reference: an optional bench dependency
        import joblib
    except ImportError:
        joblib = None

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LEGATO_WORKDIR"] = os.path.join(tmp, "legato")
        config = Features(dataset="wiki")
        assert config.load() == VALUE  # computed once; every timed call is a hit
        runs = {
            "legato @cache hit, sync": timed_sync(config.load),
            "legato @cache hit, async (asyncio)": timed_async(config, "asyncio"),
            "legato @cache hit, async (trio)": timed_async(config, "trio"),
        }
        figures = {name: best(run, args.calls, args.repeats) for name, run in runs.items()}
        if joblib is not None:
            memory = joblib.Memory(os.path.join(tmp, "joblib"), verbose=0)
            cached = memory.cache(compute)
            assert cached(config) == VALUE
            joblib_hit = best(timed_sync(lambda: cached(config)), args.calls, args.repeats)
            figures["joblib.Memory hit"] = joblib_hit

    results: dict[str, Any] = {"calls": args.calls, "repeats": args.repeats}
    width = max(map(len, figures))
    print(f"cache hit of a tiny value, best of {args.repeats} x {args.calls} calls")
    for name, seconds in figures.items():
        against = f"  {seconds / joblib_hit:5.2f}x joblib" if joblib is not None else ""
        print(f"  {name:<{width}}  {seconds * 1e6:8.1f} us/call{against}")
        if name.startswith("legato"):
            headline(results, name, seconds * 1e6, "us/call", "lower")
            headline(results, f"{name} (CPU)", CPU[runs[name]] * 1e6, "cpu-us/call", "lower")
    if joblib is None:
        print("joblib.Memory: skipped (not installed: pip install -e '.[bench]')")
    else:
        worst = max(v for k, v in figures.items() if k.startswith("legato"))
        verdict = "holds" if worst <= joblib_hit else "MISSED"
        print(
            f"target (legato no slower than joblib's hit): {verdict}, "
            f"joblib/legato = {joblib_hit / worst:.1f}"
        )
        results["joblib_us"] = joblib_hit * 1e6
    write_results(args.json, results)


if __name__ == "__main__":
    main()
