"""docs/how-to/time-limits.md runs as written: its script trains in two attempts, and the
attempts' logs read as the page shows."""

from __future__ import annotations

from pathlib import Path

from support.cli import cli
from support.docs import console_output, run, titled_blocks

PAGE = Path(__file__).parent.parent / "docs" / "how-to" / "time-limits.md"


def test_time_limits_how_to(tmp_path: Path) -> None:
    files = titled_blocks(PAGE)
    assert set(files) == {"train.py"}
    (tmp_path / "train.py").write_text(files["train.py"])
    assert run(tmp_path, "train.py") == console_output(PAGE, "python train.py")

    workdir = tmp_path / "runs"
    first = cli("jobs", "log", "7ffc", "--attempt", "1", workdir=workdir)
    latest = cli("jobs", "log", "7ffc", workdir=workdir)
    assert first.returncode == latest.returncode == 0, first.stderr + latest.stderr
    shown_first = console_output(PAGE, "legato -w runs jobs log 7ffc --attempt 1")
    shown_latest = console_output(PAGE, "legato -w runs jobs log 7ffc")
    # Where the time limit falls depends on the machine's speed: the epochs may differ,
    # the story may not.
    first_lines, latest_lines = first.stdout.splitlines(), latest.stdout.splitlines()
    assert first_lines[0] == shown_first[0] == "attempt 1 starts at epoch 0"
    stopped = int(first_lines[1].removeprefix("interrupted after epoch "))
    assert 1 <= stopped < 6 and shown_first[1].startswith("interrupted after epoch ")
    assert latest_lines == [f"attempt 2 starts at epoch {stopped}", shown_latest[1]]
