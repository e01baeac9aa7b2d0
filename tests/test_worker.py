"""The job entry point: classes from a `__main__` script, import paths, and `load()`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import legato
from support.warm_support import job_processes  # noqa: F401 - every test, warm and fresh

SCRIPT = textwrap.dedent(
    """
    import anyio, os, sys
    from pathlib import Path
    from typing import Annotated
    from legato import Task, Param, pathgenerator, experiment, tag
    {helper_import}

    class Hello(Task):
        who: Param[str]
        out: Annotated[Path, pathgenerator("hello.txt")]

        def execute(self):
            self.out.write_text(f"{{self.who}} {{os.getcwd() == str(self.__taskdir__)}} "
                                f"{{self.__tags__}} {{greeting()}}")

    {guard}
    async def main():
        async with experiment(sys.argv[1], "main") as xp:
            hello = Hello(who=tag("world"))
            await hello.submit()
        print(hello.__identifier__, hello.out)

    {run}
    """
)


def write_script(tmp_path: Path, guarded: bool = True) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helpers.py").write_text("def greeting():\n    return 'hi'\n")
    script = tmp_path / "scripts" / "greet.py"
    script.parent.mkdir()
    body = SCRIPT.format(
        helper_import=f"sys.path.insert(0, {str(lib)!r})\nfrom helpers import greeting",
        guard="",
        run='if __name__ == "__main__":\n    anyio.run(main)' if guarded else "anyio.run(main)",
    )
    script.write_text(body)
    return script


def test_main_script_classes_run_from_another_directory(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, str(script), "wd"], cwd=elsewhere, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    identifier, out = result.stdout.split()
    assert Path(out).read_text() == "world True {'who': 'world'} hi"
    assert "/jobs/greet.Hello/" in out  # named after the script's module, not __main__
    assert Path(out).is_relative_to(elsewhere / "wd")
    # the job directory rebuilds the task in this process too, with the same identity
    task = legato.load(Path(out).parent)
    assert task.__identifier__ == identifier
    assert task.out == Path(out)
    assert task.__tags__ == {"who": "world"}


def test_an_unguarded_script_fails_its_job_with_a_clear_reason(tmp_path: Path) -> None:
    script = write_script(tmp_path, guarded=False)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "wd")], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "ExperimentFailed" in result.stderr
    (failed,) = (tmp_path / "wd" / "jobs" / "greet.Hello").glob("*/failed.json")
    assert "if __name__ == '__main__'" in json.loads(failed.read_text())["reason"]


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(legato.DeserializationError, match="not a job directory"):
        legato.load(tmp_path)
    (tmp_path / "params.msgpack").write_bytes(b"\x93garbage")
    with pytest.raises(legato.DeserializationError):
        legato.load(tmp_path)


def test_worker_usage_and_missing_params(tmp_path: Path) -> None:
    usage = subprocess.run([sys.executable, "-m", "legato._jobside._worker"], capture_output=True)
    assert usage.returncode == 2 and b"usage" in usage.stderr
    env = {**os.environ, "LEGATO_PARENT_PID": str(os.getpid())}
    run = subprocess.run(
        [sys.executable, "-m", "legato._jobside._worker", str(tmp_path)],
        capture_output=True,
        env=env,
    )
    assert run.returncode == 1
    record = json.loads((tmp_path / "failed.json").read_text())
    assert record["state"] == "failed" and "params.msgpack" in record["reason"]
    assert not (tmp_path / "done").exists()
