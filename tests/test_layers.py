"""The layers of docs/architecture.md hold: each layer imports only the layers below it
(import-linter, with the contract in pyproject.toml; imports made only for type checking
count), and no module imports another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import legato

SRC = Path(legato.__file__).parent
ROOT = SRC.parent.parent


def private_imports(source: str) -> list[str]:
    """`from M import _name` lines: a module's underscored names are its own."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
    return found


def test_the_private_import_check_finds_one() -> None:
    assert private_imports("from ._canon import _encode, canon\n") == [
        "1: from _canon import _encode"
    ]


def test_no_module_imports_another_modules_private_names() -> None:
    found = {
        str(path.relative_to(SRC)): lines
        for path in sorted(SRC.rglob("*.py"))
        if (lines := private_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_each_layer_imports_only_the_layers_below_it() -> None:
    pytest.importorskip("importlinter")
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("legato is not run from its source tree")
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout
