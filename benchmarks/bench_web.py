"""Dashboard benchmark (issue #14): `legato serve` over a 10,000-job workdir, through HTTP.

    python benchmarks/bench_web.py [--jobs 10000] [--runs 7] [--workdir DIR] [--no-idle]
                                   [--json FILE]

The workdir is the one of bench_cli.py (real params files with tags and a nested
configuration, state files, done markers, a few failures, one experiment listing every
job). The server runs as the real `legato serve` process; timings are wall-clock seconds
of whole HTTP requests from this process (httpx), medians of --runs.

- cold: the first listing, which reads every job directory;
- listing: the JSON of all 10,000 jobs (`/api/jobs?limit=0`) — target under 200 ms;
- listing after changes: the same, right after one job's state changed on disk (the
  server re-reads what changed, then answers);
- page: 100 rows filtered by a tag and sorted by another, as the table asks;
- idle CPU: the server's CPU time over 10 s, with a page watching its event stream and
  nothing changing, then with nobody watching (a minute; `--no-idle` skips it).

The figures use the workdir layout of docs/workdir.md, not legato's private names, so that
`compare.py` can run this script against an older revision's sources.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
from _bench_common import bench_workdir, headline, legato_script, workdir_arguments, write_results
from bench_cli import make_workdir

TARGET = 0.200
IDLE_TARGET = 0.02
"""Fraction of one core the server may use while watched and nothing changes."""
FAILED = "failed.json"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(client: httpx.Client, url: str, runs: int, before: object = None) -> list[float]:
    times = []
    for _ in range(runs):
        if callable(before):
            before()
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    workdir_arguments(parser, runs=7)
    parser.add_argument("--no-idle", action="store_true", help="skip the idle CPU figures")
    args = parser.parse_args()

    workdir = contextlib.ExitStack()
    server = None
    try:
        root = workdir.enter_context(
            bench_workdir(args.workdir, args.jobs, make_workdir, "legato-bench-web-")
        )
        if args.build_only:
            return
        server = subprocess.Popen(
            [legato_script(), "--workdir", str(root), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        url = ""
        while not url:
            line = server.stdout.readline()
            if not line:
                sys.exit("legato serve printed no URL")
            found = re.search(r"(http://\S+)/\?token=(\S+)", line)
            if found:
                url, token = found.group(1), found.group(2)
        client = httpx.Client(
            base_url=url, headers={"Authorization": f"token {token}"}, timeout=120
        )
        listing = "/api/jobs?limit=0"

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"load average before the run: {load} ({os.cpu_count()} cores)")
        cold = timed(client, listing, 1)[0]
        size = len(client.get(listing).content)
        print(f"cold listing (reads every job)        {cold:.3f} s")
        warm = timed(client, listing, args.runs)
        median = statistics.median(warm)
        print(
            f"listing of {args.jobs:,} jobs ({size / 1e6:.1f} MB)    {median:.3f} s median of "
            f"{args.runs} (min {min(warm):.3f} s)"
        )

        failed = next(p for p in (root / "jobs").glob("*/*") if (p / FAILED).exists())
        record = (failed / FAILED).read_bytes()

        def change() -> None:
            # One job's verdict changes on disk; the next answer must reflect it.
            marker = failed / FAILED
            if marker.exists():
                marker.unlink()
            else:
                marker.write_bytes(record)
            time.sleep(1.05)  # the server re-reads at most once a second per request

        changed = timed(client, listing, args.runs, change)
        if not (failed / FAILED).exists():
            (failed / FAILED).write_bytes(record)
        print(
            f"listing after a change on disk          {statistics.median(changed):.3f} s median"
            f" (min {min(changed):.3f} s)"
        )
        page = "/api/jobs?tag=lr%3D0.01&sort=tag:hidden&order=desc&limit=100"
        paged = timed(client, page, args.runs)
        print(f"one page (tag filter, tag sort)         {statistics.median(paged):.3f} s median")
        results: dict[str, Any] = {"jobs": args.jobs, "runs": args.runs}
        headline(results, "cold listing", cold, "s", "lower")
        headline(results, f"listing of {args.jobs:,} jobs", median, "s", "lower")
        headline(results, "listing after a change", statistics.median(changed), "s", "lower")
        headline(results, "one page", statistics.median(paged), "s", "lower")
        if args.no_idle:
            client.close()
            write_results(args.json, results)
            return

        # Idle: a page watching the event stream, nothing changing.
        stop = threading.Event()

        def watch() -> None:
            try:
                with client.stream("GET", "/api/events", timeout=None) as events:
                    for _ in events.iter_lines():
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                return  # the client closed under it

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(35)  # past the 30 s after which polls slow down
        before = cpu_seconds(server.pid)
        time.sleep(10)
        watched = (cpu_seconds(server.pid) - before) / 10
        stop.set()
        client.close()
        time.sleep(2)
        before = cpu_seconds(server.pid)
        time.sleep(10)
        unwatched = (cpu_seconds(server.pid) - before) / 10
        print(f"idle CPU, watched                       {watched:.1%} of a core")
        print(f"idle CPU, nobody watching               {unwatched:.1%} of a core")
        results["idle_cpu"] = {"watched": watched, "unwatched": unwatched}
        write_results(args.json, results)

        ok = median < TARGET and watched < IDLE_TARGET
        verdict = "OK" if ok else "TOO SLOW"
        print(
            f"target: listing {args.jobs:,} jobs < {TARGET * 1000:.0f} ms and idle CPU < "
            f"{IDLE_TARGET:.0%} of a core: {verdict}"
        )
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        workdir.close()


if __name__ == "__main__":
    main()
