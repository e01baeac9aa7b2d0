"""benchmarks/compare.py, the check that a change leaves every benchmark within 5%: run on
one cheap benchmark against HEAD, it prints a verdict for each headline figure and leaves
no git worktree behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPARE = ROOT / "benchmarks" / "compare.py"
VERDICT = re.compile(r"(within 5%|SLOWER by \d+\.\d%( \(inside the spread\))?|faster by \d+\.\d%)$")


def worktrees() -> list[str]:
    out = subprocess.run(
        ["git", "worktree", "list", "--porcelain"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.startswith("worktree ")]


@pytest.fixture
def git_checkout() -> None:
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout: compare.py needs one")


@pytest.mark.slow
@pytest.mark.usefixtures("git_checkout")
def test_compare_prints_a_verdict_for_every_headline_figure() -> None:
    before = worktrees()
    done = subprocess.run(
        [sys.executable, str(COMPARE), "--baseline", "HEAD", "--only", "cache", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: one round, noise
    rows = [line for line in done.stdout.splitlines() if line.startswith("cache ")]
    for figure in ["sync", "async (asyncio)", "async (trio)"]:
        for label, unit in [(figure, "us/call"), (f"{figure} (CPU)", "cpu-us/call")]:
            # benchmark, figure, unit, baseline, current, ratio, spread (0: one round), verdict
            row = re.compile(
                rf"cache +legato @cache hit, {re.escape(label)} +{unit} +[\d.,]+ +[\d.,]+ "
                rf"+[\d.]+ +0\.0% +{VERDICT.pattern}"
            )
            assert len([r for r in rows if row.fullmatch(r)]) == 1, (label, done.stdout)
    assert len(rows) == 6, done.stdout
    assert worktrees() == before


@pytest.mark.usefixtures("git_checkout")
def test_compare_refuses_an_unknown_revision_or_benchmark() -> None:
    for argv, said in [
        (["--baseline", "no-such-revision"], "not a git revision here: no-such-revision"),
        (["--baseline", "HEAD", "--only", "cahce"], "unknown benchmark(s) cahce"),
    ]:
        done = subprocess.run(
            [sys.executable, str(COMPARE), *argv], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done
        assert said in done.stderr, done.stderr
