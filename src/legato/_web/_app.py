"""The dashboard as an ASGI application: pages, the JSON API, event streams, actions.

Pages are one HTML shell each that the page's script fills from the JSON API, so the API
the pages use is the one scripts get (documented in docs/how-to/dashboard.md). Every name
taken from a URL is checked against what the index listed from disk before any path is
built from it.
"""

from __future__ import annotations

import codecs
import contextlib
import html
import json
import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import anyio
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .._cli._common import CliError
from .._cli._jobs import _details, _parse_tag_filter
from .._cli._kill import kill_job
from .._cli._procs import Locks
from .._cli._remove import _remove_dir
from .._cli._scan import JobEntry, read_job
from ._index import STATES, Index, Row
from ._logs import LOGS, read_log
from ._security import TokenGuard
from ._views import SORTS, JobQuery, experiment_list, graph, query
from ._watch import Watcher

__all__ = ["Dashboard", "create_app"]

_IDENTIFIER = re.compile(r"[0-9a-f]{64}")
_encode = msgspec.json.Encoder(enc_hook=str).encode
_MAX_LIMIT = 100_000
_LOG_POLL = 0.5
_KILL_GRACE = 5.0


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
            raise _NotFound(f"no job {type_name}/{ident}")
        index = await self.fresh()
        row = index.rows.get(f"{type_name}/{ident}")
        if row is None:
            await self.watcher.refresh()
            row = self.index.rows.get(f"{type_name}/{ident}")
        if row is None:
            raise _NotFound(f"no job {type_name}/{ident[:12]} in {self.workdir}")
        return row

    async def experiment(self, name: str) -> str:
        """The experiment a URL names, once the index lists it; 404 otherwise."""
        index = await self.fresh()
        if name not in index.experiments and _plain_name(name):
            await self.watcher.refresh()
        if name not in self.index.experiments:
            raise _NotFound(f"no experiment named {name!r} in {self.workdir}")
        return name


class _NotFound(Exception):
    pass


def _plain_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


def _dash(request: Request) -> Dashboard:
    dash: Dashboard = request.app.state.dash
    return dash


def _json(value: Any, status: int = 200) -> Response:
    return Response(
        _encode(value),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


def _error(message: str, status: int) -> Response:
    return _json({"error": message}, status)


# -- pages and files ------------------------------------------------------------------

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
    dash = _dash(request)
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
        return _error("no such file", 404)
    return Response(found[0], media_type=found[1], headers={"cache-control": "no-cache"})


async def home(request: Request) -> Response:
    return _page(request, "experiments", "Experiments")


async def all_jobs(request: Request) -> Response:
    return _page(request, "jobs", "Jobs")


async def orphans(request: Request) -> Response:
    return _page(request, "jobs", "Orphans", orphans=True)


async def experiment_page(request: Request) -> Response:
    name = await _dash(request).experiment(request.path_params["name"])
    return _page(request, "jobs", f"Experiment {name}", experiment=name)


async def graph_page(request: Request) -> Response:
    name = await _dash(request).experiment(request.path_params["name"])
    return _page(request, "graph", f"Graph of {name}", experiment=name)


async def job_page(request: Request) -> Response:
    row = await _dash(request).job(request.path_params["type"], request.path_params["id"])
    return _page(request, "job", f"{row.type.rsplit('.', 1)[-1]} {row.id[:12]}", job=row.name)


# -- API ------------------------------------------------------------------------------


async def api_experiments(request: Request) -> Response:
    index = await _dash(request).fresh()
    return _json({"experiments": experiment_list(index), "version": index.version})


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{name}={raw!r}: expected an integer") from None
    if not 0 <= value <= high:
        raise _BadRequest(f"{name}={value}: expected 0 to {high}")
    return value


class _BadRequest(Exception):
    pass


def _job_query(request: Request) -> JobQuery:
    params = request.query_params
    states = frozenset(s for raw in params.getlist("state") for s in raw.split(",") if s)
    unknown = states - set(STATES)
    if unknown:
        raise _BadRequest(f"state: unknown {sorted(unknown)} (one of {', '.join(STATES)})")
    tags = []
    for raw in params.getlist("tag"):
        try:
            tags.append(_parse_tag_filter(raw))
        except CliError as exc:
            raise _BadRequest(str(exc)) from None
    sort = params.get("sort") or "started"
    if sort not in SORTS and not (sort.startswith("tag:") and len(sort) > 4):
        raise _BadRequest(f"sort={sort!r}: one of {', '.join(SORTS)} or tag:NAME")
    order = params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise _BadRequest(f"order={order!r}: asc or desc")
    return JobQuery(
        experiment=params.get("experiment") or None,
        orphans=params.get("orphans", "") in ("1", "true", "yes"),
        states=states,
        types=frozenset(t for raw in params.getlist("type") for t in raw.split(",") if t),
        tags=tags,
        search=params.get("q", "").strip(),
        sort=sort,
        descending=order == "desc",
        offset=_int(request, "offset", 0, 10**9),
        limit=_int(request, "limit", 100, _MAX_LIMIT),
    )


async def api_jobs(request: Request) -> Response:
    dash = _dash(request)
    job_query = _job_query(request)
    if job_query.experiment is not None:
        await dash.experiment(job_query.experiment)
    index = await dash.fresh()
    body = await anyio.to_thread.run_sync(query, index, job_query)
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


def _main_dir(details: dict[str, Any], info: dict[str, Any]) -> str | None:
    """The job's main task directory (shared by jobs that differ only in sub-parameters),
    under whichever name the job's records give it; None when they give none."""
    for source in (details, info):
        for key in ("main_dir", "maintaskdir", "main_taskdir", "__maintaskdir__"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _job_details(dash: Dashboard, row: Row) -> dict[str, Any]:
    entry = read_job(row.type, row.id, row.dir, Locks())
    if entry is None:
        raise _NotFound(f"job {row.type}/{row.id[:12]} was removed")
    try:
        details, _ = _details(dash.workdir, entry)
        details["params_error"] = None
    except CliError as exc:
        details = {
            "type": entry.type_name,
            "id": entry.identifier,
            "state": entry.state,
            "reason": entry.reason,
            "started": entry.started,
            "ended": entry.ended,
            "duration": entry.duration,
            "tags": {},
            "params": None,
            "paths": {},
            "dependencies": [],
            "path": entry.dir,
            "params_error": str(exc),
        }
    info = entry.info
    details["main_dir"] = _main_dir(details, info)
    details["info"] = info
    details["failure"] = _failure(entry.dir) if entry.state in ("failed", "cancelled") else None
    details["dependents"] = [
        {"type": r.type, "id": r.id, "state": r.state}
        for r in dash.index.rows.values()
        if (row.type, row.id) in r.deps
    ]
    details["experiments"] = [
        name for name, xp in dash.index.experiments.items() if (row.type, row.id) in xp.jobs
    ]
    details["logs"] = [name for name, file in LOGS.items() if (entry.path / file).is_file()]
    for key in ("stdout", "stderr"):
        details.pop(key, None)
    return details


def _failure(job_dir: str) -> dict[str, Any] | None:
    from .._cli._scan import read_json
    from .._workdir import FAILED

    return read_json(f"{job_dir}/{FAILED}")


async def api_job(request: Request) -> Response:
    dash = _dash(request)
    row = await dash.job(request.path_params["type"], request.path_params["id"])
    return _json(await anyio.to_thread.run_sync(_job_details, dash, row))


async def api_log(request: Request) -> Response:
    """A log's bytes from `offset` (default: its tail); the next offset in X-Log-Offset."""
    dash = _dash(request)
    stream = request.path_params["stream"]
    if stream not in LOGS:
        return _error(f"no log {stream!r}: one of {', '.join(LOGS)}", 404)
    row = await dash.job(request.path_params["type"], request.path_params["id"])
    raw = request.query_params.get("offset")
    offset = None if raw is None else _int(request, "offset", 0, 1 << 62)
    data, end, restarted = await anyio.to_thread.run_sync(read_log, row.dir, stream, offset)
    return Response(
        data,
        media_type="text/plain; charset=utf-8",
        headers={
            "x-log-start": str(end - len(data)),
            "x-log-offset": str(end),
            "x-log-restarted": "1" if restarted else "0",
            "cache-control": "no-store",
        },
    )


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def _sse(stream: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def api_events(request: Request) -> Response:
    """Server-sent events: `change` {version, jobs: [names] or null for "reload all"}."""
    dash = _dash(request)

    async def stream() -> AsyncIterator[bytes]:
        with dash.watcher.watching():
            seen = dash.index.version
            yield b"retry: 2000\n\n"
            yield _event("hello", {"version": seen})
            while not dash.watcher.closed:
                change = None
                with anyio.move_on_after(dash.ping):
                    change = await dash.watcher.next_change(seen)
                if change is None:
                    if not dash.watcher.closed:
                        yield b": ping\n\n"  # keeps proxies from closing an idle stream
                    continue
                seen, names = change
                yield _event("change", {"version": seen, "jobs": names})

    return _sse(stream())


async def api_log_follow(request: Request) -> Response:
    """Server-sent events of a log: `append` {start, text, restarted}, then `end` once the
    job is no longer running and everything was sent."""
    dash = _dash(request)
    stream_name = request.path_params["stream"]
    if stream_name not in LOGS:
        return _error(f"no log {stream_name!r}: one of {', '.join(LOGS)}", 404)
    row = await dash.job(request.path_params["type"], request.path_params["id"])
    raw = request.query_params.get("offset")
    first = None if raw is None else _int(request, "offset", 0, 1 << 62)

    async def stream() -> AsyncIterator[bytes]:
        offset = first
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        yield b"retry: 2000\n\n"
        while not dash.watcher.closed:
            data, end, restarted = await anyio.to_thread.run_sync(
                read_log, row.dir, stream_name, offset
            )
            if restarted:
                decoder.reset()
            if data or restarted or offset is None:
                yield _event(
                    "append",
                    {
                        "start": end - len(data),
                        "offset": end,
                        "text": decoder.decode(data),
                        "restarted": restarted,
                    },
                )
            offset = end
            if data:
                continue  # more may be waiting
            current = dash.index.rows.get(row.name)
            if current is None or current.state != "running":
                await dash.fresh()
                current = dash.index.rows.get(row.name)
            if current is None or current.state not in ("running", "incomplete"):
                tail, end, _ = await anyio.to_thread.run_sync(
                    read_log, row.dir, stream_name, offset
                )
                if not tail:
                    state = current.state if current is not None else None
                    yield _event("end", {"offset": offset, "state": state})
                    return
                offset = end - len(tail)
                continue
            await anyio.sleep(_LOG_POLL)

    return _sse(stream())


async def api_graph(request: Request) -> Response:
    dash = _dash(request)
    name = await dash.experiment(request.path_params["name"])
    found = graph(dash.index, name)
    if found is None:
        raise _NotFound(f"no experiment named {name!r}")
    return _json(found)


# -- actions --------------------------------------------------------------------------


async def _reread(dash: Dashboard, row: Row) -> None:
    """Read a job again after acting on it, and tell the pages."""
    changed = await anyio.to_thread.run_sync(dash.index.refresh_jobs, [(row.type, row.id)])
    dash.watcher.publish(changed)


async def _entry(row: Row) -> JobEntry:
    entry = await anyio.to_thread.run_sync(read_job, row.type, row.id, row.dir, Locks())
    if entry is None:
        raise _NotFound(f"job {row.type}/{row.id[:12]} was removed")
    return entry


async def api_kill(request: Request) -> Response:
    """End a running job as `legato jobs kill` does (the same code)."""
    dash = _dash(request)
    row = await dash.job(request.path_params["type"], request.path_params["id"])
    entry = await _entry(row)
    try:
        message = await anyio.to_thread.run_sync(kill_job, entry, _KILL_GRACE)
    except CliError as exc:
        return _error(str(exc), 409)
    await _reread(dash, row)
    state = dash.index.rows.get(row.name)
    return _json({"message": message, "state": state.state if state else None})


async def api_remove(request: Request) -> Response:
    """Remove a finished job's directory as `legato jobs rm` does (never a running job's)."""
    dash = _dash(request)
    row = await dash.job(request.path_params["type"], request.path_params["id"])
    entry = await _entry(row)
    if entry.state == "running":
        return _error(f"{entry.short} is running; cancel it first", 409)
    problem = await anyio.to_thread.run_sync(_remove_dir, entry)
    await _reread(dash, row)
    if problem:
        return _error(f"{entry.short}: {problem}", 409)
    return _json({"message": f"{entry.short}: removed"})


# -- the application ------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    if request.url.path.startswith("/api/"):
        return _error(str(exc) or "not found", 404)
    return Response(
        f"<!doctype html><title>Not found</title><p>{html.escape(str(exc))}</p>"
        '<p><a href="/">Experiments</a></p>',
        status_code=404,
        media_type="text/html",
    )


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(str(exc), 400)


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
        exception_handlers={_NotFound: _not_found, _BadRequest: _bad_request},
    )
    app.state.dash = dash
    app.add_middleware(TokenGuard, token=token)
    return app
