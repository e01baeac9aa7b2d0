"""Experiments in a real Jupyter kernel (nbclient): top-level await, an experiment open
across cells, task classes defined in the notebook, the live view, and the docs'
notebook."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

import legato
from legato import ExperimentFailed, JobState, LegatoError, NoExperimentError, experiment

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("cloudpickle")

DOCS_NOTEBOOK = Path(__file__).parent.parent / "docs" / "examples" / "sweep.ipynb"


def _execute(nb: Any, cwd: Path) -> Any:
    env_backup = os.environ.pop("LEGATO_DISPLAY", None)
    try:
        client = nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
        )
        client.execute()
    finally:
        if env_backup is not None:
            os.environ["LEGATO_DISPLAY"] = env_backup
    return nb


def _text(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
    return "".join(parts)


CELLS = [
    # 1: a task class of the notebook itself, and an experiment left open
    """
import os, time
from pathlib import Path
import legato
from legato import Param, Meta, Task, tag

class Square(Task):
    x: Param[int]
    gate: Meta[str] = ""

    def execute(self):
        while self.gate and not os.path.exists(self.gate):
            time.sleep(0.01)
        return {"square": self.x * self.x, "type": type(self).__legato_type_name__}

xp = await legato.open_experiment("runs", "cells")
print("OPEN", xp.name)
""",
    # 2: a job that waits for a gate file keeps running after the cell
    """
slow = await Square(x=tag(3), gate=str(Path("gate").absolute())).submit()
first = await Square(x=tag(2)).submit()
print("FIRST", await first.__job__.result())
""",
    # 3: a later cell submits more while the slow one still runs
    """
print("SLOW", slow.__job__.state.name)
more = [await Square(x=tag(x)).submit() for x in (4, 5)]
print("MORE", [await m.__job__.result() for m in more])
print("STILL", slow.__job__.state.name)
Path("gate").write_text("go")
print("SLOWRESULT", await slow.__job__.result())
""",
    # 4: close, then read the workdir back
    """
await xp.close()
print("COUNTS", xp.counts()["done"])
rows = legato.results("runs", type=Square).to_pandas()
print("TABLE", sorted(rows["square"]))
""",
    # 5: a whole experiment in one cell
    """
async with legato.experiment("runs", "one-cell") as xp2:
    nine = await Square(x=tag(9)).submit()
print("ONECELL", await nine.__job__.result())
""",
]


def test_experiments_in_cells_of_a_real_kernel(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    _execute(nb, tmp_path)
    outputs = [_text(cell) for cell in nb.cells]
    assert "OPEN cells" in outputs[0]
    assert "FIRST {'square': 4, 'type': '__main__.Square'}" in outputs[1]
    assert "SLOW RUNNING" in outputs[2] or "SLOW READY" in outputs[2]
    assert "MORE [{'square': 16" in outputs[2]
    assert "STILL RUNNING" in outputs[2]
    assert "SLOWRESULT {'square': 9" in outputs[2]
    assert "COUNTS 4" in outputs[3]
    assert "TABLE [4, 9, 16, 25]" in outputs[3]
    assert "ONECELL {'square': 81" in outputs[4]
    # The live view: an HTML output of the cell that opened the experiment, updated in
    # place (a display id). Updates sent once that cell has ended reach Jupyter's page,
    # not nbclient, which only follows the cell it runs: the one-cell experiment shows
    # the update to its final counts.
    views = [o for o in nb.cells[0].outputs if o.output_type == "display_data"]
    assert views and "cells: " in views[0].data["text/plain"], nb.cells[0].outputs
    one_cell = [o for o in nb.cells[4].outputs if o.output_type == "display_data"]
    assert len(one_cell) == 1, one_cell
    assert "one-cell: 1 done" in one_cell[0].data["text/plain"]
    assert "<pre" in one_cell[0].data["text/html"] and "1 done" in one_cell[0].data["text/html"]


def test_the_docs_notebook_runs(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    shutil.copy(DOCS_NOTEBOOK, tmp_path / "sweep.ipynb")
    nb = nbformat.read(tmp_path / "sweep.ipynb", as_version=4)
    _execute(nb, tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    tables = [o for c in code for o in c.outputs if "text/html" in o.get("data", {})]
    assert any("<table" in o.data["text/html"] and "score" in o.data["text/html"] for o in tables)
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the plot is missing"
    assert len(list((tmp_path / "runs" / "jobs").glob("*/*/done"))) == 15


def test_the_how_to_shows_the_notebook_code() -> None:
    import re

    page = (DOCS_NOTEBOOK.parent.parent / "how-to" / "notebook.md").read_text()
    nb = nbformat.read(DOCS_NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    blocks = re.findall(r"^```python\n(.*?)^```", page, flags=re.M | re.S)
    assert len(blocks) >= 6
    for block in blocks:
        assert block.strip() in code, f"notebook.md shows code the notebook lacks:\n{block}"


# -- open_experiment() without a kernel: the same event loop, asyncio ------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_open_experiment_submits_until_closed(tmp_path: Path) -> None:
    from support.xp_tasks import Step

    log = str(tmp_path / "log")
    xp = await legato.open_experiment(tmp_path, "open")
    a = await Step(name="a", log=log).submit()
    await a.__job__.wait()
    b = await Step(name="b", log=log).submit()
    assert [job.task.name for job in xp.jobs] == ["a", "b"]
    await xp.close()
    assert b.__job__.state is JobState.DONE
    with pytest.raises(NoExperimentError):
        await Step(name="c", log=log).submit()
    with pytest.raises(LegatoError, match="closed"):
        await xp.submit(Step(name="c", log=log))


def test_open_experiment_takes_the_arguments_of_experiment() -> None:
    """One signature for both ways of opening an experiment (the docs say so)."""
    import inspect

    opened = inspect.signature(legato.open_experiment).parameters
    block = inspect.signature(experiment.__wrapped__).parameters  # (under asynccontextmanager)
    assert opened == block


@pytest.mark.anyio
async def test_open_experiment_keeps_the_latest_finished_jobs(tmp_path: Path) -> None:
    from support.xp_tasks import Step

    log = str(tmp_path / "log")
    xp = await legato.open_experiment(tmp_path, "kept", keep_finished=1)
    for name in ("a", "b", "c"):
        step = await Step(name=name, log=log).submit()
        await step.__job__.wait()
    assert [job.task.name for job in xp.jobs] == ["c"]
    await xp.close()


@pytest.mark.anyio
async def test_close_raises_for_failed_jobs_and_cancel_terminates(tmp_path: Path) -> None:
    from support.xp_tasks import Step

    log = str(tmp_path / "log")
    xp = await legato.open_experiment(tmp_path, "failing")
    await Step(name="bad", log=log, fail="raise").submit()
    with pytest.raises(ExperimentFailed, match="failed on purpose"):
        await xp.close()

    xp = await legato.open_experiment(tmp_path, "cancelled", raise_on_failure=False)
    slow = await Step(name="slow", log=log, gate=str(tmp_path / "never")).submit()
    with anyio.fail_after(60):
        while slow.__job__.state is not JobState.RUNNING:
            await anyio.sleep(0.01)
    await xp.close(cancel=True)
    assert slow.__job__.state is JobState.CANCELLED


@pytest.mark.anyio
async def test_close_is_for_open_experiment_only(tmp_path: Path) -> None:
    async with experiment(tmp_path, "block") as xp:
        with pytest.raises(LegatoError, match="closes when its block ends"):
            await xp.close()


def test_open_experiment_needs_asyncio(tmp_path: Path) -> None:
    async def main() -> None:
        await legato.open_experiment(tmp_path, "trio")

    with pytest.raises(LegatoError, match="asyncio event loop"):
        anyio.run(main, backend="trio")
