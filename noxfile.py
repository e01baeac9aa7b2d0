"""Developer sessions; CI runs the same commands (see .ci/run).

nox                 # tests, lint, types, docs
nox -s bench        # benchmarks (installs experimaestro for the comparison)
nox -s bench -- identity   # only benchmarks/bench_*identity*.py
nox -s bench_compare -- main   # every benchmark at `main` against the working tree
nox -s tests -- -k identity
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "types", "docs"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
LINTED = ["src", "tests", "benchmarks", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (pass pytest arguments after `--`)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format checks, and the layers of docs/architecture.md."""
    session.install("ruff", "import-linter", "-e", ".")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)
    session.run("lint-imports")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on src/ (settings in pyproject.toml)."""
    session.install("-e", ".", "mypy")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmarks/bench_*.py, each printing its figures; `-- identity` runs only
    the scripts whose name contains `identity`."""
    session.install("-e", ".[bench]")
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if session.posargs:
        scripts = [s for s in scripts if any(word in s.stem for word in session.posargs)]
    if not scripts:
        session.error("no benchmarks/bench_*.py to run")
    for script in scripts:
        session.log(f"--- {script.name}")
        session.run("python", str(script))


@nox.session
def bench_compare(session: nox.Session) -> None:
    """Every benchmark's headline figures at a git revision against the working tree, in
    the same run: `-- REV [--only cli,web] [--rounds 5] [--full]` (benchmarks/README.md).
    Fails when a figure is more than 5% slower."""
    if not session.posargs:
        session.error("give the baseline revision: nox -s bench_compare -- REV")
    # What the benchmarks import (trio, numpy, pandas, httpx, the dashboard's server);
    # experimaestro and joblib, which do not change with legato, are not compared.
    session.install("-e", ".[test,web]")
    rev, *options = session.posargs
    session.run("python", str(ROOT / "benchmarks" / "compare.py"), "--baseline", rev, *options)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the MkDocs site, failing on any warning."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict")
