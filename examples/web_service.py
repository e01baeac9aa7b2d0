"""legato inside an async web service: a plain ASGI app, no framework needed.

    POST /jobs  {"limit": 200000}   202 {"id": "<identifier>", "state": "waiting", ...}
    GET  /jobs/<id>                 200 {"id": ..., "state": "running", "progress": 0.42, ...}

One experiment stays open for the life of the app: it is opened when the server starts the
app (the ASGI lifespan protocol) and closed when the server stops it, which ends the jobs
still running. Posting the parameters of a job that failed runs it again, and the memory
the app and its experiment hold stays bounded however long it runs. Serve it from this
directory with any ASGI server that speaks the lifespan protocol, for instance:

    LEGATO_WORKDIR=runs uvicorn web_service:app
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from legato import Experiment, JobState, Param, Task, experiment, progress

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 64 * 1024
KEEP = 10_000
"""How many finished jobs the app (and its experiment) keeps in memory, the latest ones."""


class CountPrimes(Task, name="examples.CountPrimes"):
    """Count the primes below `limit`, slowly enough to watch its progress."""

    limit: Param[int]

    def execute(self) -> dict[str, int]:
        count = 0
        step = max(self.limit // 100, 1)
        for n in range(2, self.limit):
            if all(n % d for d in range(2, math.isqrt(n) + 1)):
                count += 1
            if n % step == 0:
                progress(n / self.limit, f"{count} primes below {n}")
        progress(1.0, f"{count} primes below {self.limit}")
        return {"limit": self.limit, "primes": count}  # the job's result


class JobService:
    """The ASGI application: `await app(scope, receive, send)`."""

    def __init__(self, workdir: str | os.PathLike[str], *, max_jobs: int | None = None) -> None:
        self.workdir = workdir
        self.max_jobs = max_jobs
        self.experiment: Experiment | None = None
        self.tasks: OrderedDict[str, CountPrimes] = OrderedDict()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            raise NotImplementedError(f"unsupported ASGI scope type {scope['type']!r}")

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """One call for the whole life of the app: the experiment's task group lives here."""
        await receive()  # {"type": "lifespan.startup"}
        started = False
        try:
            with anyio.CancelScope() as scope:
                async with experiment(
                    self.workdir,
                    "web",
                    max_jobs=self.max_jobs,
                    raise_on_failure=False,
                    keep_finished=KEEP,
                ) as xp:
                    self.experiment = xp
                    await send({"type": "lifespan.startup.complete"})
                    started = True
                    await receive()  # {"type": "lifespan.shutdown"}
                    self.experiment = None
                    scope.cancel()  # end the running jobs now rather than wait for them
        except Exception as exc:
            self.experiment = None
            phase = "shutdown" if started else "startup"
            await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    async def http(self, scope: Message, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if path == "/jobs" and method == "POST":
            status, body = await self.launch(await read_body(receive))
        elif path.startswith("/jobs/") and method == "GET":
            status, body = await self.describe(path.removeprefix("/jobs/"))
        else:
            status, body = 404, {"error": f"no route for {method} {path}"}
        await send_json(send, status, body)

    async def launch(self, body: bytes | None) -> tuple[int, Message]:
        xp = self.experiment
        if xp is None:
            return 503, {"error": "the service is not running (the server sent no lifespan?)"}
        if body is None:
            return 413, {"error": f"request body larger than {MAX_BODY} bytes"}
        try:
            params = json.loads(body)
            if not isinstance(params, dict) or "limit" not in params:
                raise ValueError('expected a JSON object such as {"limit": 100000}')
            task = CountPrimes(limit=params["limit"])  # legato.ValidationError if not an int
        except ValueError as exc:  # ValidationError is a ValueError too
            return 400, {"error": str(exc)}
        # Not `task.submit()`: this request runs in the server's task, not in the lifespan
        # task where the experiment is open, so we ask the experiment object directly.
        await xp.submit(task)
        self.remember(task)
        return 202, await view(task)

    def remember(self, task: CountPrimes) -> None:
        """Keep the latest submission of each job (a failed job posted again is a new
        run), and only the latest KEEP of them: a service that runs for weeks must not
        keep every request it ever served."""
        identifier = task.__job__.identifier
        self.tasks[identifier] = task
        self.tasks.move_to_end(identifier)
        while len(self.tasks) > KEEP:
            self.tasks.popitem(last=False)

    async def describe(self, identifier: str) -> tuple[int, Message]:
        task = self.tasks.get(identifier)
        if task is None:
            return 404, {"error": f"no job {identifier!r} was launched lately by this service"}
        return 200, await view(task)


async def view(task: CountPrimes) -> Message:
    """What a client sees of a job."""
    job = task.__job__
    out: Message = {
        "id": job.identifier,
        "state": job.state.value,
        "progress": job.progress,
        "desc": job.progress_desc,
    }
    if job.state is JobState.DONE:
        out["result"] = await job.result()
    elif job.failure_reason is not None:
        out["error"] = job.failure_reason
    return out


async def read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it is larger than MAX_BODY."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body", False):
            return body


async def send_json(send: Send, status: int, value: Message) -> None:
    data = json.dumps(value).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


app = JobService(os.environ.get("LEGATO_WORKDIR", "runs"))
