"""docs/experiments.md runs as written, and docs/api.md documents every public name.

The page's scripts (its ```` ```python title="…" ```` blocks) run one after the other in one
directory, as a reader runs them, and print what the page shows. Output that depends on
timing (log lines, a frame of the live view) is checked for its shape and its jobs.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import legato
from legato import LegatoError, NoExperimentError, Param, Task, experiment
from support.cli import run_on_terminal
from support.docs import console_output, run, titled_blocks

DOCS = Path(__file__).parent.parent / "docs"
PAGE = DOCS / "experiments.md"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Noop(Task, name="docs.Noop"):
    n: Param[int] = 0

    def execute(self) -> None:
        pass


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the page's scripts, as a reader would save them."""
    where = tmp_path_factory.mktemp("experiments")
    files = titled_blocks(PAGE)
    assert set(files) == {
        "pipeline.py",
        "live.py",
        "logged.py",
        "cancel.py",
        "on_trio.py",
        "results.py",
    }
    for name, code in files.items():
        (where / name).write_text(code)
    return where


def test_every_python_block_is_run() -> None:
    untitled = re.findall(r"^ *```python\n", PAGE.read_text(), flags=re.M)
    assert not untitled, "experiments.md: give each python block a file title so it runs"


def test_scripts_print_what_the_page_shows(scripts: Path) -> None:
    expected = console_output(PAGE, "python pipeline.py")
    assert run(scripts, "pipeline.py") == expected
    assert run(scripts, "pipeline.py") == expected  # "nothing runs" the second time

    shown = console_output(PAGE, "time python cancel.py")
    assert run(scripts, "cancel.py") == shown[: shown.index("")]

    assert run(scripts, "on_trio.py") == console_output(PAGE, "python on_trio.py")
    assert run(scripts, "results.py") == console_output(PAGE, "python results.py")


def without_time(line: str) -> str:
    return re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", "", line)


def test_log_lines(scripts: Path) -> None:
    env = {**os.environ, "LEGATO_LOG_INTERVAL": "1"}
    env.pop("LEGATO_WORKDIR", None)
    done = subprocess.run(
        [sys.executable, "logged.py"],
        cwd=scripts,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = [without_time(line) for line in done.stderr.splitlines()]
    shown = [
        without_time(line)
        for line in console_output(PAGE, "LEGATO_LOG_INTERVAL=1 python logged.py")
    ]
    # Every job's line, in whatever order the jobs ended.
    assert sorted(line for line in got if "DEBUG" in line) == sorted(
        line for line in shown if "DEBUG" in line
    )
    # Summary lines as shown, with the counts of the moment.
    summaries = [line for line in shown if "INFO" in line]
    assert summaries
    for line in summaries:
        pattern = re.sub(r"\d+", r"\\d+", re.escape(line))
        assert any(re.fullmatch(pattern, g) for g in got), line


def run_on_a_terminal(cwd: Path, script: str) -> str:
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("LEGATO_WORKDIR", None)
    env.pop("LEGATO_DISPLAY", None)
    return ANSI.sub("", run_on_terminal([sys.executable, script], env, cwd))


def test_live_view_frame(scripts: Path) -> None:
    frame = re.search(r"^```text\n(live: .*?)^```", PAGE.read_text(), flags=re.M | re.S)
    assert frame is not None
    header, bar, *rows = frame.group(1).splitlines()
    assert rows
    out = run_on_a_terminal(scripts, "live.py")
    lines = {line.strip() for line in re.split(r"[\r\n]", out)}
    assert "live: 6 done, 0 running, 0 failed, 0 waiting (6 jobs)" in lines  # the last frame
    assert re.fullmatch(r"live: \d done, \d running, \d failed, \d waiting \(6 jobs\)", header)
    assert set(bar) <= set("━╺╸")
    for row in rows:  # these jobs, reporting progress in this format
        shape = re.fullmatch(r"(live\.Train/[0-9a-f]{8})\s+\d+\.\d%\s+epoch \d+", row)
        assert shape is not None, row
        pattern = rf"{re.escape(shape.group(1))}\s+\d+\.\d%\s+epoch \d+"
        assert any(re.fullmatch(pattern, line) for line in lines), row


def test_errors_shown_are_raised() -> None:
    text = PAGE.read_text()
    with pytest.raises(NoExperimentError) as no_xp:
        asyncio.run(Noop().submit())
    assert f"legato._errors.NoExperimentError: {no_xp.value}" in text


def test_closed_and_nested_experiments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = PAGE.read_text()

    async def closed() -> None:
        async with experiment(tmp_path, "pipeline") as xp:
            pass
        await xp.submit(Noop())

    with pytest.raises(LegatoError) as after:
        asyncio.run(closed())
    assert f"(`{after.value}`)" in text

    async def in_a_job() -> None:
        async with experiment(tmp_path, "pipeline"):
            pass

    monkeypatch.setenv("LEGATO_WORKER", "1")
    with pytest.raises(LegatoError) as nested:
        asyncio.run(in_a_job())
    assert f"legato._errors.LegatoError: {nested.value}" in text


def test_api_reference_covers_every_public_name() -> None:
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^::: legato\.(\w+)$", text, flags=re.M))
    public = set(legato.__all__) - {"__version__"}
    assert documented == public
    assert "`legato.__version__`" in text
