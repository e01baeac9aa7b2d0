"""The tutorial and the how-to pages run as written.

A page's code blocks titled with a file name (```` ```python title="first.py" ````) are
joined into that file, run as a user runs them, and must print what the page shows; the
excerpts of an example file must be found in that file as they are.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from support.docs import DOCS, ROOT, console_output, run, titled_blocks


def test_tutorial(tmp_path: Path) -> None:
    page = DOCS / "tutorial.md"
    files = titled_blocks(page)
    assert set(files) == {"first.py", "results.py"}
    for name, code in files.items():
        (tmp_path / name).write_text(code)

    assert run(tmp_path, "first.py") == console_output(page, "python first.py")
    again = console_output(page, "time python first.py")
    assert run(tmp_path, "first.py") == again[: again.index("")]

    learn = tmp_path / "runs" / "jobs" / "first.Learn"
    lines = page.read_text().splitlines()
    listed = next(line for line in lines if line.startswith("$ ls runs/jobs/first.Learn/"))
    job_dir = learn / listed.rsplit("/", 1)[1]
    expected = console_output(page, f"ls runs/jobs/first.Learn/{job_dir.name}")
    assert sorted(os.listdir(job_dir)) == expected

    script = tmp_path / "first.py"
    extended = files["first.py"].replace("(1e-3, 3e-3)", "(1e-3, 3e-3, 1e-2)")
    assert extended != files["first.py"]
    script.write_text(extended)
    assert len(run(tmp_path, "first.py")) == 12
    assert len(os.listdir(learn)) == 6
    assert run(tmp_path, "results.py") == console_output(page, "python results.py")


@pytest.mark.parametrize("page", ["how-to/web-service.md"])
def test_excerpts_are_in_the_example(page: str) -> None:
    text = (DOCS / page).read_text()
    checked = 0
    for title, code in re.findall(r'^```python title="([^"]+)"\n(.*?)^```', text, re.M | re.S):
        source = ROOT / "examples" / title
        if source.exists():
            assert code in source.read_text(), f"{page}: this excerpt is not in {title}:\n{code}"
            checked += 1
    assert checked >= 3
