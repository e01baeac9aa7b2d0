"""The `legato` command: inspect, follow and tidy a workdir (docs/cli.md).

Imports stay light (no anyio, no scheduler): `legato jobs ls` is run often, over large
workdirs, and must answer at once.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .._jobdir._names import DEBUG_ENV, WORKDIR_ENV
from ._common import InspectError

__all__ = ["app", "main"]

app = typer.Typer(
    name="legato",
    help="Inspect, follow and tidy a legato workdir.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    workdir: Annotated[
        str | None,
        typer.Option(
            "--workdir",
            "-w",
            metavar="DIR",
            envvar=WORKDIR_ENV,
            show_envvar=True,
            help="The workdir (default: $LEGATO_WORKDIR, else the current directory).",
        ),
    ] = None,
) -> None:
    ctx.obj = workdir


def _register() -> None:
    from . import _experiments, _interrupt, _jobs, _kill, _remove, _serve

    del _kill, _interrupt  # register `jobs kill` and `jobs interrupt` on the jobs app
    app.add_typer(_jobs.app, name="jobs")
    app.add_typer(_experiments.app, name="experiments")
    app.command("clean")(_remove.clean)
    app.command("status")(_experiments.status)
    app.command("serve")(_serve.serve)


_register()


def main() -> None:
    """Entry point of the `legato` console script."""
    try:
        app(prog_name="legato")
    except InspectError as exc:
        sys.stderr.write(f"legato: error: {exc}\n")
        sys.exit(exc.code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        sys.stderr.write(
            f"legato: internal error: {type(exc).__name__}: {exc} "
            "(set LEGATO_DEBUG=1 to see the traceback)\n"
        )
        sys.exit(1)
