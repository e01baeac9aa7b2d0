"""Following an experiment: the live view on a terminal, log lines elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from legato import Param, Task
from support.cli import run_on_terminal

SCRIPT = Path(__file__).parent / "support" / "xp_script.py"


class Train(Task, name="display.Train"):
    size: Param[int]


def run(tmp_path: Path, env: dict[str, str], tty: bool) -> str:
    args = [
        sys.executable,
        str(SCRIPT),
        str(tmp_path / "wd"),
        str(tmp_path / "log"),
        str(tmp_path / "gate"),
        "3",
        "0",
    ]
    full_env = {**os.environ, **env, "COLUMNS": "120"}
    if not tty:
        done = subprocess.run(args, env=full_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr
    return run_on_terminal(args, full_env)


def test_live_view_on_a_terminal(tmp_path: Path) -> None:
    out = run(tmp_path, {}, tty=True)
    assert "crash: 3 done, 0 running, 0 failed, 0 waiting (3 jobs)" in out
    assert "\x1b[" in out  # rich drew on the terminal


def test_log_lines_when_not_a_terminal(tmp_path: Path) -> None:
    script = tmp_path / "logged.py"
    script.write_text(
        "import logging, runpy, sys\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s')\n"
        f"sys.argv = [{str(SCRIPT)!r}] + sys.argv[1:]\n"
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
    )
    args = [
        sys.executable,
        str(script),
        str(tmp_path / "wd"),
        str(tmp_path / "log"),
        str(tmp_path / "gate"),
        "2",
        "1",
    ]
    env = {**os.environ, "LEGATO_LOG_INTERVAL": "0.1", "PYTHONPATH": str(SCRIPT.parent.parent)}
    process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    watchdog = threading.Timer(60, (tmp_path / "gate").touch)  # never hang the suite
    watchdog.start()
    found = False
    for line in process.stderr:  # log lines arrive while the gated job runs
        if "legato crash:" in line and "1 running" in line:
            found = True
            break
    watchdog.cancel()
    (tmp_path / "gate").touch()
    process.stderr.read()
    assert process.wait(timeout=120) == 0
    assert found, "no periodic log line while a job was running"
    state = json.loads((tmp_path / "wd" / "experiments" / "crash" / "state.json").read_text())
    assert state["status"] == "done" and state["counts"]["done"] == 3


def test_each_running_job_has_its_own_line(tmp_path: Path) -> None:
    from rich.console import Console

    from legato._launchers._local import LocalLauncher
    from legato._runtime._display import _render
    from legato._runtime._experiment import Experiment
    from legato._runtime._job import Job, JobState

    xp = Experiment(tmp_path, "live", 2, None, LocalLauncher())
    for size, fraction in ((1, 0.1), (2, 0.55)):
        task = Train(size=size)
        job = Job(task, task.__identifier__, tmp_path / str(size), [], {}, None)
        job.state, job.progress, job.progress_desc = JobState.RUNNING, fraction, "epoch 3"
        xp._jobs[job.identifier] = job
    console = Console(width=80, force_terminal=True)
    lines = ["".join(s.text for s in line) for line in console.render_lines(_render(xp))]
    assert lines[0].startswith("live: 0 done, 2 running, 0 failed, 0 waiting (2 jobs)")
    assert set(lines[1].strip()) <= set("━╺╸")  # the bar, alone on its line
    rows = [line.split()[1:] for line in lines[2:]]
    assert rows == [["10.0%", "epoch", "3"], ["55.0%", "epoch", "3"]]
