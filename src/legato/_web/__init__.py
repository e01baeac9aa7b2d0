"""`legato serve`: a live web dashboard of a workdir (docs/how-to/dashboard.md).

Needs the `web` extra (Starlette and uvicorn). Nothing here is imported by the rest of
legato: the library and the other commands work without it.
"""

from __future__ import annotations

from ._app import create_app
from ._server import bind, is_loopback, serve, url

__all__ = ["bind", "create_app", "is_loopback", "serve", "url"]
