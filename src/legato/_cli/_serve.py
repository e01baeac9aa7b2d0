"""`legato serve`: the web dashboard of a workdir (the `web` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import EXIT_USAGE, InspectError, open_workdir

__all__ = ["serve"]


def serve(
    ctx: typer.Context,
    workdir: Annotated[
        str | None,
        typer.Option(
            "--workdir",
            "-w",
            metavar="DIR",
            help="The workdir (default: the one given before the command, $LEGATO_WORKDIR, "
            "else the current directory).",
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="HOST",
            help="Address to listen on (default: loopback only; anything else exposes the "
            "dashboard to the network, protected by its token alone).",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", "-p", min=0, max=65535, metavar="N", help="Port (0: any free one)."),
    ] = 8765,
) -> None:
    """Serve a live web dashboard of the workdir; prints its URL (with its token)."""
    path = open_workdir(workdir or ctx.obj)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401

        from .. import _web
    except ImportError as exc:
        raise InspectError(
            f"legato serve needs the web extra ({exc.name} is not installed): "
            "pip install 'legato[web]'"
        ) from None
    if not _web.is_loopback(host):
        typer.echo(
            f"legato: warning: listening on {host}: anyone who can reach this address and "
            "has the token can kill and remove jobs",
            err=True,
        )
    try:
        sock = _web.bind(host, port)
    except OSError as exc:
        why = exc.strerror or exc
        raise InspectError(f"cannot listen on {host}:{port}: {why}", EXIT_USAGE) from None
    try:
        _web.serve(path, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
