"""examples/web_service.py driven as a server drives it: the ASGI lifespan protocol in a
task of its own, requests in other tasks, a real experiment and real job processes."""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

import legato
from support.cli import alive
from support.waiting import job_state

pytestmark = pytest.mark.anyio

EXAMPLES = Path(__file__).parent.parent / "examples"
Message = dict[str, Any]
FINAL = ("done", "failed", "cancelled", "dependency_failed")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def web_service(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # Jobs inherit sys.path, so the job processes import the example module too.
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module("web_service")


@asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """Start the app as an ASGI server does, and shut it down at the end of the block."""
    to_app, app_inbox = anyio.create_memory_object_stream[Message](1)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](1)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
    async with anyio.create_task_group() as tg:
        tg.start_soon(app, scope, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        assert (await from_app.receive())["type"] == "lifespan.startup.complete"
        yield
        await to_app.send({"type": "lifespan.shutdown"})
        with anyio.fail_after(30):
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"


async def request(app: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One HTTP request through the ASGI interface; the status and the decoded JSON body."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    incoming = [{"type": "http.request", "body": data, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    start, *rest = sent
    assert start["type"] == "http.response.start"
    assert (b"content-type", b"application/json") in start["headers"]
    return start["status"], json.loads(b"".join(m["body"] for m in rest))


async def poll_job(app: Any, ident: str, until: Any, timeout: float = 60.0) -> Message:
    """GET /jobs/<id> until `until(body)` holds; fail after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while True:
            status, body = await request(app, "GET", f"/jobs/{ident}")
            assert status == 200, body
            if until(body):
                return body
            await anyio.sleep(0.02)


async def test_a_job_launched_through_the_app_reaches_done(
    web_service: ModuleType, tmp_path: Path
) -> None:
    app = web_service.JobService(tmp_path, max_jobs=2)
    async with lifespan(app):
        status, launched = await request(app, "POST", "/jobs", {"limit": 5000})
        assert status == 202, launched
        ident = launched["id"]
        assert len(ident) == 64 and launched["state"] in ("waiting", "ready", "running")
        done = await poll_job(app, ident, lambda body: body["state"] in FINAL)
        assert done["state"] == "done", done
        assert done["result"] == {"limit": 5000, "primes": 669}
        assert done["progress"] == 1.0
        # The same parameters are the same job: no second run.
        status, again = await request(app, "POST", "/jobs", {"limit": 5000})
        assert (status, again["id"], again["state"]) == (202, ident, "done")
    job_dir = tmp_path / "jobs" / "examples.CountPrimes" / ident
    assert (job_dir / "done").exists()
    assert legato.load_result(job_dir) == {"limit": 5000, "primes": 669}


async def test_a_finished_job_is_found_on_disk_after_a_restart(
    web_service: ModuleType, tmp_path: Path
) -> None:
    app = web_service.JobService(tmp_path)
    async with lifespan(app):
        _, launched = await request(app, "POST", "/jobs", {"limit": 100})
        await poll_job(app, launched["id"], lambda body: body["state"] == "done")
    restarted = web_service.JobService(tmp_path)
    async with lifespan(restarted):
        status, body = await request(restarted, "GET", f"/jobs/{launched['id']}")
        assert status == 404  # this process has not launched it yet
        _, again = await request(restarted, "POST", "/jobs", {"limit": 100})
        assert again["id"] == launched["id"]
        body = await poll_job(restarted, again["id"], lambda body: body["state"] == "done")
        assert body["result"]["primes"] == 25
        assert body["progress"] is None  # not run again: done on disk


async def test_shutdown_cancels_running_jobs(web_service: ModuleType, tmp_path: Path) -> None:
    app = web_service.JobService(tmp_path)
    async with lifespan(app):
        status, launched = await request(app, "POST", "/jobs", {"limit": 10**12})
        assert status == 202
        job_dir = tmp_path / "jobs" / "examples.CountPrimes" / launched["id"]
        await poll_job(app, launched["id"], lambda body: body["state"] == "running")
        with anyio.fail_after(30):  # the job process has started and recorded its pid
            while "pid" not in (info := job_state(job_dir)):
                await anyio.sleep(0.02)
        pid = info["pid"]
        assert alive(pid)
    assert not alive(pid)
    assert not (job_dir / "done").exists()
    assert json.loads((job_dir / "failed.json").read_text())["state"] == "cancelled"
    assert app.experiment is None
    status, body = await request(app, "GET", f"/jobs/{launched['id']}")
    assert (status, body["state"]) == (200, "cancelled")
    status, body = await request(app, "POST", "/jobs", {"limit": 10})
    assert status == 503, body


async def test_bad_requests(web_service: ModuleType, tmp_path: Path) -> None:
    app = web_service.JobService(tmp_path)
    status, body = await request(app, "POST", "/jobs", {"limit": 10})
    assert status == 503  # no lifespan yet: no experiment
    async with lifespan(app):
        for payload in (b"not json", [1, 2], {"limt": 3}, {"limit": "many"}, b"\xff"):
            status, body = await request(app, "POST", "/jobs", payload)
            assert status == 400, (payload, body)
            assert body["error"]
        status, body = await request(app, "POST", "/jobs", {"limit": "many"})
        assert "CountPrimes.limit" in body["error"]
        status, body = await request(app, "POST", "/jobs", b" " * (web_service.MAX_BODY + 1))
        assert status == 413
        assert (await request(app, "GET", "/jobs/" + "0" * 64))[0] == 404
        assert (await request(app, "GET", "/elsewhere"))[0] == 404
        assert (await request(app, "DELETE", "/jobs"))[0] == 404
    assert app.experiment is None


async def test_a_startup_failure_is_reported_to_the_server(
    web_service: ModuleType, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    app = web_service.JobService(not_a_dir)
    to_app, app_inbox = anyio.create_memory_object_stream[Message](1)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](1)
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(app, {"type": "lifespan"}, app_inbox.receive, app_outbox.send)
            await to_app.send({"type": "lifespan.startup"})
            message = await from_app.receive()
    assert message["type"] == "lifespan.startup.failed"
    assert "NotADirectoryError" in message["message"]
    assert app.experiment is None
