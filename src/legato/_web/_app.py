"""The dashboard as an ASGI application: its routes, behind the token guard, and the task that
keeps its index fresh while pages watch."""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._api import (
    api_events,
    api_experiments,
    api_graph,
    api_job,
    api_jobs,
    api_kill,
    api_log,
    api_log_follow,
    api_remove,
)
from ._dashboard import BadRequest, Dashboard, NotFound, error
from ._index import Index
from ._pages import all_jobs, experiment_page, graph_page, home, job_page, orphans, static
from ._security import TokenGuard
from ._watch import Watcher

__all__ = ["create_app"]


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return error(str(exc) or "not found", 404)
    return Response(
        f"<!doctype html><title>Not found</title><p>{html.escape(str(exc))}</p>"
        '<p><a href="/">Experiments</a></p>',
        status_code=404,
        media_type="text/html",
    )


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error(str(exc), 400)


_NAME = "{type:str}/{id:str}"


def create_app(
    workdir: Path,
    token: str,
    *,
    interval: float = 1.0,
    idle_interval: float = 5.0,
    ping: float = 15.0,
) -> Starlette:
    """The dashboard of `workdir`, answering only requests that carry `token`.

    `interval`: seconds between two reads of the workdir while a page watches it (slowing
    to `idle_interval` once nothing changed for a while); `ping`: seconds between two
    keep-alive comments on an idle event stream."""
    watcher = Watcher(Index(workdir), interval=interval, idle_interval=idle_interval)
    dash = Dashboard(workdir, token, watcher, ping)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            # Read the workdir now, while the user opens the URL: the first page is quicker.
            tg.start_soon(watcher.refresh)
            tg.start_soon(watcher.run)
            yield
            tg.cancel_scope.cancel()

    routes = [
        Route("/", home),
        Route("/jobs", all_jobs),
        Route("/orphans", orphans),
        Route("/experiments/{name:str}", experiment_page),
        Route("/experiments/{name:str}/graph", graph_page),
        Route(f"/jobs/{_NAME}", job_page),
        Route("/static/{name:str}", static),
        Route("/api/experiments", api_experiments),
        Route("/api/experiments/{name:str}/graph", api_graph),
        Route("/api/jobs", api_jobs),
        Route(f"/api/jobs/{_NAME}", api_job),
        Route(f"/api/jobs/{_NAME}/log/{{stream:str}}", api_log),
        Route(f"/api/jobs/{_NAME}/log/{{stream:str}}/follow", api_log_follow),
        Route(f"/api/jobs/{_NAME}/kill", api_kill, methods=["POST"]),
        Route(f"/api/jobs/{_NAME}/remove", api_remove, methods=["POST"]),
        Route("/api/events", api_events),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={NotFound: _not_found, BadRequest: _bad_request},
    )
    app.state.dash = dash
    app.add_middleware(TokenGuard, token=token)
    return app
