"""docs/how-to/epochs.md runs as written: three trainings share checkpoints in their main
task directory, the 50-epoch one resumes from epoch 20, and a rerun asking for 100 epochs
resumes from 50."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support.docs import DOCS, console_output, run, titled_blocks

PAGE = DOCS / "how-to" / "epochs.md"


def test_epochs_how_to(tmp_path: Path) -> None:
    files = titled_blocks(PAGE)
    assert set(files) == {"epochs.py"}
    script = tmp_path / "epochs.py"
    script.write_text(files["epochs.py"])

    assert run(tmp_path, "epochs.py") == console_output(PAGE, "python epochs.py")

    partials = tmp_path / "runs" / "partials" / "epochs.Learn"
    (main,) = partials.iterdir()
    visible = sorted(name for name in os.listdir(main) if not name.startswith("."))
    assert visible == console_output(PAGE, "ls runs/partials/epochs.Learn/*")
    assert json.loads((main / "epoch-50.json").read_text())["weights"] == sum([0.1] * 50)
    # The three Learn jobs: three job directories, one main task directory.
    learn_jobs = list((tmp_path / "runs" / "jobs" / "epochs.Learn").iterdir())
    assert len(learn_jobs) == 3
    users = (main / ".legato-jobs.txt").read_text().splitlines()
    assert sorted(users) == sorted(f"epochs.Learn/{job.name}" for job in learn_jobs)

    extended = files["epochs.py"].replace("(10, 20, 50)", "(10, 20, 50, 100)")
    assert extended != files["epochs.py"]
    script.write_text(extended)
    assert run(tmp_path, "epochs.py") == console_output(PAGE, "python epochs.py", 1)
    assert len(list((tmp_path / "runs" / "jobs" / "epochs.Learn").iterdir())) == 4
