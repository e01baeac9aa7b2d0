"""The warm server: `python -m legato._jobside._warm_server FD PARENT_PID UNSAFE_JSON`.

One per experiment (`_warm.py` starts it). It imports legato and, job by job, the modules
of the classes a job's params file names, then forks the job from that state, so a job
starts at the cost of a fork rather than of an interpreter and its imports. It never runs
a job itself: each job is a fresh fork of a process that ran none, so no job sees what
another did.

Once a job is forked, the server forks the next job's process ahead (a *spare*), while
that job runs: the spare lets go of what is the server's, then waits for the one job it
will be given (`_warm_job.py`: what a forked process does to become a job). A request is
then handed to it, with no fork, and none of the new process's first page faults, for
the experiment to wait on. A spare forked before the server imported a module that a job
needs is let go, and ends without running anything.

Requests arrive on a `SOCK_SEQPACKET` socket, one packet each: a msgpack map
`{"job_dir", "env", "unset"}` (the job's environment, as it differs from the server's),
with the job's descriptors attached (`socket.send_fds`): its channel, and the job's lock.
The channel is a `SOCK_SEQPACKET` socket that serves twice: the job writes its progress
on it (it is the job's stdout, as a fresh process's is a pipe), and the server replies on
it, one packet each that begins with a NUL byte: `P<pid>` once forked, `X<exit code>`
(negative: the signal) once reaped, so after everything the job wrote (`D<exit code>`
when the job's `done` marker was there once it was reaped), `C<json>` when
the job's modules are not safe to fork (it must run as a fresh process), `R` when this
server took on such a module and no longer forks, or could not fork the job (ask a new
one). The job itself sends one
such packet, `E`, once its `done` is written, just before it exits: a trivial job can
send it before the server's `P` is out, and the experiment takes it so. One channel rather
than two: a job costs the experiment one socket and one reader less. The server ends
when the experiment closes its end of the socket and the last of its jobs has ended, and
at once if the experiment dies (its parent-death signal).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import msgspec

from .._jobdir._layout import DONE, PARAMS
from .._jobdir._names import WORKER_ENV
from ._warm_job import BUFSIZE, MAX_FDS, become_job, reseed, wait_for_job
from ._warm_profile import profile_end, profile_start
from ._worker import flush_c_stdio, libc_function


def unsafe_state() -> str | None:
    """Why forking this process now would not be safe, or None.

    A thread (started by an imported module) would be missing from the child while
    holding whatever locks it held at the fork; an initialised CUDA context cannot be
    used in a forked child at all."""
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        return f"it started threads at import ({', '.join(sorted(threads))})"
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    with contextlib.suppress(Exception):  # a broken torch is not ours to judge
        if cuda is not None and cuda.is_initialized():
            return "it initialised CUDA at import"
    return None


class _Server:
    def __init__(self, ctrl: socket.socket, unsafe: dict[str, str]) -> None:
        self.ctrl = ctrl
        self.unsafe = unsafe  # module -> why, from earlier servers of this experiment
        self.imported: set[str] = set()
        self.tainted = False
        self.spare: tuple[int, socket.socket] | None = None  # (pid, its socket)
        self.idle: set[int] = set()  # spares let go without a job, to reap
        self.children: dict[int, socket.socket] = {}
        self.dirs: dict[int, str] = {}  # the job directory of each
        self.selector = selectors.DefaultSelector()
        self.real_parents: dict[str, str] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.selector.register(self.ctrl, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        open_ = True
        while open_ or self.children or self.idle:
            for key, _ in self.selector.select():
                if key.fileobj is self.ctrl:
                    open_ = self._receive()
                    if not open_:
                        self.selector.unregister(self.ctrl)
                        self._drop_spare()
                else:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
            self._reap()

    def _receive(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.ctrl, BUFSIZE, MAX_FDS)
        except InterruptedError:
            return True
        except OSError:
            return False
        if not data:
            return False
        status = socket.socket(fileno=fds[0])
        started = False
        try:
            started = self._start(msgspec.msgpack.decode(data), status, fds)
        except Exception:
            traceback.print_exc()
            _send(status, b"R")
            status.close()
        finally:
            for fd in fds[1:]:
                os.close(fd)
        if started and self.spare is None:
            # The next job's process, forked now while this job runs (and after this
            # job's locks are closed, which it must not hold). Without one (no process or
            # memory left for it now), the next job is forked when it comes.
            with contextlib.suppress(OSError):
                self._fork_spare()
        return True

    def _start(self, request: dict[str, Any], status: socket.socket, fds: list[int]) -> bool:
        """Whether a job was forked (else the reply said why not)."""
        if self.tainted:
            _send(status, b"R")
            status.close()
            return False
        job_dir: str = request["job_dir"]
        # The real path of the job directory, as a fresh job resolves it, without a
        # lstat of each of its parents in every job: legato makes the job directory
        # itself (never a link), under parents resolved once.
        parent, name = os.path.split(job_dir)
        real = self.real_parents.get(parent)
        if real is None:
            real = self.real_parents[parent] = os.path.realpath(parent)
        request["real_dir"] = os.path.join(real, name)
        # The job's parent, as the job must check it: a job that read it after the fork
        # would find init there if the server had died meanwhile, and outlive it.
        request["server"] = os.getpid()
        if os.path.islink(request["real_dir"]):  # not made by legato: as a fresh job does
            request["real_dir"] = os.path.realpath(request["real_dir"])
        modules = _modules(job_dir)
        refused = [[m, f, self.unsafe[m]] for m, f in modules if m in self.unsafe]
        if refused:
            _send(status, b"C" + json.dumps(refused).encode())
            status.close()
            return False
        new = [m for m in modules if m[0] not in self.imported]
        if new:
            self._drop_spare()  # forked before these imports: it would import them again
            self._import(new)
            why = unsafe_state()
            if why is not None:
                self.tainted = True
                _send(status, b"C" + json.dumps([[m, f, why] for m, f in new]).encode())
                status.close()
                return False
            gc.freeze()  # what the jobs inherit: the collector need not go through it again
        pid = self._hand_to_spare(request, status, fds)
        if pid is None:
            pid = self._fork(lambda: become_job(request, status, fds[1:]))
        self.children[pid] = status
        self.dirs[pid] = job_dir
        _send(status, b"P%d" % pid)
        return True

    def _fork(self, child: Callable[[], int]) -> int:
        """Fork a process that runs `child()` (its exit code), and never returns into
        the server's loop."""
        sys.stdout.flush()
        sys.stderr.flush()
        flush_c_stdio()  # else what C code printed here would come out of every job too
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                self._detach()
                code = child()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        return pid

    def _fork_spare(self) -> None:
        """Fork the next job's process now, while no job waits for it: it does what
        every job's process does after the fork, then waits for its job (`wait_for_job`). A
        request then costs a message to it rather than a fork, the new process's first
        few hundred page faults and its setup (2 to 4 ms on a small machine), which the
        experiment would wait for."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

        def spare() -> int:
            ours.close()  # else it would never see the server close its end
            return wait_for_job(theirs)

        try:
            pid = self._fork(spare)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.spare = (pid, ours)

    def _hand_to_spare(
        self, request: dict[str, Any], status: socket.socket, fds: list[int]
    ) -> int | None:
        """The spare's pid once it has the job (its channel and locks), or None."""
        if self.spare is None:
            return None
        pid, sock = self.spare
        self.spare = None
        try:
            socket.send_fds(sock, [msgspec.msgpack.encode(request)], [status.fileno(), *fds[1:]])
        except OSError:  # it died meanwhile: fork the job instead
            self.idle.add(pid)
            return None
        finally:
            sock.close()
        return pid

    def _drop_spare(self) -> None:
        """The spare ends (once its socket is closed) without a job; reaped as idle."""
        if self.spare is not None:
            pid, sock = self.spare
            self.spare = None
            sock.close()
            self.idle.add(pid)

    def _import(self, modules: list[tuple[str, str | None]]) -> None:
        from .._core._config import registry
        from .._core._serialize import import_module_of

        for module, file in modules:
            self.imported.add(module)
            before = set(registry)
            try:
                import_module_of(module, file)
            except BaseException:
                # Forget the classes the failed import declared before it failed, as a
                # fresh process never saw them: the job imports the module itself.
                for key in set(registry) - before:
                    del registry[key]
                sys.modules.pop(module, None)
        # A class compiles its plan (field list, identity code) at its first construction:
        # here, once, rather than in every job that rebuilds its task (half of a trivial
        # job's work). One that fails is left to fail in its jobs, as it would afresh.
        for cls in list(registry.values()):
            if cls.__legato_plan__ is None:
                with contextlib.suppress(Exception):
                    cls.__legato_get_plan__()

    def _detach(self) -> None:
        """In a forked process: let go of what is the server's (its loop, its signals,
        the other jobs' channels), as a process that is about to be a job must."""
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.selector.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        self.ctrl.close()
        for sock in self.children.values():
            sock.close()
        if self.spare is not None:
            self.spare[1].close()
        reseed()

    def _reap(self) -> None:
        while self.children or self.idle or self.spare:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.idle.discard(pid)
            if self.spare is not None and self.spare[0] == pid:  # died waiting: no job lost
                self.spare[1].close()
                self.spare = None
            sock = self.children.pop(pid, None)
            job_dir = self.dirs.pop(pid, None)
            if sock is not None:
                # `D` when the job's `done` is there, durable and visible (the job renames
                # it into place only after its fsync): the experiment needs no trip to a
                # thread to look for it.
                done = job_dir is not None and os.path.exists(os.path.join(job_dir, DONE))
                _send(sock, b"%c%d" % (b"D" if done else b"X", os.waitstatus_to_exitcode(status)))
                sock.close()


def _send(sock: socket.socket, message: bytes) -> None:
    try:
        sock.send(b"\0" + message)
    except OSError:
        pass  # the experiment stopped waiting for this job


def _modules(job_dir: str) -> list[tuple[str, str | None]]:
    """(module, script file) of every class the job's params name, in order, once each."""
    try:
        with open(os.path.join(job_dir, PARAMS), "rb") as params:
            doc = msgspec.msgpack.decode(params.read())
        records = doc["objects"]
        seen = {(r["module"], r.get("file")): None for r in records}
    except Exception:
        return []
    return list(seen)


def _die_with_parent(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        sys.exit(0)


def main(argv: list[str]) -> None:
    fd, parent, unsafe = int(argv[0]), int(argv[1]), json.loads(argv[2])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Imports run here as they would in a job: a script without a `__main__` guard that
    # opens an experiment when imported fails (in its job, which reports it), rather than
    # running an experiment inside the server.
    os.environ[WORKER_ENV] = "1"
    ctrl = socket.socket(fileno=fd)
    import legato._core._serialize  # noqa: F401 - what every job needs, imported once here

    libc_function("prctl")  # what its jobs call, looked up once
    libc_function("fflush")
    gc.freeze()
    profile = profile_start()
    try:
        _Server(ctrl, unsafe).serve()
    finally:
        profile_end(profile, "server")


if __name__ == "__main__":
    main(sys.argv[1:])
