"""The examples of the user guide run as written (each page's code blocks, in order)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
PAGES = ["index.md", "configurations.md"]


def code_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("name", PAGES)
def test_examples_run(name: str) -> None:
    blocks = code_blocks(DOCS / name)
    assert blocks
    namespace = {"__name__": f"docs_{name.removesuffix('.md')}"}
    for block in blocks:
        exec(compile(block, str(DOCS / name), "exec", dont_inherit=True), namespace)
