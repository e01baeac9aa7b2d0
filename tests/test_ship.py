"""Task classes that a job cannot import (defined in `python -c`, standard input, a
notebook, a function's body) are shipped with the job by value; what cannot be shipped
fails at submit.

No `from __future__ import annotations` here: the classes defined in test functions name
each other in their annotations, which strings could not resolve.
"""

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import legato
from legato import Config, Param, ShippingError, Task, experiment, tag

pytestmark = pytest.mark.anyio

SCRIPT = textwrap.dedent(
    """
    import enum, sys
    import anyio
    import legato
    from legato import Config, Param, Task, experiment, field, tag

    class Colour(enum.Enum):
        RED = 1

    def helper(x):
        return x * 10

    class Model(Config):
        hidden: Param[int] = 4

    class Base(Task):
        lr: Param[float]

        def scaled(self):
            return helper(self.lr)

    class Train(Base):
        \"\"\"Trains.\"\"\"

        model: Param[Model] = field(default_factory=Model)
        colour: Param[Colour] = Colour.RED
        extra: Param[list[int]] = field(default_factory=list, ignore_default=True)

        def execute(self):
            return {
                "scaled": super().scaled(),
                "hidden": self.model.hidden,
                "colour": self.colour.name,
                "type": type(self).__legato_type_name__,
                "doc": type(self).__doc__,
            }

    async def main():
        async with experiment(sys.argv[1], "shipped") as xp:
            job = await Train(lr=tag(0.5), model=Model(hidden=7)).submit()
            print("RESULT", await job.__job__.result())
            print("ID", job.__identifier__)
            print("TYPE", Train.__legato_type_name__)

    anyio.run(main)
    """
)


def _python(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python ARGV...` with no LEGATO_* setting of the test run but LEGATO_DISPLAY=0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    env["LEGATO_DISPLAY"] = "0"
    return subprocess.run(
        [sys.executable, *argv], input=stdin, env=env, capture_output=True, text=True, timeout=120
    )


def _check_run(done: subprocess.CompletedProcess[str], workdir: Path) -> None:
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    type_name = lines["TYPE"]
    result = eval(lines["RESULT"])
    assert result == {
        "scaled": 5.0,
        "hidden": 7,
        "colour": "RED",
        "type": type_name,
        "doc": "Trains.",
    }
    job_dir = workdir / "jobs" / type_name / lines["ID"]
    # Another process, where the class was never defined, rebuilds the task from the
    # params file alone, with the same identifier.
    task = legato.load(job_dir)
    assert task.__identifier__ == lines["ID"]
    assert (task.lr, task.model.hidden) == (0.5, 7)
    assert legato.results(workdir)[0].tags == {"lr": 0.5}


def test_classes_of_python_c_run_as_jobs(tmp_path: Path) -> None:
    done = _python("-c", SCRIPT, str(tmp_path))
    _check_run(done, tmp_path)
    assert "TYPE __main__.Train" in done.stdout


def test_classes_of_a_script_on_stdin_run_as_jobs(tmp_path: Path) -> None:
    done = _python("-", str(tmp_path), stdin=SCRIPT)
    _check_run(done, tmp_path)


def test_without_cloudpickle_submit_says_what_to_install(tmp_path: Path) -> None:
    script = "import sys; sys.modules['cloudpickle'] = None\n" + SCRIPT
    done = _python("-c", script, str(tmp_path))
    assert done.returncode != 0
    assert "ShippingError" in done.stderr
    assert "__main__.Model is defined in a notebook or `python -c`" in done.stderr
    assert "pip install 'legato[notebook]'" in done.stderr
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())


async def test_classes_defined_in_a_function_run_as_jobs(tmp_path: Path) -> None:
    class Scale(Config):
        factor: Param[float] = 2.0

    class Local(Task):
        x: Param[int]
        scale: Param[Scale]

        def execute(self) -> float:
            return self.x * self.scale.factor

    async with experiment(tmp_path, "local") as xp:
        a = await Local(x=tag(3), scale=Scale()).submit()
        b = await Local(x=tag(4), scale=Scale(factor=0.5)).submit()
        assert await a.__job__.result() == 6.0
        assert await b.__job__.result() == 2.0
    assert xp.counts()["done"] == 2
    assert "<locals>" in Local.__legato_type_name__


async def test_a_class_that_cannot_be_pickled_fails_at_submit(tmp_path: Path) -> None:
    class Locked(Task):
        x: Param[int]
        guard = threading.Lock()

        def execute(self) -> None:
            with self.guard:
                pass

    async with experiment(tmp_path, "locked") as xp:
        with pytest.raises(ShippingError) as info:
            await Locked(x=1).submit()
    message = str(info.value)
    assert "Locked" in message and "inside a function" in message
    assert "cannot be pickled" in message and "lock" in message
    assert xp.jobs == []
