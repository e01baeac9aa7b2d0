"""The files legato writes in a workdir, as other users and tools see them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from legato import experiment
from xp_tasks import Step

pytestmark = pytest.mark.anyio


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_state_files_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    """A shared workdir must stay readable by the group: no 0600 files from temp-then-rename."""
    async with experiment(tmp_path, "xp"):
        step = Step(name="a", log=str(tmp_path / "log"))
        await step.submit()
    modes = file_modes(tmp_path)
    names = {Path(p).name for p in modes}
    assert {"params.msgpack", "done", "state.json", "jobs.txt"} <= names, names
    assert all(mode & 0o044 == 0o044 for mode in modes.values()), modes
    assert not [p for p in names if p.startswith(".")], "temporary files left behind"


def file_modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file() and p.name != "log"
    }
