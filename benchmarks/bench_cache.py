"""@cache benchmark (issue #4): the cost of a cache hit against joblib.Memory's, same run.

    python benchmarks/bench_cache.py [--calls 5000] [--repeats 7]

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

import anyio

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


def best(run: Callable[[int], float], calls: int, repeats: int) -> float:
    """Seconds per call, best of `repeats`."""
    return min(run(calls) for _ in range(repeats)) / calls


def timed_sync(call: Callable[[], object]) -> Callable[[int], float]:
    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - start

    return run


def timed_async(config: Features, backend: str) -> Callable[[int], float]:
    def run(n: int) -> float:
        async def loop() -> float:
            start = time.perf_counter()
            for _ in range(n):
                await config.aload()
            return time.perf_counter() - start

        return anyio.run(loop, backend=backend)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LEGATO_WORKDIR"] = os.path.join(tmp, "legato")
        config = Features(dataset="wiki")
        assert config.load() == VALUE  # computed once; every timed call is a hit
        memory = joblib.Memory(os.path.join(tmp, "joblib"), verbose=0)
        cached = memory.cache(compute)
        assert cached(config) == VALUE

        figures = {
            "legato @cache hit, sync": best(timed_sync(config.load), args.calls, args.repeats),
            "legato @cache hit, async (asyncio)": best(
                timed_async(config, "asyncio"), args.calls, args.repeats
            ),
            "legato @cache hit, async (trio)": best(
                timed_async(config, "trio"), args.calls, args.repeats
            ),
            "joblib.Memory hit": best(timed_sync(lambda: cached(config)), args.calls, args.repeats),
        }

    reference = figures["joblib.Memory hit"]
    width = max(map(len, figures))
    print(f"cache hit of a tiny value, best of {args.repeats} x {args.calls} calls")
    for name, seconds in figures.items():
        print(
            f"  {name:<{width}}  {seconds * 1e6:8.1f} us/call  {seconds / reference:5.2f}x joblib"
        )
    worst = max(v for k, v in figures.items() if k.startswith("legato"))
    verdict = "holds" if worst <= reference else "MISSED"
    print(
        f"target (legato no slower than joblib's hit): {verdict}, "
        f"joblib/legato = {reference / worst:.1f}"
    )


if __name__ == "__main__":
    main()
