"""Tasks with sub-parameters for the tests of shared main task directories (imported by the
job processes through sys.path). Used as a script, `python -m support.partials_tasks WORKDIR NAME
LOG LR EPOCHS GATE [LAUNCHER]` runs one `Epochs` job in its own experiment (the tests
of several processes run it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from legato import Meta, Param, SubParam, Task
from support.xp_tasks import record, wait_for_file


def note(log: str, **event: Any) -> None:
    if log:
        record(log, **event)


class Epochs(Task):
    """Trains for `epochs` from the checkpoint in its main task directory, if any."""

    lr: Param[float]
    epochs: SubParam[int]
    after: Meta[Any] = None
    """A task to wait for (a dependency that leaves the main identifier alone)."""
    log: Meta[str] = ""
    gate: Meta[str] = ""
    linger: Meta[str] = ""
    """A gate to wait for after SIGTERM, as a task that saves a long checkpoint would."""

    def execute(self) -> None:
        main = self.__maintaskdir__
        checkpoint = main / "checkpoint.json"
        start = json.loads(checkpoint.read_text())["epoch"] if checkpoint.exists() else 0
        note(
            self.log,
            event="start",
            lr=self.lr,
            epochs=self.epochs,
            resumed=start,
            main=str(main),
            taskdir=str(self.__taskdir__),
            cwd=os.getcwd(),
        )
        try:
            if self.gate:
                wait_for_file(self.gate)
        except BaseException:
            if self.linger:
                note(self.log, event="saving", lr=self.lr, epochs=self.epochs)
                wait_for_file(self.linger)
                note(self.log, event="saved", lr=self.lr, epochs=self.epochs)
            raise
        checkpoint.write_text(json.dumps({"epoch": self.epochs}))
        note(self.log, event="end", lr=self.lr, epochs=self.epochs)


class Plain(Task):
    """No sub-parameters: its main task directory is its job directory."""

    x: Param[int]
    log: Meta[str] = ""

    def execute(self) -> None:
        note(self.log, event="plain", main=str(self.__maintaskdir__), x=self.x)


def runs(log: Path, lr: float | None = None) -> list[tuple[str, int]]:
    """("start" or "end", epochs) of the `Epochs` jobs (of one lr), in the log's order."""
    if not log.exists():
        return []
    found = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if "epochs" not in event or event["event"] not in ("start", "end"):
            continue
        if lr is None or event["lr"] == lr:
            found.append((event["event"], event["epochs"]))
    return found


def one_after_another(log: Path, lr: float) -> list[int]:
    """The epochs of the runs of one main directory, checking that none overlapped."""
    events = runs(log, lr)
    starts = events[0::2]
    ends = events[1::2]
    assert all(e == "start" for e, _ in starts) and all(e == "end" for e, _ in ends), events
    assert [n for _, n in starts] == [n for _, n in ends], events
    return [n for _, n in starts]


def main(workdir: str, name: str, log: str, lr: str, epochs: str, gate: str, launcher: str) -> None:
    import anyio

    from legato import SlurmLauncher, experiment

    async def run() -> None:
        chosen = SlurmLauncher(poll_interval=0.2) if launcher == "slurm" else None
        async with experiment(workdir, name, launcher=chosen) as xp:
            await Epochs(lr=float(lr), epochs=int(epochs), log=log, gate=gate).submit()
            print("submitted", flush=True)
        print("finished", " ".join(job.state.name for job in xp.jobs), flush=True)

    anyio.run(run)


@contextmanager
def script_running(workdir: Path, *args: object) -> Iterator[subprocess.Popen[str]]:
    """`python -m support.partials_tasks WORKDIR ARGS...` in a new process, its stdout piped,
    killed on the way out if it still runs (the test failed): run as a module (so that its
    classes have the names the tests give them), with tests/ on the import path."""
    tests = Path(__file__).resolve().parent.parent
    path = [str(tests), *filter(None, [os.environ.get("PYTHONPATH")])]
    process = subprocess.Popen(
        [sys.executable, "-m", "support.partials_tasks", str(workdir), *map(str, args)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main(*sys.argv[1:7], *(sys.argv[7:8] or ["local"]))
