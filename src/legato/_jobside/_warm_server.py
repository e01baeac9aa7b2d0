"""The warm server: `python -m legato._jobside._warm_server FD PARENT_PID UNSAFE_JSON`.

One per experiment (`_warm.py` starts it). It imports legato and, job by job, the modules
of the classes a job's params file names, then forks the job from that state, so a job
starts at the cost of a fork rather than of an interpreter and its imports. It never runs
a job itself: each job is a fresh fork of a process that ran none, so no job sees what
another did.

Requests arrive on a `SOCK_SEQPACKET` socket, one packet each: a msgpack map
`{"job_dir", "env", "unset"}` (the job's environment, as it differs from the server's),
with the job's descriptors attached (`socket.send_fds`): its status socket, its progress
channel (the job's stdout, as a fresh process has), and the job's lock. Replies go on
the job's status socket, one packet each: `P<pid>` once forked,
`X<exit code>` (negative: the signal) once reaped, `C<json>` when the job's modules are
not safe to fork (it must run as a fresh process), `R` when this server took on such a
module and no longer forks (ask a new one). The server ends when the experiment closes
its end of the socket and the last of its jobs has ended, and at once if the experiment
dies (its parent-death signal).
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
from pathlib import Path
from typing import Any

import msgspec

from .._jobdir._names import LOCK_FD_ENV, PARENT_PID_ENV, WORKER_ENV
from .._jobdir._workdir import PARAMS

_MAX_FDS = 4
_BUFSIZE = 1 << 20


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
        self.children: dict[int, socket.socket] = {}
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.selector.register(self.ctrl, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        open_ = True
        while open_ or self.children:
            for key, _ in self.selector.select():
                if key.fileobj is self.ctrl:
                    open_ = self._receive()
                    if not open_:
                        self.selector.unregister(self.ctrl)
                else:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
            self._reap()

    def _receive(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.ctrl, _BUFSIZE, _MAX_FDS)
        except InterruptedError:
            return True
        except OSError:
            return False
        if not data:
            return False
        status = socket.socket(fileno=fds[0])
        try:
            self._start(
                msgspec.msgpack.decode(data), status, fds[1], fds[2] if len(fds) > 2 else None
            )
        except Exception:
            traceback.print_exc()
            _send(status, b"R")
            status.close()
        finally:
            for fd in fds[1:]:
                os.close(fd)
        return True

    def _start(
        self, request: dict[str, Any], status: socket.socket, progress: int, lock: int | None
    ) -> None:
        if self.tainted:
            _send(status, b"R")
            status.close()
            return
        job_dir = Path(request["job_dir"])
        modules = _modules(job_dir)
        refused = [[m, f, self.unsafe[m]] for m, f in modules if m in self.unsafe]
        if refused:
            _send(status, b"C" + json.dumps(refused).encode())
            status.close()
            return
        new = [m for m in modules if m[0] not in self.imported]
        if new:
            self._import(new)
            why = unsafe_state()
            if why is not None:
                self.tainted = True
                _send(status, b"C" + json.dumps([[m, f, why] for m, f in new]).encode())
                status.close()
                return
            gc.freeze()  # what the jobs inherit: the collector need not go through it again
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = self._child(request, progress, lock)
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
        self.children[pid] = status
        _send(status, b"P%d" % pid)

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

    def _child(self, request: dict[str, Any], progress: int, lock: int | None) -> int:
        """In the forked job: become what a fresh job process would be, then run the job."""
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
        env = os.environ
        for name in request["unset"]:
            env.pop(name, None)
        env.update(request["env"])
        env[PARENT_PID_ENV] = str(os.getppid())
        if lock is not None:
            os.set_inheritable(lock, True)
            env[LOCK_FD_ENV] = str(lock)
        os.dup2(progress, 1)
        os.close(progress)
        _reseed()
        from . import _worker

        # What `python -m legato._jobside._worker JOB_DIR`, run in the job directory, would see.
        sys.argv = [_worker.__file__, request["job_dir"]]
        if sys.path:
            sys.path[0] = request["job_dir"]
        return _worker.main([request["job_dir"]])

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            sock = self.children.pop(pid, None)
            if sock is not None:
                _send(sock, b"X%d" % os.waitstatus_to_exitcode(status))
                sock.close()


def _reseed() -> None:
    """A fresh process seeds the global random generators from the system's entropy;
    forked ones would share the server's state (Python's `random` reseeds itself at fork).
    """
    numpy = sys.modules.get("numpy")
    if numpy is not None and "numpy.random" in sys.modules:
        with contextlib.suppress(Exception):
            numpy.random.seed()
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.seed()


def _send(sock: socket.socket, message: bytes) -> None:
    try:
        sock.send(message)
    except OSError:
        pass  # the experiment stopped waiting for this job


def _modules(job_dir: Path) -> list[tuple[str, str | None]]:
    """(module, script file) of every class the job's params name, in order, once each."""
    try:
        doc = msgspec.msgpack.decode((job_dir / PARAMS).read_bytes())
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
    import legato._core._serialize
    import legato._jobside._worker  # noqa: F401 - what every job needs, imported once here

    gc.freeze()
    _Server(ctrl, unsafe).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
