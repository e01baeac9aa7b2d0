"""`legato serve` without a browser: the JSON API, its security, its index of the workdir,
the event stream and the command itself (real workdirs written by real experiments)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's advice to use another HTTP client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from legato._web import create_app  # noqa: E402
from legato._web._index import Index  # noqa: E402
from support.cli import (  # noqa: E402
    alive,
    cli,
    copy_workdir,
    finished_sweep,
    legato_script,
    make_project,
    start_wait,
)
from support.slurm import SlurmCalls, fast, read_state  # noqa: E402
from support.waiting import job_state, poll, wait_until  # noqa: E402
from support.web_support import serving, stop  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups"),
]

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"token {TOKEN}"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished sweep: 2 Learn (done), 2 Evaluate (one failed), a Plain and a Gather."""
    return finished_sweep(tmp_path_factory)[0]


@pytest.fixture()
def copy(sweep: Path, tmp_path: Path) -> Path:
    return copy_workdir(sweep, tmp_path)


def client_for(workdir: Path) -> TestClient:
    return TestClient(create_app(workdir, TOKEN), base_url="http://127.0.0.1:8765")


@pytest.fixture()
def client(sweep: Path) -> Iterator[TestClient]:
    with client_for(sweep) as c:
        yield c


def jobs(client: TestClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/jobs", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def failed_job(client: TestClient) -> dict[str, Any]:
    (job,) = jobs(client, state="failed")["jobs"]
    return job


# -- security -------------------------------------------------------------------------


def test_every_request_needs_the_token(client: TestClient) -> None:
    job = failed_job(client)
    urls = [
        "/",
        "/jobs",
        "/orphans",
        "/experiments/sweep",
        "/experiments/sweep/graph",
        f"/jobs/{job['type']}/{job['id']}",
        "/static/app.js",
        "/static/style.css",
        "/api/experiments",
        "/api/jobs",
        f"/api/jobs/{job['type']}/{job['id']}",
        f"/api/jobs/{job['type']}/{job['id']}/log/stdout",
        "/api/experiments/sweep/graph",
        "/api/events",
        "/no/such/page",
    ]
    for url in urls:
        missing = client.get(url)
        assert missing.status_code == 403, url
        assert "missing token" in missing.json()["error"]
        wrong = client.get(url, params={"token": "not-it"})
        assert wrong.status_code == 403, url
        assert "wrong token" in wrong.json()["error"]
        assert client.get(url, headers={"Authorization": "token nope"}).status_code == 403
        assert client.get(url, cookies={"legato-token-8765": "nope"}).status_code == 403
    # The right token, as a header: every page and file answers.
    for url in urls[:-2]:
        assert client.get(url, headers=AUTH).status_code == 200, url
    assert client.get("/no/such/page", headers=AUTH).status_code == 404


def test_the_url_token_becomes_a_cookie(client: TestClient) -> None:
    first = client.get("/jobs", params={"token": TOKEN, "state": "failed"}, follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/jobs?state=failed"  # the token leaves the address bar
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"legato-token-8765={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # The client keeps the cookie: later requests need nothing else.
    page = client.get("/jobs")
    assert page.status_code == 200
    assert 'data-page="jobs"' in page.text
    assert client.get("/api/experiments").status_code == 200
    assert client.get("/static/app.js").status_code == 200


def test_actions_need_the_token_in_the_request_and_the_same_origin(copy: Path) -> None:
    with client_for(copy) as client:
        job = failed_job(client)
        url = f"/api/jobs/{job['type']}/{job['id']}/remove"
        job_dir = copy / "jobs" / job["type"] / job["id"]
        # A cookie alone (what a browser attaches to any request, from any site): refused.
        client.get("/", params={"token": TOKEN})
        refused = client.post(url)
        assert refused.status_code == 403
        assert "X-Legato-Token" in refused.json()["error"]
        assert client.post(url, headers={"X-Legato-Token": "wrong"}).status_code == 403
        # The token, but posted from another site's page.
        evil = client.post(url, headers={"X-Legato-Token": TOKEN, "Origin": "http://evil.example"})
        assert evil.status_code == 403
        assert "cross-origin" in evil.json()["error"]
        null = client.post(url, headers={"X-Legato-Token": TOKEN, "Origin": "null"})
        assert null.status_code == 403
        assert job_dir.is_dir()
        # Actions are POST only.
        assert client.get(url, headers=AUTH).status_code == 405
        # From the dashboard's own page.
        ok = client.post(url, headers={"X-Legato-Token": TOKEN, "Origin": "http://127.0.0.1:8765"})
        assert ok.status_code == 200, ok.text
        assert not job_dir.exists()


def test_no_path_outside_job_files_is_served(copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    with client_for(copy) as client:
        job = failed_job(client)
        base = f"/api/jobs/{job['type']}/{job['id']}"
        # A log that is a link to a file outside the job directory is not followed.
        log = copy / "jobs" / job["type"] / job["id"] / "stdout.log"
        log.unlink()
        log.symlink_to(secret)
        linked = client.get(f"{base}/log/stdout", headers=AUTH)
        assert linked.status_code == 200
        assert linked.content == b""
        bad = [
            "/static/../_app.py",
            "/static/..%2f_app.py",
            "/static/%2e%2e%2f_index.py",
            "/static/page.html",
            f"{base}/log/..%2fparams.msgpack",
            f"{base}/log/params.msgpack",
            f"{base}/log/..%2f..%2f..%2f..%2fsecret.txt",
            f"/api/jobs/{job['type']}/..%2f..%2f..%2fsecret.txt",
            f"/api/jobs/..%2f..%2fjobs/{job['id']}",
            f"/api/jobs/../{job['id']}",
            f"/api/jobs/.{job['type']}/{job['id']}",
            f"/api/jobs/{job['type']}/{job['id'][:12]}",
            f"/api/jobs/{job['type']}/{job['id'].upper()}",
            f"/api/jobs/{job['type']}/{'0' * 64}",
            f"/api/jobs/no.Such/{job['id']}/log/stdout",
            "/api/experiments/..%2fjobs/graph",
            "/api/experiments/../graph",
            "/experiments/..%2f..%2fetc",
            "/api/jobs?experiment=../../etc",
        ]
        for url in bad:
            response = client.get(url, headers=AUTH)
            assert response.status_code in (404, 400), (url, response.status_code)
            assert b"TOP SECRET" not in response.content
            assert b"msgpack" not in response.content or response.status_code == 404
        assert client.post(f"/api/jobs/../{job['id']}/remove", headers=AUTH).status_code == 404
        assert (copy / "jobs" / job["type"] / job["id"]).is_dir()


# -- the API --------------------------------------------------------------------------


def test_experiments(client: TestClient) -> None:
    data = client.get("/api/experiments", headers=AUTH).json()
    (xp,) = data["experiments"]
    assert xp["name"] == "sweep"
    assert xp["status"] == "failed" and xp["live"] is False  # one of its jobs failed
    assert xp["jobs"] == 6
    assert xp["counts"]["done"] == 5 and xp["counts"]["failed"] == 1
    assert xp["host"] == os.uname().nodename
    assert xp["started"] <= xp["updated"]


def test_jobs_table_filters_sorts_and_pages(client: TestClient) -> None:
    every = jobs(client)
    assert every["total"] == 6
    assert every["counts"] == {"running": 0, "incomplete": 0, "failed": 1, "cancelled": 0,
                               "done": 5}  # fmt: skip
    assert every["tag_keys"] == ["hidden", "lr"] or every["tag_keys"] == ["lr", "hidden"]
    assert set(every["types"]) == {f"cli_tasks.{n}" for n in ("Learn", "Evaluate", "Plain",
                                                              "Gather")}  # fmt: skip
    for job in every["jobs"]:
        assert set(job) >= {"type", "id", "state", "tags", "started", "ended", "duration",
                            "progress", "reason"}  # fmt: skip
    assert [j["type"] for j in jobs(client, state="failed")["jobs"]] == ["cli_tasks.Evaluate"]
    assert jobs(client, state="done,failed")["total"] == 6
    assert jobs(client, state="running")["total"] == 0
    assert {j["type"] for j in jobs(client, type="Learn")["jobs"]} == {"cli_tasks.Learn"}
    assert jobs(client, type="cli_tasks.Learn")["total"] == 2
    # Tags: filtered like `legato jobs ls --tag`, numbers as numbers; inherited ones too.
    tagged = jobs(client, tag="hidden=64")["jobs"]
    assert sorted(j["type"] for j in tagged) == ["cli_tasks.Evaluate", "cli_tasks.Learn"]
    assert jobs(client, tag="lr=1e-1")["total"] == 4
    assert jobs(client, tag="hidden")["total"] == 4
    both = client.get("/api/jobs", params=[("tag", "hidden=13"), ("tag", "lr=0.1")], headers=AUTH)
    assert both.json()["total"] == 2
    # Sorted by a tag, both ways; jobs without the tag last either way.
    up = [j["tags"].get("hidden") for j in jobs(client, sort="tag:hidden")["jobs"]]
    down = [j["tags"].get("hidden") for j in jobs(client, sort="tag:hidden", order="desc")["jobs"]]
    assert up == [13, 13, 64, 64, None, None]
    assert down == [64, 64, 13, 13, None, None]
    for column in ("state", "type", "id", "started", "ended", "duration", "progress"):
        ordered = jobs(client, sort=column)["jobs"]
        assert len(ordered) == 6
    started = [j["started"] for j in jobs(client, sort="started")["jobs"]]
    assert started == sorted(started)
    ids = [j["id"] for j in jobs(client, sort="id", order="desc")["jobs"]]
    assert ids == sorted(ids, reverse=True)
    # Pages.
    page = jobs(client, sort="id", offset=2, limit=3)
    assert page["total"] == 6 and page["offset"] == 2
    assert [j["id"] for j in page["jobs"]] == sorted(ids)[2:5]
    assert len(jobs(client, limit=0)["jobs"]) == 6
    # Search by identifier prefix.
    assert jobs(client, q=ids[0][:10])["jobs"][0]["id"] == ids[0]
    # Bad requests say what is wrong.
    for params in (
        {"state": "sleeping"},
        {"limit": "many"},
        {"offset": "-1"},
        {"tag": "=1"},
        {"sort": "colour"},
        {"sort": "tag:"},
        {"order": "up"},
    ):
        response = client.get("/api/jobs", params=params, headers=AUTH)
        assert response.status_code == 400, params
        assert response.json()["error"]
    unknown = client.get("/api/jobs", params={"experiment": "nope"}, headers=AUTH)
    assert unknown.status_code == 404
    assert "no experiment named 'nope'" in unknown.json()["error"]


def test_a_job_with_a_corrupt_params_file_shows_its_records_and_why(copy: Path) -> None:
    """`legato jobs show` refuses such a job (it cannot print its parameters); its page
    still shows what its other records say, and why the parameters are missing."""
    with client_for(copy) as client:
        job = failed_job(client)
        params = copy / "jobs" / job["type"] / job["id"] / "params.msgpack"
        params.write_bytes(b"\xc1 not msgpack")
        details = client.get(f"/api/jobs/{job['type']}/{job['id']}", headers=AUTH).json()
    assert details["state"] == "failed" and details["reason"] == "ValueError: bad size"
    assert details["params"] is None and details["tags"] == {} and details["dependencies"] == []
    assert details["params_error"].startswith("cannot read the params of ")
    assert details["experiments"] == ["sweep"]
    shown = cli("jobs", "show", job["id"][:12], workdir=copy)
    assert shown.returncode != 0 and "cannot read the params of" in shown.stderr


def test_failed_job_details_and_logs(client: TestClient) -> None:
    job = failed_job(client)
    base = f"/api/jobs/{job['type']}/{job['id']}"
    details = client.get(base, headers=AUTH).json()
    assert details["state"] == "failed"
    assert details["reason"] == "ValueError: bad size"
    assert "ValueError: bad size" in details["failure"]["traceback"]
    assert details["experiments"] == ["sweep"]
    assert details["tags"] == {"hidden": 13, "lr": 0.1}
    # Nested configurations, readable; the output of another job says which.
    model = details["params"]["model"]
    assert model["__type__"] == "cli_tasks.Trained"
    assert model["model"] == {"__type__": "cli_tasks.Model", "hidden": 13}
    (dep,) = details["dependencies"]
    assert dep["type"] == "cli_tasks.Learn" and dep["state"] == "done"
    assert model["__output_of__"] == f"{dep['type']}/{dep['id']}"
    assert details["main_dir"] is None
    assert set(details["logs"]) >= {"stdout", "stderr"}
    # The job it depends on lists it among the jobs that use it.
    learn = client.get(f"/api/jobs/{dep['type']}/{dep['id']}", headers=AUTH).json()
    assert {"type": job["type"], "id": job["id"], "state": "failed"} in learn["dependents"]
    assert "checkpoint" in learn["paths"]
    stdout = client.get(f"{base}/log/stdout", headers=AUTH)
    assert stdout.status_code == 200
    assert stdout.text == "evaluating 13\n"
    assert stdout.headers["x-log-offset"] == str(len(stdout.content))
    stderr = client.get(f"{base}/log/stderr", headers=AUTH).text
    assert "ValueError: bad size" in stderr
    rest = client.get(f"{base}/log/stdout", params={"offset": 11}, headers=AUTH)
    assert rest.text == "13\n" and rest.headers["x-log-start"] == "11"
    # A finished job's log stream sends what there is, then its end.
    with client.stream("GET", f"{base}/log/stdout/follow", headers=AUTH) as events:
        text = "".join(events.iter_text())
    assert "event: append" in text and "evaluating 13" in text
    assert text.rstrip().splitlines()[-2] == "event: end"


def test_graph(client: TestClient) -> None:
    graph = client.get("/api/experiments/sweep/graph", headers=AUTH).json()
    assert len(graph["nodes"]) == 6
    names = {f"{n['type']}/{n['id']}": n for n in graph["nodes"]}
    learns = [n for n in names if n.startswith("cli_tasks.Learn/")]
    evaluates = [n for n in names if n.startswith("cli_tasks.Evaluate/")]
    gather = next(n for n in names if n.startswith("cli_tasks.Gather/"))
    plain = next(n for n in names if n.startswith("cli_tasks.Plain/"))
    edges = {tuple(e) for e in graph["edges"]}
    assert len(edges) == 3
    assert (plain, gather) in edges
    for evaluate in evaluates:
        (source,) = [a for a, b in edges if b == evaluate]
        assert source in learns
        assert names[evaluate]["layer"] == names[source]["layer"] + 1
    assert {n["state"] for n in graph["nodes"]} == {"done", "failed"}
    assert client.get("/api/experiments/nope/graph", headers=AUTH).status_code == 404


def test_orphans(copy: Path) -> None:
    listing = copy / "experiments" / "sweep" / "jobs.txt"
    lines = listing.read_text().splitlines()
    gather = next(line for line in lines if "Gather" in line)
    listing.write_text("".join(f"{line}\n" for line in lines if line != gather))
    with client_for(copy) as client:
        orphans = jobs(client, orphans="1")["jobs"]
        assert [f"{j['type']}/{j['id']}" for j in orphans] == [gather]
        assert jobs(client, experiment="sweep")["total"] == 5
        assert jobs(client)["total"] == 6
        page = client.get("/orphans", headers=AUTH)
        assert page.status_code == 200 and "Orphans" in page.text


def test_index_sees_changes_made_by_others(copy: Path) -> None:
    """What the dashboard shows follows the disk: new jobs, removed ones, a finished job
    that an experiment runs again."""
    index = Index(copy)
    assert len(index.refresh()) == 7  # every job, and the experiments
    assert index.refresh(full=True) == set()
    learn = next(r for r in index.rows.values() if r.type == "cli_tasks.Learn")
    evaluate = next(r for r in index.rows.values() if r.state == "failed")
    # Removed by another process.
    shutil.rmtree(learn.dir)
    assert index.refresh() == {learn.name}
    assert learn.name not in index.rows
    # Back again (copied) under its type directory.
    shutil.copytree(evaluate.dir, learn.dir)
    assert learn.name in index.refresh()
    # A failed job run again by an experiment: its failure record goes, its jobs.txt grows.
    os.unlink(os.path.join(evaluate.dir, "failed.json"))
    listing = copy / "experiments" / "sweep" / "jobs.txt"
    with listing.open("a") as f:
        f.write(f"{evaluate.type}/{evaluate.id}\n")
    changed = index.refresh()
    assert evaluate.name in changed
    assert index.rows[evaluate.name].state == "incomplete"


# -- live: a running job, killed from the page ----------------------------------------


def test_kill_a_running_job_and_refuse_to_remove_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    workdir = tmp_path / "runs"
    process = start_wait(project, workdir, "w", tmp_path / "never")
    try:

        def running() -> dict[str, Any] | None:
            if not (workdir / "jobs").exists():
                return None
            with client_for(workdir) as client:
                found = jobs(client, state="running")["jobs"]
            return found[0] if found else None

        job = wait_until(running, 90, "a running job")
        pid = wait_until(
            lambda: job_state(workdir / "jobs" / job["type"] / job["id"]).get("pid"), 60
        )
        headers = {"X-Legato-Token": TOKEN, "Origin": "http://127.0.0.1:8765"}
        base = f"/api/jobs/{job['type']}/{job['id']}"
        with client_for(workdir) as client:
            refused = client.post(f"{base}/remove", headers=headers)
            assert refused.status_code == 409
            assert "running" in refused.json()["error"]
            killed = client.post(f"{base}/kill", headers=headers)
            assert killed.status_code == 200, killed.text
            assert killed.json()["state"] == "cancelled"
            assert "SIGTERM" in killed.json()["message"]
            assert not alive(pid)
            assert jobs(client, state="cancelled")["total"] == 1
            again = client.post(f"{base}/kill", headers=headers)
            assert "already cancelled" in again.json()["message"]
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def test_event_stream_reports_what_another_process_changes(copy: Path) -> None:
    """Through the real `legato serve`: a change on disk arrives as an event."""
    with serving(copy) as (url, token):
        base = url.split("/?")[0]
        headers = {"Authorization": f"token {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            failed = client.get("/api/jobs", params={"state": "failed"}).json()["jobs"][0]
            with client.stream("GET", "/api/events") as events:
                lines = events.iter_lines()
                assert next(lines) == "retry: 2000"
                wait_until(lambda: next(lines).startswith("event: hello"), 30)
                os.unlink(copy / "jobs" / failed["type"] / failed["id"] / "failed.json")
                wait_until(lambda: next(lines) == "event: change", 60, "a change event")
                data = json.loads(next(lines).removeprefix("data: "))
                assert f"{failed['type']}/{failed['id']}" in data["jobs"]
            listed = client.get("/api/jobs", params={"state": "failed"}).json()
            assert listed["total"] == 0
            # Pages come as HTML shells with their token for actions, scripts and styles.
            page = client.get("/")
            assert page.status_code == 200
            assert f'<meta name="legato-token" content="{token}">' in page.text
            assert "/static/app.js" in page.text
            assert "default-src 'self'" in page.headers["content-security-policy"]


@contextmanager
def uvicorn_thread(app: Any) -> Iterator[str]:
    """Serve `app` from a thread of this process; yield its base URL."""
    import uvicorn

    from legato._web import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, "uvicorn to start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_an_idle_event_stream_is_kept_alive_and_still_reports(copy: Path) -> None:
    """Quiet for a while (keep-alive comments), then a change: it still arrives."""
    app = create_app(copy, TOKEN, interval=0.1, ping=0.2)
    with uvicorn_thread(app) as base, httpx.Client(base_url=base, headers=AUTH, timeout=60) as c:
        failed = c.get("/api/jobs", params={"state": "failed"}).json()["jobs"][0]
        with c.stream("GET", "/api/events") as events:
            lines = events.iter_lines()
            assert wait_until(lambda: next(lines).startswith("event: hello"), 30)
            pings = 0
            while pings < 3:  # three timeouts of the wait for a change
                pings += next(lines) == ": ping"
            os.unlink(copy / "jobs" / failed["type"] / failed["id"] / "failed.json")
            wait_until(lambda: next(lines) == "event: change", 60, "a change event")
            data = json.loads(next(lines).removeprefix("data: "))
            assert data["jobs"] == [f"{failed['type']}/{failed['id']}"]
        # The watcher stops counting a page that went away.
        wait_until(lambda: app.state.dash.watcher.watchers == 0, 30, "the stream to close")


# -- the command ----------------------------------------------------------------------


def test_serve_takes_its_workdir_after_the_command(sweep: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    process = subprocess.Popen(
        [legato_script(), "serve", "--workdir", str(sweep), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"Serving the legato dashboard of {sweep}"
    finally:
        stop(process)


def test_serve_prints_a_loopback_url_with_a_token(sweep: Path) -> None:
    with serving(sweep) as (url, token):
        assert url.startswith("http://127.0.0.1:")
        assert len(token) >= 24
        denied = httpx.get(url.split("?")[0] + "api/experiments", timeout=30)
        assert denied.status_code == 403
        allowed = httpx.get(url, timeout=30, follow_redirects=True)
        assert allowed.status_code == 200
    with serving(sweep) as (_, other):
        assert other != token  # a new token each time


def test_serve_stops_at_once_with_pages_open(sweep: Path) -> None:
    """Ctrl-C with a page watching: its event stream ends cleanly, nothing is logged."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGATO_")}
    process = subprocess.Popen(
        [legato_script(), "serve", "--workdir", str(sweep), "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        url = ""
        while not url:
            line = process.stdout.readline()
            assert line, process.stderr.read()
            url = line.strip() if "?token=" in line else ""
        base, token = url.split("/?token=")
        headers = {"Authorization": f"token {token}"}
        with (
            httpx.Client(base_url=base, headers=headers, timeout=60) as client,
            client.stream("GET", "/api/events") as events,
        ):
            lines = events.iter_lines()
            assert next(lines) == "retry: 2000"
            assert next(line for line in lines if line).startswith("event: hello")
            process.send_signal(signal.SIGINT)
            list(lines)  # the stream ends: no error, no cut connection
        assert process.wait(timeout=60) == 0
        errors = process.stderr.read()
        assert "Traceback" not in errors and "ERROR" not in errors, errors
    finally:
        stop(process)


def test_serve_without_the_web_extra_says_what_to_install(sweep: Path) -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None; sys.argv = ['legato', 'serve']; "
        "from legato._cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "LEGATO_WORKDIR": str(sweep)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "legato: error: legato serve needs the web extra (uvicorn is not installed): "
        "pip install 'legato[web]'"
    )


def test_serve_on_a_port_in_use(sweep: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = cli("serve", "--port", str(port), workdir=sweep, timeout=60)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_needs_a_workdir(tmp_path: Path) -> None:
    done = cli("serve", workdir=tmp_path, timeout=60)
    assert done.returncode == 1
    assert "is not a legato workdir" in done.stderr


def test_serve_in_help() -> None:
    done = cli("--help")
    assert "serve" in done.stdout
    started = time.monotonic()
    assert "--port" in cli("serve", "--help").stdout
    assert time.monotonic() - started < 60


def test_tag_filters_match_the_command_line() -> None:
    """The table's tag filter is `legato jobs ls --tag`, parsed once rather than per job."""
    from legato._inspect._query import tag_matches as _tag_matches
    from legato._web._views import tag_matcher

    values: list[Any] = [0.1, 1e-1, 1, 0, True, False, "0.1", "adam", float("nan"), [1, 2],
                         {"a": 1}, None, 13, 13.0]  # fmt: skip
    wanted: list[str | None] = [None, "0.1", "1e-1", "1", "true", "True", "false", "adam",
                                "nan", "[1,2]", '{"a":1}', "None", "13", "x", ""]  # fmt: skip
    for value in values:
        for want in wanted:
            tags = {"k": value}
            expected = _tag_matches(tags, "k", want)
            assert tag_matcher("k", want)(tags) == expected, (value, want)
            assert tag_matcher("other", want)(tags) is False


def test_assets_ship_in_the_package_and_load_nothing_from_elsewhere() -> None:
    from importlib import resources

    package = resources.files("legato._web")
    names = {item.name for item in package.joinpath("static").iterdir()}
    assert {"app.js", "style.css", "favicon.svg"} <= names
    for item in [package.joinpath("page.html"), *package.joinpath("static").iterdir()]:
        text = item.read_text(encoding="utf-8")
        addresses = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text))
        assert addresses <= {"http://www.w3.org"}, (item.name, addresses)


@pytest.mark.anyio
async def test_the_workdir_is_read_only_while_a_page_watches(copy: Path) -> None:
    """Idle CPU: with no page open, the server reads nothing until it is asked."""
    import anyio

    from legato._web._watch import Watcher

    index = Index(copy)
    reads: list[bool] = []
    read = index.refresh

    def counted(full: bool = False) -> set[str]:
        reads.append(full)
        return read(full)

    index.refresh = counted  # type: ignore[method-assign]
    watcher = Watcher(index, interval=0.01, idle_interval=0.01)
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run)
        await anyio.wait_all_tasks_blocked()
        assert reads == []  # nobody watches: not one read
        with watcher.watching(), anyio.fail_after(30):
            while len(reads) < 3:  # a page watches: polled
                await anyio.sleep(0.01)
        assert watcher.watchers == 0
        tg.cancel_scope.cancel()


@pytest.mark.slurm
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # what is tested is not the loop
async def test_a_slurm_sweep_seen_and_killed_from_the_dashboard(
    tmp_path: Path,
    calls: SlurmCalls,
) -> None:
    """The dashboard in the experiment's own process, over a SlurmLauncher sweep: the job
    runs on the cluster, the kill button scancels it."""
    import anyio

    from legato import JobState, experiment
    from support.xp_tasks import Step, events

    log, never = str(tmp_path / "log"), str(tmp_path / "never")
    workdir = tmp_path / "wd"
    async with experiment(workdir, "slurm", launcher=fast(), raise_on_failure=False):
        step = await Step(name="k", log=log, gate=never).submit()
        started = lambda: "pid" in read_state(step.__job__.path)  # noqa: E731
        await poll(lambda: len(events(tmp_path / "log")) == 1 and started(), 180)
        job = step.__job__
        base = f"/api/jobs/{job.type_name}/{job.identifier}"

        def through_the_dashboard() -> httpx.Response:
            with client_for(workdir) as client:
                listed = jobs(client, state="running")["jobs"]
                assert [j["id"] for j in listed] == [job.identifier]
                details = client.get(base, headers=AUTH).json()
                assert details["launcher"] == "slurm" and details["slurm_id"]
                return client.post(f"{base}/kill", headers={"X-Legato-Token": TOKEN})

        killed = await anyio.to_thread.run_sync(through_the_dashboard)
        assert killed.status_code == 200, killed.text
    slurm_id = read_state(step.__job__.path)["slurm_id"]
    assert f"scancel {slurm_id}" in killed.json()["message"]
    assert calls.args("scancel") == [slurm_id]
    assert step.__job__.state is JobState.CANCELLED


def test_a_job_page_names_its_main_task_directory(tmp_path: Path) -> None:
    """A job of a class with sub-parameters shares a main directory; its page says which."""
    script = (
        "import anyio\n"
        "from legato import experiment\n"
        "from support.partials_tasks import Epochs\n"
        "async def main():\n"
        f"    async with experiment({str(tmp_path)!r}, 'subs'):\n"
        "        await Epochs(lr=0.1, epochs=2).submit()\n"
        "anyio.run(main)\n"
    )
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    client = client_for(tmp_path)
    (job,) = jobs(client, experiment="subs")["jobs"]
    details = client.get(f"/api/jobs/{job['type']}/{job['id']}", headers=AUTH).json()
    assert details["main_dir"] is not None
    assert "/partials/" in details["main_dir"]
