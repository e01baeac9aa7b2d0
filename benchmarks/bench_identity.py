"""Identity benchmark (issue #2): construction + identifier of 10,000 configurations.

    python benchmarks/bench_identity.py [--n 10000] [--repeats 5] [--no-xpm] [--json FILE]
                                        [--baseline REV]

The representative class has 8 identity fields: an int, a float, a str, a bool, a list of
10 floats, a dict of 5 entries, an Enum and a nested configuration of 3 fields. Each of the
`n` configurations is distinct (and so is its nested configuration); the timed part builds
both and reads the outer identifier as a hex string. The input values (lists, dicts) are
made before the clock starts, the same for both systems.

experimaestro (`pip install -e '.[bench]'`) runs the same workload in the same process,
through its public API: `Model.C(...)` to build, `config.__identifier__().all.hex()` to read
the identifier. Throughput is the best of `repeats` runs.

The floor is what any identity of these values costs at least: the same values in plain
msgspec Structs (built the same way, inner and outer), msgpack-encoded and SHA-256-hashed
to a hex string, with no validation, no read-only copies and no canonical form. It runs in
the same process, in turn with legato (a run of each, `repeats` times), and legato's
throughput is printed as a fraction of it.

`--baseline REV` also runs the same workload, in a subprocess, with legato's sources as
they were at git revision REV (checked out in a temporary git worktree), and
prints the ratio: the cost of a change measured in one run on one machine. The two are
measured in turn, three times each, and the best of each counts, so that a machine busy
for a while weighs on both alike. For example,
`--baseline f8dd13c` compares with the sources before configurations held their lists,
dicts and sets read-only (docs/configurations.md).

Memory: tracemalloc's peak of Python allocations while building and holding the `n`
configurations with their identifiers (inputs excluded), in a separate, untimed run.
"""

from __future__ import annotations

import argparse
import enum
import gc
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
from _bench_common import baseline_worktree, headline, sources_env, write_results

from legato import Config, Param

TARGET_IDS_PER_S = 100_000
TARGET_RATIO = 20.0
TARGET_FLOOR_FRACTION = 0.7


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


COLORS = list(Color)


class Inner(Config, name="bench.Inner"):
    size: Param[int]
    rate: Param[float]
    label: Param[str]


class Model(Config, name="bench.Model"):
    seed: Param[int]
    lr: Param[float]
    name: Param[str]
    shuffle: Param[bool]
    weights: Param[list[float]]
    options: Param[dict[str, int]]
    color: Param[Color]
    inner: Param[Inner]


Row = tuple[int, float, str, bool, list[float], dict[str, int], Color, int, float, str]


def inputs(n: int) -> list[Row]:
    """The values of `n` distinct configurations, made before any clock starts."""
    rows: list[Row] = []
    for i in range(n):
        weights = [i + k / 10 for k in range(10)]
        options = {f"opt{k}": i * 5 + k for k in range(5)}
        outer = (i, 1e-3 * (i + 1), f"run-{i}", i % 2 == 0, weights, options, COLORS[i % 3])
        rows.append((*outer, i % 97, 0.5 + i, f"inner-{i}"))
    return rows


Build = Callable[[list[Row]], tuple[list[Any], list[str]]]


def builder(
    model: Callable[..., Any], inner: Callable[..., Any], identify: Callable[[Any], str]
) -> Build:
    """The timed loop: build each configuration (and its nested one) with `model` and
    `inner`, and read its identifier with `identify`."""

    def build(rows: list[Row]) -> tuple[list[Any], list[str]]:
        configs = []
        ids = []
        for seed, lr, name, shuffle, weights, options, color, size, rate, label in rows:
            config = model(
                seed=seed,
                lr=lr,
                name=name,
                shuffle=shuffle,
                weights=weights,
                options=options,
                color=color,
                inner=inner(size=size, rate=rate, label=label),
            )
            configs.append(config)
            ids.append(identify(config))
        return configs, ids

    return build


build_legato = builder(Model, Inner, attrgetter("__identifier__"))


try:  # the reference system: an optional bench dependency
    from experimaestro import Config as XConfig
    from experimaestro import Param as XParam
except ImportError:
    XConfig = None

if XConfig is not None:  # experimaestro refuses classes declared inside functions

    class XInner(XConfig):  # type: ignore[misc]
        size: XParam[int]
        rate: XParam[float]
        label: XParam[str]

    class XModel(XConfig):  # type: ignore[misc]
        seed: XParam[int]
        lr: XParam[float]
        name: XParam[str]
        shuffle: XParam[bool]
        weights: XParam[list[float]]
        options: XParam[dict[str, int]]
        color: XParam[Color]
        inner: XParam[XInner]


def xpm_identifier(config: Any) -> str:
    return config.__identifier__().all.hex()  # type: ignore[no-any-return]


def build_xpm(rows: list[Row]) -> tuple[list[Any], list[str]]:
    """The same workload with experimaestro's classes and public API."""
    return builder(XModel.C, XInner.C, xpm_identifier)(rows)


class FloorInner(msgspec.Struct):
    size: int
    rate: float
    label: str


class FloorModel(msgspec.Struct):
    seed: int
    lr: float
    name: str
    shuffle: bool
    weights: list[float]
    options: dict[str, int]
    color: Color
    inner: FloorInner


def build_floor(rows: list[Row]) -> tuple[list[Any], list[str]]:
    """The floor: the same values in plain msgspec Structs, msgpack-encoded, SHA-256-hashed
    (no validation, no canonical form, no type name: what any identity costs at least)."""
    encode = msgspec.msgpack.Encoder().encode
    sha256 = hashlib.sha256
    return builder(FloorModel, FloorInner, lambda config: sha256(encode(config)).hexdigest())(rows)


def floor_ratio(rows: list[Row], repeats: int, results: dict[str, Any]) -> None:
    """legato's throughput as a fraction of the floor's, measured in the same process and in
    turn (a run of each, `repeats` times; the best of each counts), so that a machine busy
    for a while weighs on both alike."""
    rate, floor = 0.0, 0.0
    for _ in range(repeats):
        rate = max(rate, throughput(build_legato, rows, 1))
        floor = max(floor, throughput(build_floor, rows, 1))
    ratio = rate / floor
    results["floor"] = {"ids_per_s": floor, "legato_ids_per_s": rate, "legato_fraction": ratio}
    verdict = "met" if ratio >= TARGET_FLOOR_FRACTION else "NOT met"
    print(
        f"floor          {floor:>10,.0f} identifiers/s (plain Structs, msgpack, SHA-256), "
        f"legato {rate:,.0f} in turn with it:\n"
        f"               legato is {ratio:.2f} of it (target >= {TARGET_FLOOR_FRACTION}: {verdict})"
    )


def throughput(build: Build, rows: list[Row], repeats: int) -> float:
    """Identifiers per second, best of `repeats` runs over all rows."""
    return throughputs(build, rows, repeats)[0]


def throughputs(build: Build, rows: list[Row], repeats: int) -> tuple[float, float]:
    """Identifiers per second of wall-clock time and of this process's CPU time, each the
    best of `repeats` runs over all rows (CPU time moves less with the machine's load)."""
    best = best_cpu = float("inf")
    for _ in range(repeats):
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        _, ids = build(rows)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        assert len(set(ids)) == len(rows), "configurations must be distinct"
    return len(rows) / best, len(rows) / max(best_cpu, 1e-9)


def peak_memory(build: Build, rows: list[Row]) -> tuple[float, float]:
    """(peak, held) MB of Python allocations for building and holding the configurations."""
    gc.collect()
    tracemalloc.start()
    try:
        configs = build(rows)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del configs
    return peak / 2**20, held / 2**20


def baseline(src: Path, n: int, repeats: int) -> dict[str, Any]:
    """This benchmark's legato figures with the sources in `src`, in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        argv = [sys.executable, __file__, "--n", str(n), "--repeats", str(repeats)]
        subprocess.run([*argv, "--no-xpm", "--json", str(out)], env=sources_env(src), check=True)
        figures: dict[str, Any] = json.loads(out.read_text())["legato"]
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="configurations per run")
    parser.add_argument("--repeats", type=int, default=5, help="runs; the best counts")
    parser.add_argument("--xpm-repeats", type=int, default=3)
    parser.add_argument("--no-xpm", action="store_true", help="skip experimaestro")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--baseline", metavar="REV", help="also measure legato at git REV")
    args = parser.parse_args()

    rows = inputs(args.n)
    print(f"{args.n:,} configurations of 8 identity fields, {os.cpu_count()} cores")
    results: dict[str, Any] = {"n": args.n}

    rate, cpu_rate = throughputs(build_legato, rows, args.repeats)
    peak, held = peak_memory(build_legato, rows)
    results["legato"] = {"ids_per_s": rate, "peak_mb": peak, "held_mb": held}
    results["legato"]["ids_per_cpu_s"] = cpu_rate
    verdict = "met" if rate >= TARGET_IDS_PER_S else "NOT met"
    print(f"legato         {rate:>10,.0f} identifiers/s  (target {TARGET_IDS_PER_S:,}: {verdict})")
    print(
        f"               memory (tracemalloc) peak {peak:6.1f} MB, held {held:6.1f} MB "
        f"({held * 2**20 / args.n:,.0f} B per configuration)"
    )

    floor_ratio(rows, args.repeats, results)

    if args.no_xpm or XConfig is None:
        print("experimaestro  skipped (not installed or --no-xpm)")
    else:
        xrate = throughput(build_xpm, rows, args.xpm_repeats)
        xpeak, xheld = peak_memory(build_xpm, rows)
        ratio = rate / xrate
        results["experimaestro"] = {"ids_per_s": xrate, "peak_mb": xpeak, "held_mb": xheld}
        results["ratio"] = ratio
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(f"experimaestro  {xrate:>10,.0f} identifiers/s")
        print(
            f"               memory (tracemalloc) peak {xpeak:6.1f} MB, held {xheld:6.1f} MB "
            f"({xheld * 2**20 / args.n:,.0f} B per configuration)"
        )
        print(f"ratio          {ratio:>10.1f}x  (target >= {TARGET_RATIO:.0f}x: {verdict})")
    if args.baseline:
        import legato

        print(f"baseline       legato at {args.baseline} (this run: {legato.__file__})")
        base_rate = 0.0
        with baseline_worktree(args.baseline) as tree:
            for _ in range(3):
                base = baseline(tree / "src", args.n, args.repeats)
                base_rate = max(base_rate, base["ids_per_s"])
                rate = max(rate, throughput(build_legato, rows, args.repeats))
        results["legato"]["ids_per_s"] = rate
        results["baseline"] = {"rev": args.baseline, **base, "ids_per_s": base_rate}
        print(f"legato         {rate:>10,.0f} identifiers/s (best of every round)")
        print(f"baseline       {base_rate:>10,.0f} identifiers/s at {args.baseline}")
        change = rate / base_rate - 1
        print(f"change         {change:>+10.1%} identifiers/s against {args.baseline}")
    headline(results, "identifiers", results["legato"]["ids_per_s"], "ids/s", "higher")
    headline(results, "identifiers (CPU)", cpu_rate, "ids/cpu-s", "higher")
    headline(results, "memory held", results["legato"]["held_mb"], "MB", "lower")
    write_results(args.json, results)


if __name__ == "__main__":
    main()
