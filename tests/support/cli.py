"""Helpers for the command-line tests: a tiny project (a task module and an experiment
script written into a temporary directory), run in real processes, and the real `legato`
console script run in a subprocess."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

TASKS = textwrap.dedent(
    '''
    """Tasks of the command-line tests."""
    import os
    import signal
    import sys
    import time
    from pathlib import Path
    from typing import Annotated, Any

    from legato import Config, Meta, Param, Task, pathgenerator, progress


    class Model(Config):
        hidden: Param[int] = 8


    class Trained(Config):
        model: Param[Model]
        checkpoint: Param[Path]


    class Learn(Task):
        model: Param[Model]
        lr: Param[float] = 0.1
        checkpoint: Annotated[Path, pathgenerator("model.pt")]

        def config(self) -> Trained:
            return Trained(model=self.model, checkpoint=self.checkpoint)

        def execute(self) -> None:
            print(f"learning hidden={self.model.hidden} lr={self.lr}")
            print("a warning", file=sys.stderr)
            self.checkpoint.write_text(str(self.model.hidden))


    class Evaluate(Task):
        model: Param[Trained]

        def execute(self) -> None:
            print("evaluating", self.model.checkpoint.read_text())
            if self.model.model.hidden == 13:
                raise ValueError("bad size")


    class Plain(Task):
        name: Param[str]
        opts: Param[dict[str, Any]] = {}

        def execute(self) -> None:
            print("plain", self.name)


    class Gather(Task):
        items: Param[list[Any]]

        def execute(self) -> None:
            print("gathered", [item.name for item in self.items])


    class Wait(Task):
        """Waits for a gate file that the tests never create."""

        name: Param[str]
        gate: Meta[str] = ""
        ignore_term: Meta[bool] = False

        def execute(self) -> None:
            if self.ignore_term:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("waiting for", self.gate, flush=True)
            progress(0.5, "halfway")
            while not os.path.exists(self.gate):
                time.sleep(0.02)
            print("gate open", flush=True)
    '''
)

SCRIPT = textwrap.dedent(
    '''
    """usage: python xp.py WORKDIR sweep | WORKDIR wait NAME GATE [ignore-term]"""
    import json
    import sys

    import anyio

    from legato import experiment, tag
    from cli_tasks import Evaluate, Gather, Learn, Model, Plain, Wait


    async def sweep(workdir: str) -> dict[str, str]:
        async with experiment(workdir, "sweep", max_jobs=2, raise_on_failure=False) as xp:
            for hidden in (13, 64):
                trained = await Learn(model=Model(hidden=tag(hidden)), lr=tag(0.1)).submit()
                await Evaluate(model=trained).submit()
            plain = await Plain(name="a", opts={"depth": 2, "layers": [1, 2]}).submit()
            await Gather(items=[plain]).submit()
        return {f"{j.type_name}/{j.identifier}": j.state.name for j in xp.jobs}


    async def wait(workdir: str, name: str, gate: str, ignore: bool) -> dict[str, str]:
        async with experiment(workdir, "waiting", raise_on_failure=False) as xp:
            await Wait(name=name, gate=gate, ignore_term=ignore).submit()
        return {f"{j.type_name}/{j.identifier}": j.state.name for j in xp.jobs}


    if __name__ == "__main__":
        workdir, mode, *rest = sys.argv[1:]
        if mode == "sweep":
            states = anyio.run(sweep, workdir)
        else:
            states = anyio.run(wait, workdir, rest[0], rest[1], rest[2:] == ["ignore-term"])
        print("STATES " + json.dumps(states), flush=True)
    '''
)


def legato_script() -> str:
    """The installed console script (next to this interpreter in a virtualenv)."""
    beside = Path(sys.executable).parent / "legato"
    if beside.exists():
        return str(beside)
    found = shutil.which("legato")
    if found is None:
        pytest.fail("the `legato` console script is not installed: pip install -e .")
    return found


def make_project(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cli_tasks.py").write_text(TASKS)
    (directory / "xp.py").write_text(SCRIPT)
    return directory


def project_env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    # The legato under test: the project first, then the test run's own import path.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(project), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["LEGATO_DISPLAY"] = "0"
    if "LEGATO_WARM" in os.environ:  # warm or fresh job processes, as the test asks
        env["LEGATO_WARM"] = os.environ["LEGATO_WARM"]
    return env


def run_sweep(project: Path, workdir: Path) -> dict[str, str]:
    """Run the sweep experiment to its end; the final state of each job."""
    done = subprocess.run(
        [sys.executable, str(project / "xp.py"), str(workdir), "sweep"],
        env=project_env(project),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return parse_states(done.stdout)


def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The workdir of a finished sweep (2 Learn done, 2 Evaluate of which one failed, a
    Plain and a Gather) and the final state of each job: for a module-scoped fixture."""
    root = tmp_path_factory.mktemp("sweep")
    workdir = root / "runs"
    states = run_sweep(make_project(root / "project"), workdir)
    return workdir, states


def copy_workdir(workdir: Path, tmp_path: Path) -> Path:
    """A copy of `workdir` that a test may change (the lock files left out: nobody holds
    them in a copy)."""
    target = tmp_path / "runs"
    shutil.copytree(workdir, target, ignore=shutil.ignore_patterns("lock"))
    return target


def start_wait(
    project: Path, workdir: Path, name: str, gate: Path, ignore_term: bool = False
) -> subprocess.Popen[str]:
    """Start an experiment whose one job waits for `gate` (never created by the tests)."""
    argv = [sys.executable, str(project / "xp.py"), str(workdir), "wait", name, str(gate)]
    if ignore_term:
        argv.append("ignore-term")
    return subprocess.Popen(
        argv,
        env=project_env(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def parse_states(stdout: str) -> dict[str, str]:
    for line in stdout.splitlines():
        if line.startswith("STATES "):
            states: dict[str, str] = json.loads(line[len("STATES ") :])
            return states
    raise AssertionError(f"no STATES line in {stdout!r}")


def cli(
    *args: str,
    workdir: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run `legato [--workdir W] ARGS...` and capture its output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    base["NO_COLOR"] = "1"
    argv = [legato_script()]
    if workdir is not None:
        argv += ["--workdir", str(workdir)]
    return subprocess.run(
        [*argv, *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def jobs_json(workdir: Path, *args: str) -> list[dict[str, Any]]:
    done = cli("jobs", "ls", "--json", *args, workdir=workdir)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def run_on_terminal(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    """What `argv` prints on a pseudo-terminal (stdout and stderr, as a user sees them),
    once it has ended with exit status 0."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0
    return b"".join(chunks).decode(errors="replace")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """A failed command: non-zero exit (or exactly `code`), one line on stderr, no traceback."""
    assert done.returncode != 0, done.stdout
    if code is not None:
        assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("legato: error: "), lines[0]
    return lines[0]
