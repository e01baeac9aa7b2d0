"""Fixtures shared by the test modules.

Helpers live in the `support` package (importable by job processes too); this file holds
only fixtures.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on both backends anyio supports, as anyio's own tests do."""
    return str(request.param)


FAKE_SLURM = Path(__file__).parent / "support" / "fake_slurm"


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fake sbatch, squeue, scancel, scontrol and sinfo of support/fake_slurm first on
    PATH, their jobs local processes; yields the fake's state directory. Jobs a test leaves
    running are killed at its end."""
    state = tmp_path / "fake-slurm"
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    monkeypatch.setenv("FAKE_SLURM_PYTHON", sys.executable)
    monkeypatch.setenv("PATH", f"{FAKE_SLURM}{os.pathsep}{os.environ['PATH']}")
    yield state
    for path in (state / "jobs").glob("*.json"):
        job = json.loads(path.read_text())
        if job["state"] == "RUNNING" and job.get("pgid"):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job["pgid"], signal.SIGKILL)
