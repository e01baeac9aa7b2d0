"""A process forked from the warm server (`_warm_server.py`), on its way to being a job.

The server forks it for a request, or ahead of one, as a *spare* that waits for the one
job the server will give it (`wait_for_job`). Either way it becomes what
`python -m legato._jobside._worker JOB_DIR`, started afresh in the job directory, would
be (the job's environment, its locks, its channel as stdout) and runs the worker
(`become_job`). Once the worker has written `done`, it says so on its channel (`E`), so
that the experiment need not wait for the kernel to tear the process down.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from typing import Any

import msgspec

from .._jobdir._names import LOCK_FD_ENV, PARENT_PID_ENV, PROGRESS_FD_ENV
from ._warm_profile import profile_end, profile_start

__all__ = ["BUFSIZE", "MAX_FDS", "become_job", "reseed", "wait_for_job"]

MAX_FDS = 3
"""Descriptors a request carries: the job's channel, its lock, its main directory's lock."""
BUFSIZE = 1 << 20
"""Bytes a request may take (its environment, as it differs from the server's)."""


def wait_for_job(sock: socket.socket) -> int:
    """A spare's life: wait for the one job it is given, run it. It ends, having run
    nothing, when the server closes the socket (it took on new modules, or ends) or dies."""
    try:
        data, fds, _, _ = socket.recv_fds(sock, BUFSIZE, MAX_FDS)
    except OSError:
        return 0
    finally:
        sock.close()
    if not data or not fds:
        for fd in fds:
            os.close(fd)
        return 0
    return become_job(msgspec.msgpack.decode(data), socket.socket(fileno=fds[0]), fds[1:])


def become_job(request: dict[str, Any], channel: socket.socket, locks: list[int]) -> int:
    """Become what a fresh job process would be, run the job; its exit code."""
    profile = profile_start()
    _own_exit_work()
    try:
        code = _run(request, channel, locks)
    finally:
        profile_end(profile, "job")
        _shut_down()
    if code == 0:  # the worker wrote `done`: say so before the process is torn down
        _say_done()
    return code


def _own_exit_work() -> None:
    """Leave the server's objects to the server: the finalizers of objects that modules
    made when the server imported them (a temporary directory, say) are the server's, which
    made them once for all its jobs, and run when it ends, not in each job. The exit
    functions that modules registered (`logging`'s, `multiprocessing`'s, torch's) stay:
    they see to the job's own state, as they would in a fresh process."""
    import weakref

    registry: dict[Any, Any] = weakref.finalize._registry  # type: ignore[attr-defined]
    for finalizer in list(registry):
        finalizer.atexit = False


def _shut_down() -> None:
    """What a fresh interpreter does on its way out, which the `os._exit` that ends a forked
    process would skip: wait for the job's non-daemon threads (once `threading`'s exit
    hooks told thread pools to stop), run its `atexit` functions (`weakref.finalize`
    among them), flush Python's and C's buffered output."""
    import atexit
    import threading

    from ._worker import flush_c_stdio

    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter calls
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    flush_c_stdio()


def _run(request: dict[str, Any], channel: socket.socket, locks: list[int]) -> int:
    env = os.environ
    for name in request["unset"]:
        env.pop(name, None)
    env.update(request["env"])
    env[PARENT_PID_ENV] = str(request["server"])
    for fd in locks:  # the job's lock, and its main task directory's if it shares one
        os.set_inheritable(fd, True)
    if locks:
        env[LOCK_FD_ENV] = str(locks[0])
    os.dup2(channel.fileno(), 1)
    channel.close()
    from . import _worker

    # What `python -m legato._jobside._worker JOB_DIR`, run in the job directory, would see.
    sys.argv = [_worker.__file__, request["job_dir"]]
    if sys.path:
        sys.path[0] = request["job_dir"]
    return _worker.main([request["real_dir"]], resolved=True)


def _say_done() -> None:
    """`E` on the job's channel (its progress descriptor now): the job's `done` is written
    and flushed to the disk, the process is about to exit. The experiment can go on with
    its dependents while the kernel tears the process down (2 to 3 ms of a small machine's
    time, and the server's `X` after it); `done` stays the proof of DONE. Its output is
    flushed already (`_shut_down`)."""
    fd = os.environ.get(PROGRESS_FD_ENV, "")
    if fd.isdigit():
        try:
            os.write(int(fd), b"\0E")
        except OSError:
            pass


def reseed() -> None:
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
