"""The dashboard's pages: one HTML shell each, filled by the page's script from the JSON API
(so the API the pages use is the one scripts get), and the scripts and styles they load,
read once from the package: the only files served besides job logs.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ._dashboard import dashboard, error

__all__ = ["all_jobs", "experiment_page", "graph_page", "home", "job_page", "orphans", "static"]

_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _load_static() -> dict[str, tuple[bytes, str]]:
    """Every file the pages load, read once: the only files served besides job files."""
    files = {}
    for item in resources.files("legato._web").joinpath("static").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in _STATIC_TYPES:
            files[item.name] = (item.read_bytes(), _STATIC_TYPES[suffix])
    return files


_STATIC = _load_static()
_SHELL = resources.files("legato._web").joinpath("page.html").read_text(encoding="utf-8")


def _page(request: Request, page: str, title: str, **data: Any) -> Response:
    dash = dashboard(request)
    body = (
        _SHELL.replace("{{title}}", html.escape(title))
        .replace("{{page}}", page)
        .replace("{{token}}", html.escape(dash.token))
        .replace("{{workdir}}", html.escape(str(dash.workdir)))
        .replace("{{data}}", html.escape(json.dumps(data)))
    )
    return Response(
        body,
        media_type="text/html",
        headers={
            "cache-control": "no-store",
            "content-security-policy": "default-src 'self'; img-src 'self' data:; "
            "style-src 'self'; frame-ancestors 'none'",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
        },
    )


async def static(request: Request) -> Response:
    found = _STATIC.get(request.path_params["name"])
    if found is None:
        return error("no such file", 404)
    return Response(found[0], media_type=found[1], headers={"cache-control": "no-cache"})


async def home(request: Request) -> Response:
    return _page(request, "experiments", "Experiments")


async def all_jobs(request: Request) -> Response:
    return _page(request, "jobs", "Jobs")


async def orphans(request: Request) -> Response:
    return _page(request, "jobs", "Orphans", orphans=True)


async def experiment_page(request: Request) -> Response:
    name = await dashboard(request).experiment(request.path_params["name"])
    return _page(request, "jobs", f"Experiment {name}", experiment=name)


async def graph_page(request: Request) -> Response:
    name = await dashboard(request).experiment(request.path_params["name"])
    return _page(request, "graph", f"Graph of {name}", experiment=name)


async def job_page(request: Request) -> Response:
    row = await dashboard(request).job(request.path_params["type"], request.path_params["id"])
    return _page(request, "job", f"{row.type.rsplit('.', 1)[-1]} {row.id[:12]}", job=row.name)
