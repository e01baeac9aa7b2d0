"""Warm job processes, on the experiment's side: `LocalLauncher` forks jobs from a server
(`_warm_server.py`) that has legato and the jobs' modules imported already.

One server per experiment (kept in the experiment's `Session`), started at its first
job and ended with it. A server that dies is started again and the jobs it was running
are run again; the modules a server found unsafe to fork (threads started at import, an
initialised CUDA context) make their jobs run as fresh processes, with one warning.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
from anyio import open_process
from anyio.abc import Process

from .._jobdir._job import JobDir
from .._jobdir._layout import FAILED
from .._jobdir._names import RUN_STATE_ENV, WARM_ENV
from ._launcher import Exit, LaunchSpec, Session

__all__ = ["WarmPool", "run_warm", "warm_default"]

_PACKET = 1 << 16
"""Bytes read at once: a whole packet of the job's channel (a longer one is cut)."""
_SERVER_CHECK = 1.0
"""Seconds between two looks at whether the server of a running job has ended."""
_RESTARTS = 2
"""How many times a job may be sent to another server (its server died, before or while
running it, or could not fork it) before it runs as a fresh process."""


def warm_default() -> bool:
    """Warm unless this platform cannot fork or `LEGATO_WARM=0` says no."""
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        return False
    return os.environ.get(WARM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _Gone(Exception):
    """The server ended before answering."""


class _Server:
    def __init__(self, process: Process, ctrl: socket.socket, env: dict[str, str]) -> None:
        self.process = process
        self.ctrl = ctrl
        self.env = env
        """The environment it started with: a request carries only what differs."""
        self._env_of_diff: dict[str, str] | None = None
        self._diff: tuple[dict[str, str], list[str]] = ({}, [])
        self._turn = anyio.Lock()
        """Held by the request that waits for room on the socket: anyio lets one task
        at a time wait to write to a socket, and a server busy importing lets a few
        hundred requests fill it."""

    def payload(self, job_dir: Path, env: dict[str, str], extra: dict[str, str]) -> bytes:
        """The request for a job: its directory, and its environment (`env`, which is
        the same mapping for most jobs of an experiment, and `extra`) as it differs from
        the server's, worked out once a mapping."""
        if env is not self._env_of_diff:
            base = self.env
            changed = {k: v for k, v in env.items() if base.get(k) != v}
            self._diff = (changed, [k for k in base if k not in env])
            self._env_of_diff = env
        changed, removed = self._diff
        if extra:
            changed = {**changed, **{k: v for k, v in extra.items() if self.env.get(k) != v}}
            removed = [k for k in removed if k not in extra]
        request = {"job_dir": str(job_dir), "env": changed, "unset": removed}
        return msgspec.msgpack.encode(request)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and self.ctrl.fileno() >= 0

    async def request(self, payload: bytes, fds: list[int]) -> None:
        while True:
            try:
                socket.send_fds(self.ctrl, [payload], fds)
                return
            except BlockingIOError:
                pass
            except OSError as exc:  # retired (closed), or the server is gone
                raise _Gone from exc
            async with self._turn:
                if self.ctrl.fileno() < 0:  # retired while this request waited its turn
                    raise _Gone
                try:
                    await anyio.wait_writable(self.ctrl)
                except (anyio.ClosedResourceError, OSError) as exc:  # retired meanwhile
                    raise _Gone from exc

    def retire(self) -> None:
        """No new jobs: the server ends once those it runs have ended. A request waiting
        for room on its socket is told, and goes to the next server."""
        if self.ctrl.fileno() >= 0:
            anyio.notify_closing(self.ctrl)
        self.ctrl.close()

    async def aclose(self, patience: float) -> None:
        self.retire()
        with anyio.move_on_after(patience):
            await self.process.wait()
            return
        self.process.kill()
        await self.process.wait()


class WarmPool:
    """The warm server of one experiment, and what its servers learnt."""

    def __init__(self) -> None:
        self.server: _Server | None = None
        self.old: list[_Server] = []
        self.unsafe: dict[str, str] = {}
        self.lock = anyio.Lock()

    @classmethod
    def of(cls, session: Session) -> WarmPool:
        pool: WarmPool = session.get("legato.warm", cls)
        return pool

    async def get(self, env: dict[str, str], extra: dict[str, str]) -> _Server:
        server = self.server
        if server is not None and server.alive:  # the usual case: no wait for the lock
            return server
        async with self.lock:
            if self.server is not None and not self.server.alive:
                self.replace()
            if self.server is None:
                self.server = await self._start({**env, **extra})
            return self.server

    def replace(self) -> None:
        if self.server is not None:
            self.server.retire()
            self.old.append(self.server)
            self.server = None

    async def _start(self, env: dict[str, str]) -> _Server:
        env = dict(env)
        env.pop(RUN_STATE_ENV, None)  # the record of the job that happened to start it
        # The server's imports see the experiment's own devices; each job gets its own.
        env.pop("CUDA_VISIBLE_DEVICES", None)
        if "CUDA_VISIBLE_DEVICES" in os.environ:
            env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            argv = [sys.executable, "-m", "legato._jobside._warm_server", str(theirs.fileno())]
            argv += [str(os.getpid()), json.dumps(self.unsafe)]
            process = await open_process(
                argv,
                stdin=None,
                stdout=None,
                stderr=None,
                env=env,
                start_new_session=True,
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return _Server(process, ours, env)

    def mark_unsafe(self, refused: list[list[str]]) -> None:
        for module, file, why in refused:
            if module in self.unsafe:
                continue
            self.unsafe[module] = why
            where = f" ({file})" if file else ""
            warnings.warn(
                f"legato: jobs of module {module!r}{where} run as fresh processes, not forked "
                f"from a warm one: {why}",
                RuntimeWarning,
                stacklevel=2,
            )

    async def aclose(self) -> None:
        servers = [*self.old, *([self.server] if self.server else [])]
        self.server, self.old = None, []
        for server in servers:
            await server.aclose(patience=5.0)


async def _recv(sock: socket.socket) -> bytes:
    while True:
        try:
            return sock.recv(_PACKET)
        except BlockingIOError:
            await anyio.wait_readable(sock)
        except ConnectionResetError:
            return b""


async def run_warm(
    spec: LaunchSpec,
    session: Session,
    grace_period: float,
    fresh: Callable[[], Awaitable[Exit]],
    on_line: Callable[[bytes], None],
    end_group: Callable[[int], Awaitable[None]],
    extra_env: dict[str, str] | None = None,
) -> Exit:
    """Run the job forked from the experiment's warm server, with `spec.env` and
    `extra_env` as its environment; `fresh()` when it cannot be."""
    pool = WarmPool.of(session)
    env = spec.env
    extra = extra_env or {}
    restarts = 0
    while True:
        server = await pool.get(env, extra)
        payload = server.payload(spec.job_dir, env, extra)
        # One channel a job: the server's replies, and the job's progress (its stdout).
        status, child_status = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        channel = _Channel(status, on_line)
        try:
            fds = [child_status.fileno()]
            if spec.lock_fd is not None:
                fds.append(spec.lock_fd)
                if spec.main_lock_fd is not None:  # kept by the forked job, as the job's lock
                    fds.append(spec.main_lock_fd)
            try:
                await server.request(payload, fds)
            except _Gone:
                pass
            finally:
                child_status.close()
            status.setblocking(False)
            try:
                reply = await channel.reply()
            except anyio.get_cancelled_exc_class():
                # The request is out: a job may be forked at any moment. End it too.
                with anyio.CancelScope(shield=True), anyio.move_on_after(60):
                    reply = await channel.reply()
                    if reply[:1] == b"P":
                        await _terminate(int(reply[1:]), channel, grace_period)
                raise
            if not reply and channel.said_done:
                # The job said its `done` is written, then its server died before saying
                # it started: it is done all the same, and must not run again.
                return Exit(exit_code=0, done=True)
            if not reply or reply[:1] == b"R":  # gone, or no longer forking: another server
                # (also after a job's process could not be forked: each server would fail
                # alike, so a job sent away this often runs as a fresh process instead)
                restarts += 1
                if restarts > _RESTARTS:
                    return await fresh()
                async with pool.lock:
                    if pool.server is server:
                        pool.replace()
                continue
            if reply[:1] == b"C":
                pool.mark_unsafe(json.loads(reply[1:]))
                return await fresh()
            pid = int(reply[1:])
            exit = await _follow(spec, pid, channel, server, grace_period, end_group)
            if exit is not None:
                return exit
            # The server died with the job running (the job's parent-death signal ended
            # it, and `_follow` what it left in its group): run it again on a new server,
            # unless it was cancelled.
            rerun = await anyio.to_thread.run_sync(_clear_for_rerun, spec.job_dir)
            if rerun is not None:
                return rerun
            restarts += 1  # a server that keeps dying under it: the job runs fresh
            if restarts > _RESTARTS:
                return await fresh()
        finally:
            status.close()


class _Channel:
    """The experiment's end of a job's channel: packets from the server, which begin
    with a NUL byte (`P`, `X`, `D`, `C`, `R`, and the job's own `E`, see
    `_warm_server.py`), and packets that the job
    (and what it started) wrote on its progress channel, lines for `on_line`. A job's
    writes come before the server's `X`, which it sends once it reaped the job; they
    may come before its `P`, even the job's `E`."""

    def __init__(self, sock: socket.socket, on_line: Callable[[bytes], None]) -> None:
        self.sock = sock
        self.on_line = on_line
        self.buffer = b""
        self.held: list[bytes] | None = []
        """What the job wrote before the experiment knew it started (it may write before
        the server's `P`): given to `on_line` once it is, in order."""
        self.said_done = False
        """Whether the job's `E` came before the server's `P`: the job runs as soon as it
        is handed over, and a trivial one can be done before its server says it started."""

    def started(self) -> None:
        held, self.held = self.held or [], None
        for packet in held:
            self.output(packet)

    async def reply(self) -> bytes:
        """The server's next message, without its NUL; b"" once the channel is closed."""
        while True:
            packet = await _recv(self.sock)
            if not packet:
                self.flush()
                return b""
            if packet[:1] == b"\0":
                if packet == b"\0E" and self.held is not None:
                    self.said_done = True  # kept for `_follow`: the server's `P` comes next
                    continue
                return packet[1:]
            self.output(packet)

    async def status(self) -> bytes:
        """The server's next message that is not the job's `E`: its `X` or `D` once it
        reaped the job, b"" if it died first."""
        reply = await self.reply()
        while reply == b"E":
            reply = await self.reply()
        return reply

    async def drain(self) -> None:
        """The job's last progress lines, until every writer closed the channel."""
        while await self.reply():
            pass

    def output(self, packet: bytes) -> None:
        if self.held is not None:
            self.held.append(packet)
            return
        lines = (self.buffer + packet).split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            self.on_line(line)

    def flush(self) -> None:
        if self.held is not None:  # closed before the job was known to start: no run
            return
        if self.buffer:
            self.buffer, line = b"", self.buffer
            self.on_line(line)


async def _follow(
    spec: LaunchSpec,
    pid: int,
    channel: _Channel,
    server: _Server,
    grace_period: float,
    end_group: Callable[[int], Awaitable[None]],
) -> Exit | None:
    """Exit of the forked job `pid`; None if its server died before saying."""
    ended = False
    try:
        spec.on_started({"pid": pid, "launcher": "local", "warm": True})
        channel.started()
        reply = b"E" if channel.said_done else await _reply_while_alive(channel, server)
        if reply == b"E":
            # The job's own process: its `done` is written and flushed to the disk, and it
            # is exiting. Its dependents need not wait the milliseconds the kernel takes to
            # tear it down (`on_done`); its lock does, as does what it left in its group.
            channel.said_done = True
            spec.on_done()
            with anyio.CancelScope(shield=True), anyio.move_on_after(grace_period + 5.0):
                reply = await channel.reply()
        ended = True
        if reply[:1] in (b"X", b"D"):
            # The job's own process ended: its verdict is on disk. What it left in its
            # group would hold the lock and the channel for as long as it lives.
            with anyio.CancelScope(shield=True):
                await end_group(pid)
            with anyio.move_on_after(1.0):  # the last progress lines, then no more
                await channel.drain()
    finally:
        if not ended:
            with anyio.CancelScope(shield=True):
                await _terminate(pid, channel, grace_period)
    if reply[:1] not in (b"X", b"D"):
        # Its server died (or never said). Once the job's process and what it left in its
        # group are gone, a job that said it was done is, all the same; another runs again.
        await _gone(pid)
        with anyio.CancelScope(shield=True):
            await end_group(pid)
        return Exit(exit_code=0, done=True) if channel.said_done else None
    code, done = int(reply[1:]), reply[:1] == b"D"
    return Exit(signal=-code, done=done) if code < 0 else Exit(exit_code=code, done=done)


async def _reply_while_alive(channel: _Channel, server: _Server) -> bytes:
    """The channel's next reply, or b"" once its server has ended without one: a process
    that the job left in its group keeps the channel open, and only the server would say
    that the job ended."""
    while True:
        with anyio.move_on_after(_SERVER_CHECK):
            return await channel.reply()
        if server.process.returncode is not None:
            with anyio.move_on_after(0):  # what it said before it ended, if anything
                return await channel.reply()
            return b""


async def _terminate(pid: int, channel: _Channel, grace_period: float) -> None:
    _kill(pid, signal.SIGTERM)
    with anyio.move_on_after(grace_period):
        if await channel.status():  # its exit status
            return
        await _gone(pid, grace_period)  # its server died first
        return
    _kill(pid, signal.SIGKILL)
    if not await channel.status():
        await _gone(pid)


def _kill(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
        return
    except (ProcessLookupError, PermissionError):
        pass
    try:  # forked, but not yet in a session of its own
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _clear_for_rerun(job_dir: Path) -> Exit | None:
    """Forget the verdict of a run its server's death ended, to run it again (None); its
    end instead if it was cancelled, or if it was done (its process wrote `done`, then
    lost its server on its way out, before it could say so)."""
    jd = JobDir(job_dir)
    if jd.is_done():
        return Exit(exit_code=0, done=True)
    if jd.has_cancel():
        return Exit(signal=signal.SIGTERM)
    jd.discard(FAILED)
    return None


async def _gone(pid: int, patience: float = 30.0) -> None:
    """Wait until process `pid` (not our child: it was the server's) has ended."""
    deadline = time.monotonic() + patience
    delay = 0.005
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.1)
    _kill(pid, signal.SIGKILL)
