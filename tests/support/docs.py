"""Reading the docs' pages: the files their titled code blocks make, the output their
console blocks show, and running a page's script as a user does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
DOCS = ROOT / "docs"


def titled_blocks(page: Path) -> dict[str, str]:
    """{file name: the blocks titled with it, joined as one file}."""
    files: dict[str, list[str]] = {}
    pattern = r'^```python title="([^"]+)"\n(.*?)^```'
    for title, code in re.findall(pattern, page.read_text(), flags=re.MULTILINE | re.DOTALL):
        files.setdefault(title, []).append(code)
    return {title: "\n\n".join(blocks) for title, blocks in files.items()}


def console_output(page: Path, command: str, occurrence: int = 0) -> list[str]:
    """The lines a page shows after `$ command` (its `occurrence`-th appearance)."""
    outputs: list[list[str]] = []
    current: list[str] | None = None
    for block in re.findall(r"^```console\n(.*?)^```", page.read_text(), re.M | re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                current = [] if line == f"$ {command}" else None
                if current is not None:
                    outputs.append(current)
            elif current is not None:
                current.append(line)
        current = None
    return outputs[occurrence]


def run(cwd: Path, *argv: str) -> list[str]:
    env = {**os.environ, "LEGATO_DISPLAY": "0"}
    env.pop("LEGATO_WORKDIR", None)
    done = subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()
