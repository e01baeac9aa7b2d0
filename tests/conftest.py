"""Fixtures shared by the test modules.

Helpers live in the `support` package (importable by job processes too); this file holds
only fixtures.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import blockbuster_ctx

from support.slurm import REQUIRE, SlurmCalls, cluster_problem

# A run started in the background by a shell without job control (`.ci/run &`, nohup)
# inherits SIGINT ignored, and so would every process the tests start, which the Ctrl-C
# tests signal: a Python handler here is reset to the default in them at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` (minutes of real time: a one-minute SLURM time limit, 100,000
    submissions) run only with LEGATO_SLOW=1 (`.ci/run --slow`), so that the default run
    stays short; they are skipped, and say so, otherwise."""
    if os.environ.get("LEGATO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run it with LEGATO_SLOW=1 (or .ci/run --slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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


@functools.cache
def _real_cluster_problem() -> str | None:
    return cluster_problem()


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.slurm)])
def cluster(request: pytest.FixtureRequest) -> str:
    """A SLURM test runs against the fake SLURM (every machine) and the real test cluster
    of scripts/slurm-cluster.sh, never another that happens to answer: skipped without it,
    unless LEGATO_REQUIRE_SLURM=1 (CI), which fails it."""
    if request.param == "fake":
        request.getfixturevalue("fake_slurm")
        return "fake"
    problem = _real_cluster_problem()
    if problem is not None:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but the test SLURM cluster is not reachable: {problem}")
        pytest.skip(f"no test SLURM cluster: {problem}")
    return "real"


@pytest.fixture
def calls(cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlurmCalls:
    """The SLURM commands that the test's experiments run, logged."""
    wrappers = SlurmCalls(tmp_path / "bin")
    monkeypatch.setenv("PATH", wrappers.path)
    return wrappers


@pytest.fixture
def no_blocking(anyio_backend: str) -> Iterator[None]:
    """Fails the test when legato's code makes a blocking call (file I/O, sleep, a lock)
    on the event loop's thread: the exact check behind "never blocks the caller's loop",
    where a timing threshold would be loose and flaky. blockbuster sees asyncio's loop;
    on trio the same code paths run unchecked."""
    if anyio_backend != "asyncio":
        yield
        return
    with blockbuster_ctx(["legato"]) as buster:
        for function, where, functions in ALLOWED_BLOCKING:
            buster.functions[function].can_block_in(where, functions)
        yield


ALLOWED_BLOCKING: list[tuple[str, str, set[str]]] = [
    # Once per experiment, at its entry: the import path the jobs inherit (getcwd).
    ("os.path.abspath", "legato/_runtime/_experiment.py", {"_job_env"}),
    # `legato.load` is a synchronous function: a test may call it where a user would.
    ("os.read", "legato/_jobside/_load.py", {"load"}),
]
"""(blocking function, file, functions of that file): the calls on the loop's thread that
are allowed, each said why."""
