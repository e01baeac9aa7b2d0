"""The JSON API (`/api/...`, documented in docs/how-to/dashboard.md), its event streams, and
the actions, which run the code of `legato jobs kill` and `legato jobs rm`."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .._inspect._errors import InspectError
from .._inspect._kill import kill_job
from .._inspect._procs import Locks
from .._inspect._query import job_details, parse_tag_filter
from .._inspect._remove import remove_job_dir
from .._inspect._scan import JobEntry, read_job
from .._jobdir._job import JobDir
from ._dashboard import BadRequest, Dashboard, NotFound, dashboard, error, json_response
from ._index import STATES, Row
from ._logs import LOGS, read_log
from ._views import SORTS, JobQuery, experiment_list, graph, query

__all__ = [
    "api_events",
    "api_experiments",
    "api_graph",
    "api_job",
    "api_jobs",
    "api_kill",
    "api_log",
    "api_log_follow",
    "api_remove",
]

_encode = msgspec.json.Encoder(enc_hook=str).encode
_MAX_LIMIT = 100_000
_LOG_POLL = 0.5
_KILL_GRACE = 5.0


async def api_experiments(request: Request) -> Response:
    index = await dashboard(request).fresh()
    return json_response({"experiments": experiment_list(index), "version": index.version})


def _int(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r}: expected an integer") from None
    if not 0 <= value <= high:
        raise BadRequest(f"{name}={value}: expected 0 to {high}")
    return value


def _job_query(request: Request) -> JobQuery:
    params = request.query_params
    states = frozenset(s for raw in params.getlist("state") for s in raw.split(",") if s)
    unknown = states - set(STATES)
    if unknown:
        raise BadRequest(f"state: unknown {sorted(unknown)} (one of {', '.join(STATES)})")
    tags = []
    for raw in params.getlist("tag"):
        try:
            tags.append(parse_tag_filter(raw))
        except InspectError as exc:
            raise BadRequest(str(exc)) from None
    sort = params.get("sort") or "started"
    if sort not in SORTS and not (sort.startswith("tag:") and len(sort) > 4):
        raise BadRequest(f"sort={sort!r}: one of {', '.join(SORTS)} or tag:NAME")
    order = params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise BadRequest(f"order={order!r}: asc or desc")
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
    dash = dashboard(request)
    job_query = _job_query(request)
    if job_query.experiment is not None:
        await dash.experiment(job_query.experiment)
    index = await dash.fresh()
    body = await anyio.to_thread.run_sync(query, index, job_query)
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


def _main_dir(details: dict[str, Any]) -> str | None:
    """The job's main task directory when it is not the job directory itself (a class
    with sub-parameters), as `legato jobs show` reads it from the params file."""
    main, path = details.get("main_path"), details.get("path")
    return str(main) if main is not None and str(main) != str(path) else None


def _job_details(dash: Dashboard, row: Row) -> dict[str, Any]:
    entry = read_job(row.type, row.id, row.dir, Locks())
    if entry is None:
        raise NotFound(f"job {row.type}/{row.id[:12]} was removed")
    details, _ = job_details(dash.workdir, entry, strict=False)
    info = entry.info
    details["main_dir"] = _main_dir(details)
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
    return JobDir(job_dir).failure()


async def api_job(request: Request) -> Response:
    dash = dashboard(request)
    row = await dash.job(request.path_params["type"], request.path_params["id"])
    return json_response(await anyio.to_thread.run_sync(_job_details, dash, row))


async def api_log(request: Request) -> Response:
    """A log's bytes from `offset` (default: its tail); the next offset in X-Log-Offset."""
    dash = dashboard(request)
    stream = request.path_params["stream"]
    if stream not in LOGS:
        return error(f"no log {stream!r}: one of {', '.join(LOGS)}", 404)
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
    dash = dashboard(request)

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
    dash = dashboard(request)
    stream_name = request.path_params["stream"]
    if stream_name not in LOGS:
        return error(f"no log {stream_name!r}: one of {', '.join(LOGS)}", 404)
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
    dash = dashboard(request)
    name = await dash.experiment(request.path_params["name"])
    found = graph(dash.index, name)
    if found is None:
        raise NotFound(f"no experiment named {name!r}")
    return json_response(found)


# -- actions --------------------------------------------------------------------------


async def _reread(dash: Dashboard, row: Row) -> None:
    """Read a job again after acting on it, and tell the pages."""
    changed = await anyio.to_thread.run_sync(dash.index.refresh_jobs, [(row.type, row.id)])
    dash.watcher.publish(changed)


async def _entry(row: Row) -> JobEntry:
    entry = await anyio.to_thread.run_sync(read_job, row.type, row.id, row.dir, Locks())
    if entry is None:
        raise NotFound(f"job {row.type}/{row.id[:12]} was removed")
    return entry


async def api_kill(request: Request) -> Response:
    """End a running job as `legato jobs kill` does (the same code)."""
    dash = dashboard(request)
    row = await dash.job(request.path_params["type"], request.path_params["id"])
    entry = await _entry(row)
    try:
        message = await anyio.to_thread.run_sync(kill_job, entry, _KILL_GRACE)
    except InspectError as exc:
        return error(str(exc), 409)
    await _reread(dash, row)
    state = dash.index.rows.get(row.name)
    return json_response({"message": message, "state": state.state if state else None})


async def api_remove(request: Request) -> Response:
    """Remove a finished job's directory as `legato jobs rm` does (never a running job's)."""
    dash = dashboard(request)
    row = await dash.job(request.path_params["type"], request.path_params["id"])
    entry = await _entry(row)
    if entry.state == "running":
        return error(f"{entry.short} is running; cancel it first", 409)
    problem = await anyio.to_thread.run_sync(remove_job_dir, entry)
    await _reread(dash, row)
    if problem:
        return error(f"{entry.short}: {problem}", 409)
    return json_response({"message": f"{entry.short}: removed"})
