"""An experiment's directory, `<workdir>/experiments/<name>/`: its `jobs.txt`, one part
per run, and its `state.json` with the job counts that people are shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._files import atomic_write, write_json
from ._layout import STATE

__all__ = [
    "RUNS_KEPT",
    "RUN_HEADER",
    "count_groups",
    "runs_of",
    "start_run_record",
    "write_experiment_state",
]

RUN_HEADER = "# run "
"""Starts the line that opens each run's part of `jobs.txt`."""
RUNS_KEPT = 3
"""How many runs `jobs.txt` keeps (the latest ones): enough for the run in progress and
the one before it, which `legato clean --orphans` both spare."""


def runs_of(text: str) -> list[list[str]]:
    """The runs recorded in a `jobs.txt`, oldest first: each the list of its job lines.

    Lines before the first run header (the whole file, for an older legato's) count as
    one run."""
    runs: list[list[str]] = []
    current: list[str] = []
    headed = False
    for line in text.splitlines():
        if line.startswith(RUN_HEADER):
            if current or headed:
                runs.append(current)
            current, headed = [], True
        elif line and not line.startswith("#"):
            current.append(line)
    if current or headed:
        runs.append(current)
    return runs


def start_run_record(path: Path, header: str) -> None:
    """Open a new run in the `jobs.txt` at `path`: drop the runs before the last
    `RUNS_KEPT - 1` (rewritten atomically), then append the run's header line."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.startswith(RUN_HEADER):
            blocks.append([])
        blocks[-1].append(line)
    blocks = [b for b in blocks if b]
    if len(blocks) > RUNS_KEPT - 1:
        kept = "".join("".join(b) for b in blocks[len(blocks) - (RUNS_KEPT - 1) :])
        atomic_write(path, kept.encode(), durable=False)
    with open(path, "a", encoding="utf-8") as f:
        if text and not text.endswith("\n"):
            f.write("\n")  # a line cut by a crash stays on its own
        f.write(header + "\n")


def write_experiment_state(path: Path, state: dict[str, Any]) -> None:
    """An experiment's `state.json` (in its directory `path`), rewritten as it goes."""
    write_json(path / STATE, state, durable=False)


def count_groups(counts: dict[str, int]) -> dict[str, int]:
    """An experiment's job counts by state (its state.json's "counts") in the groups that
    people are shown: done, running, failed (dependency_failed with it), cancelled and
    waiting (ready with it)."""
    return {
        "done": counts.get("done", 0),
        "running": counts.get("running", 0),
        "failed": counts.get("failed", 0) + counts.get("dependency_failed", 0),
        "cancelled": counts.get("cancelled", 0),
        "waiting": counts.get("waiting", 0) + counts.get("ready", 0),
    }
