"""What every route of the dashboard shares: the workdir's index and watcher, the token,
and how a name taken from a URL becomes a job or an experiment (checked against what the
index listed from disk, before any path is built from it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ._index import Index, Row
from ._watch import Watcher

__all__ = ["BadRequest", "Dashboard", "NotFound", "dashboard", "error", "json_response"]

_IDENTIFIER = re.compile(r"[0-9a-f]{64}")
_encode = msgspec.json.Encoder(enc_hook=str).encode


class NotFound(Exception):
    """No such job, experiment or file: a 404."""


class BadRequest(Exception):
    """A query parameter the API cannot use: a 400 saying why."""


class Dashboard:
    """What the routes share: the workdir, its index, the watcher and the token."""

    def __init__(self, workdir: Path, token: str, watcher: Watcher, ping: float = 15.0) -> None:
        self.workdir = workdir
        self.ping = ping
        """Seconds between two comments on an idle event stream."""
        self.token = token
        self.watcher = watcher
        self.index: Index = watcher.index

    async def fresh(self) -> Index:
        """The index, re-read if no refresh happened in the last second."""
        await self.watcher.refresh(max_age=1.0)
        return self.index

    async def job(self, type_name: str, ident: str) -> Row:
        """The job a URL names, once the index (read from disk) lists it; 404 otherwise."""
        if not _IDENTIFIER.fullmatch(ident) or not _plain_name(type_name):
            raise NotFound(f"no job {type_name}/{ident}")
        index = await self.fresh()
        row = index.rows.get(f"{type_name}/{ident}")
        if row is None:
            await self.watcher.refresh()
            row = self.index.rows.get(f"{type_name}/{ident}")
        if row is None:
            raise NotFound(f"no job {type_name}/{ident[:12]} in {self.workdir}")
        return row

    async def experiment(self, name: str) -> str:
        """The experiment a URL names, once the index lists it; 404 otherwise."""
        index = await self.fresh()
        if name not in index.experiments and _plain_name(name):
            await self.watcher.refresh()
        if name not in self.index.experiments:
            raise NotFound(f"no experiment named {name!r} in {self.workdir}")
        return name


def _plain_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


def dashboard(request: Request) -> Dashboard:
    dash: Dashboard = request.app.state.dash
    return dash


def json_response(value: Any, status: int = 200) -> Response:
    return Response(
        _encode(value),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def error(message: str, status: int) -> Response:
    return json_response({"error": message}, status)
