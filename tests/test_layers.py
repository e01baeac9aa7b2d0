"""The layers of docs/architecture.md hold: each layer imports only the layers below it
(import-linter, with the contract in pyproject.toml; imports made only for type checking
count), and no module imports another's private names or reaches into another module's
objects through their underscored attributes."""

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


# Underscored attributes of objects that are not the module's own, each with why it stays.
ALLOWED_PRIVATE_ACCESS = {
    # the documented way out of a forked child, without the parent's cleanup
    ("_jobside/_warm_server.py", "os._exit"),
    ("_jobside/_worker.py", "os._exit"),
    # a forked job's way out, as the interpreter's own (atexit has no public API for it),
    # without the finalizers of the warm server's objects (nor has weakref)
    ("_jobside/_warm_job.py", "atexit._run_exitfuncs"),
    ("_jobside/_warm_job.py", "weakref.finalize._registry"),
    # namedtuple's public API (underscored so that it never clashes with a field name)
    ("_core/_identity.py", "field._replace"),
    # enum's documented name of a member (`.name`, a property, costs more per value)
    ("_core/_canon.py", "value._name_"),
}


def defined_privates(tree: ast.Module) -> set[str]:
    """The underscored attributes the module's own classes define: methods and class
    attributes, `__slots__` entries, and `self._x = ...` assignments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                targets = item.targets if isinstance(item, ast.Assign) else []
                if isinstance(item, ast.AnnAssign):
                    targets = [item.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        names.add(target.id)
                        if target.id == "__slots__" and isinstance(item.value, ast.Tuple):
                            names.update(
                                e.value for e in item.value.elts if isinstance(e, ast.Constant)
                            )
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id in ("self", "cls")
                ):
                    names.add(target.attr)
    return {name for name in names if name.startswith("_")}


def private_accesses(source: str) -> list[str]:
    """`x._name` where `x` is not `self`, `cls` or `super()` and no class of this module
    defines `_name`: a reach into another module's object (dunders are protocols)."""
    tree = ast.parse(source)
    own = defined_privates(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") and node.attr.endswith("__"):
            continue
        receiver = node.value
        if isinstance(receiver, ast.Name) and receiver.id in ("self", "cls"):
            continue
        if isinstance(receiver, ast.Call) and ast.unparse(receiver.func) == "super":
            continue
        if node.attr not in own:
            found.append(ast.unparse(node))
    return found


def test_the_private_access_check_finds_one() -> None:
    source = (
        "class A:\n"
        "    __slots__ = ('_slot',)\n"
        "    def __init__(self): self._own = 1\n"
        "    def _method(self): return super()._method()\n"
        "def f(a, xp):\n"
        "    return a._own, a._slot, a._method(), xp._scheduler, type(a)._compile(), a.__dict__\n"
    )
    assert private_accesses(source) == ["xp._scheduler", "type(a)._compile"]


def test_no_module_reaches_into_another_modules_objects() -> None:
    found = {
        (str(path.relative_to(SRC)), access)
        for path in sorted(SRC.rglob("*.py"))
        for access in private_accesses(path.read_text(encoding="utf-8"))
    }
    assert found - ALLOWED_PRIVATE_ACCESS == set()
    assert ALLOWED_PRIVATE_ACCESS - found == set(), "an allowed access is gone: drop it"


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


# -- one writer module for the workdir's files ------------------------------------------

_WRITING_CALLS = {
    "os.replace",
    "os.rename",
    "os.unlink",
    "os.remove",
    "os.symlink",
    "os.truncate",
    "shutil.rmtree",
    "shutil.move",
}
_WRITING_METHODS = {"write_text", "write_bytes", "rename", "unlink", "symlink_to", "touch"}
"""(`Path.replace` is left out: a call looks like `str.replace`; legato uses `os.replace`.)"""
_WRITING_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
_JOBDIR_WRITERS = {"write_json", "atomic_write"}
"""The generic writers of `_jobdir/_files.py`: outside `_jobdir`, files are written
through what names them (`JobDir` methods, `write_experiment_state`, ...)."""


def file_writes(source: str) -> list[str]:
    """ "<function>: <call>" for each call that writes, renames or removes a file."""
    tree = ast.parse(source)
    owner: dict[int, str] = {}

    def visit(node: ast.AST, name: str) -> None:
        for child in ast.iter_child_nodes(node):
            is_function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            inner = child.name if is_function else name
            owner[id(child)] = inner
            visit(child, inner)

    visit(tree, "<module>")
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        dotted = ast.unparse(func)
        what = None
        if dotted in _WRITING_CALLS:
            what = dotted
        elif dotted == "os.open":
            flags = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
            if any(flag in flags for flag in _WRITING_FLAGS):
                what = f"os.open({flags})"
        elif isinstance(func, ast.Attribute) and func.attr in _WRITING_METHODS:
            what = f".{func.attr}()"
        elif dotted == "open" or (isinstance(func, ast.Attribute) and func.attr == "open"):
            args = node.args[1:] if dotted == "open" else node.args
            mode = next((kw.value for kw in node.keywords if kw.arg == "mode"), None)
            mode = mode if mode is not None else (args[0] if args else None)
            if mode is not None and not (
                isinstance(mode, ast.Constant) and not set(str(mode.value)) & set("wax+")
            ):
                what = f"open({ast.unparse(mode)})"
        elif isinstance(func, ast.Name) and func.id in _JOBDIR_WRITERS:
            what = f"{func.id}()"
        if what is not None:
            found.append(f"{owner.get(id(node), '<module>')}: {what}")
    return found


ALLOWED_WRITERS = {
    "_cache.py": {
        # The @cache lock file, in cache/ (no job directory): its own lock, as it waits
        # blocking in threads, falls back to read-only opens on a read-only workdir, and
        # to `filelock` without fcntl, none of which the job lock has to do.
        "__init__: os.open(os.O_RDWR | os.O_CREAT)",
    },
    "_launchers/_slurm_batch.py": {
        # SlurmLauncher's array directories (slurm/<batch>/): its own list of job
        # directories and links, never a file of a job directory.
        "make_batch: .write_text()",
        "make_batch: os.symlink",
        "remove_batches: shutil.rmtree",
    },
}
"""What writes files outside `_jobdir`, and why none of it is a job directory's file."""


def test_the_file_write_check_finds_each_kind() -> None:
    source = (
        "import os\n"
        "def f(p):\n"
        "    open(p, 'a')\n"
        "    open(p)\n"
        "    p.open('wb')\n"
        "    os.open(p, os.O_WRONLY | os.O_CREAT)\n"
        "    os.open(p, os.O_RDONLY)\n"
        "    p.write_text('x')\n"
        "    os.replace(p, p)\n"
        "    'a'.replace('a', 'b')\n"
        "    write_json(p, {})\n"
    )
    assert file_writes(source) == [
        "f: open('a')",
        "f: open('wb')",
        "f: os.open(os.O_WRONLY | os.O_CREAT)",
        "f: .write_text()",
        "f: os.replace",
        "f: write_json()",
    ]


def test_only_the_jobdir_layer_writes_the_workdir() -> None:
    """Every file of a job directory has one writer module, `_jobdir/_job.py` (its
    `JobDir`): no other module opens a file for writing, renames or removes one, but for
    the few places of ALLOWED_WRITERS, which write no job directory's file."""
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if name.startswith("_jobdir/"):
            continue
        writes = set(file_writes(path.read_text(encoding="utf-8")))
        unexpected = writes - ALLOWED_WRITERS.get(name, set())
        if unexpected:
            found[name] = sorted(unexpected)
    assert found == {}
    stale = {
        name: sorted(allowed - set(file_writes((SRC / name).read_text(encoding="utf-8"))))
        for name, allowed in ALLOWED_WRITERS.items()
    }
    assert {name: lines for name, lines in stale.items() if lines} == {}
