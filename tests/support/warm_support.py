"""Runs every test of a module twice: jobs forked from a warm server (the default), and
fresh processes (`LocalLauncher(warm=False)`), by setting `LEGATO_WARM`, which
`LocalLauncher()` reads when not told, in this process and in the experiments the tests
start in subprocesses.

A module opts in with `from warm_support import job_processes  # noqa: F401`.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, params=["warm", "fresh"])
def job_processes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LEGATO_WARM", "1" if request.param == "warm" else "0")
    return str(request.param)
