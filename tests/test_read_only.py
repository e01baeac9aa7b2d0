"""A finished sweep published on a read-only mount: reading it through its experiment and
`@cache` hits work; what would have to write fails with a clear `LegatoError`.

Tests run as root here, and root ignores file permissions (`chmod -R a-w` proves nothing),
so the workdir is made read-only for real: a read-only bind mount of it, in a private mount
namespace (`unshare -m`), over which the reading script runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from legato import experiment
from support.runtime_tasks import Corpus, Fickle


def can_mount_read_only(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f"mount --bind {probe} {probe} && mount -o remount,ro,bind {probe} && "
         f"! touch {probe}/x 2>/dev/null"],
        capture_output=True,
    )  # fmt: skip
    probe.rmdir()
    return done.returncode == 0


READER = textwrap.dedent(
    """
    import json, sys
    import anyio
    import legato
    from legato import experiment
    from support.runtime_tasks import Corpus, Fickle

    async def main(workdir, log):
        out = {}
        async with experiment(workdir, "sweep") as xp:
            for name in ("a", "b"):
                await Fickle(name=name, log=log).submit()
            out["hit"] = Corpus(name="a").words()
            try:
                Corpus(name="never").words()
            except legato.LegatoError as exc:
                out["miss"] = [type(exc).__name__, str(exc)]
        out["states"] = [job.state.name for job in xp.jobs]
        try:
            async with experiment(workdir, "sweep") as xp:
                await Fickle(name="new", log=log).submit()
        except legato.LegatoError as exc:
            out["new"] = [type(exc).__name__, str(exc)]
        print("RESULT " + json.dumps(out))

    anyio.run(main, *sys.argv[1:])
    """
)


def test_a_read_only_workdir_serves_finished_work(tmp_path: Path) -> None:
    if not can_mount_read_only(tmp_path):
        pytest.skip("needs root and unshare to make a read-only bind mount")
    workdir, log = tmp_path / "wd", str(tmp_path / "log")

    async def sweep() -> None:
        async with experiment(workdir, "sweep"):
            for name in ("a", "b"):
                await Fickle(name=name, log=log).submit()
            assert Corpus(name="a").words() == "words of a"

    anyio.run(sweep)
    script = tmp_path / "reader.py"
    script.write_text(READER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
    env["LEGATO_DISPLAY"] = "0"
    before = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f'mount --bind "{workdir}" "{workdir}" && mount -o remount,ro,bind "{workdir}" && '
         f'exec "{sys.executable}" "{script}" "{workdir}" "{log}"'],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["states"] == ["DONE", "DONE"]
    assert result["hit"] == "words of a"
    kind, message = result["miss"]
    assert kind == "WorkdirError" and "Read-only file system" in message
    kind, message = result["new"]
    assert kind == "ExperimentFailed" and "Read-only file system" in message
    assert sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")) == before
