"""Running the dashboard: bind first, then print the address, then serve.

The socket is bound before uvicorn starts so that `--port 0` (any free port) prints the
port it got, and so that a port in use is a clear error rather than a log line.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
from pathlib import Path
from typing import TextIO

from ._app import create_app

__all__ = ["bind", "is_loopback", "serve", "url"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); OSError when the address is taken or unknown."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
    except BaseException:
        sock.close()
        raise
    return sock


def url(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def serve(
    workdir: Path, sock: socket.socket, *, token: str | None = None, out: TextIO = sys.stdout
) -> None:
    """Serve the dashboard of `workdir` on `sock` until interrupted."""
    import uvicorn

    token = token or secrets.token_urlsafe(24)
    host, port = sock.getsockname()[:2]
    app = create_app(workdir, token)
    out.write(
        f"Serving the legato dashboard of {workdir}\n"
        "Open this URL in a browser (it holds the access token):\n\n"
        f"    {url(host, port, token)}\n\n"
        "Press Ctrl-C to stop.\n"
    )
    out.flush()
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="on",
    )
    watcher = app.state.dash.watcher

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            watcher.close()  # open pages' event streams end now, not after a timeout
            await super().shutdown(sockets=sockets)

    Server(config).run(sockets=[sock])
