"""Helpers for the dashboard tests: a sweep that runs while the tests watch it, and
`legato serve` run as the real console script.

The sweep's jobs wait for gate files that the tests create, so a test decides when a job
ends; every wait polls a condition with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.cli import legato_script, project_env

TASKS = textwrap.dedent(
    '''
    """Tasks of the dashboard tests."""
    import os
    import sys
    import time
    from pathlib import Path
    from typing import Annotated

    from legato import Config, Meta, Param, Task, pathgenerator, progress


    class Optimizer(Config):
        name: Param[str] = "adam"
        betas: Param[tuple[float, float]] = (0.9, 0.999)


    class Model(Config):
        width: Param[int] = 8
        optimizer: Param[Optimizer] = Optimizer()


    class Train(Task):
        model: Param[Model]
        lr: Param[float]
        gate: Meta[str] = ""
        weights: Annotated[Path, pathgenerator("weights.txt")]

        def execute(self) -> None:
            print(f"training lr={self.lr}", flush=True)
            if self.lr > 1:
                print("the loss is nan", file=sys.stderr, flush=True)
                raise ValueError(f"diverged with lr={self.lr}")
            progress(0.5, "half an epoch")
            while not os.path.exists(self.gate):
                time.sleep(0.05)
            progress(1.0, "done")
            self.weights.write_text(str(self.lr))
            print("trained", flush=True)


    class Evaluate(Task):
        trained: Param[Train]

        def execute(self) -> None:
            print("accuracy", self.trained.weights.read_text())


    class Sleep(Task):
        """Runs until it is killed."""

        name: Param[str]

        def execute(self) -> None:
            print("sleeping", flush=True)
            while True:
                time.sleep(0.05)
    '''
)

SCRIPT = textwrap.dedent(
    '''
    """usage: python web_xp.py WORKDIR GATE"""
    import sys

    import anyio

    from legato import experiment, tag
    from web_tasks import Evaluate, Model, Sleep, Train


    async def main(workdir: str, gate: str) -> None:
        async with experiment(workdir, "sweep", max_jobs=8, raise_on_failure=False):
            for lr in (0.1, 0.01, 13.0):
                trained = await Train(model=Model(width=16), lr=tag(lr), gate=gate).submit()
                await Evaluate(trained=trained).submit()
            await Sleep(name="forever").submit()
        print("EXPERIMENT ENDED", flush=True)


    if __name__ == "__main__":
        anyio.run(main, *sys.argv[1:3])
    '''
)


def make_web_project(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "web_tasks.py").write_text(TASKS)
    (directory / "web_xp.py").write_text(SCRIPT)
    return directory


def start_sweep(project: Path, workdir: Path, gate: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(project / "web_xp.py"), str(workdir), str(gate)],
        env=project_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str], sig: int = signal.SIGINT) -> None:
    """End a process the test started (an experiment ends its jobs on SIGINT)."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_URL = re.compile(r"http://\S+/\?token=(\S+)")


@contextmanager
def serving(workdir: Path, *args: str) -> Iterator[tuple[str, str]]:
    """Run `legato --workdir W serve --port 0 ARGS`; yield (its URL, its token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    process = subprocess.Popen(
        [legato_script(), "--workdir", str(workdir), "serve", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = _URL.search(line)
            if found:
                yield found.group(0), found.group(1)
                return
        stderr = process.stderr.read() if process.poll() is not None and process.stderr else ""
        raise AssertionError(f"legato serve printed no URL: {''.join(lines)!r} {stderr!r}")
    finally:
        stop(process)
