"""`@cache`: a method of a configuration gets a file path keyed by the configuration's
identity, under a lock shared by coroutines, threads and processes (docs/how-to/cache.md).

Locking, for one path (the key is its lock file, `.<name>.lock` next to it):

1. An in-process slot: a `threading.Lock` per key, in a registry that drops a key when
   nobody holds or waits for it. Threads block on it; a coroutine tries it without
   blocking and, when it is taken, queues a waker and awaits an event. The releaser wakes
   one queued waiter through its own loop (`call_soon_threadsafe` on asyncio,
   `run_sync_soon` on trio), so coroutines of several loops in several threads share it.
   A waiter cancelled after being woken passes the wake on, so no wake is lost.
2. A cross-process file lock: `fcntl.flock` on the lock file (stdlib, no import cost), or
   `filelock` where `fcntl` is missing (Windows), imported only then. Threads take it with
   a blocking call; coroutines poll it without blocking (1 ms, doubling to 100 ms), so the
   event loop never waits and a cancelled waiter holds nothing.

Only the holder of the in-process slot touches the file lock, so one process polls a
busy lock file once, however many coroutines wait. Both are released in `finally`, on an
exception or a cancellation alike. A cache hit costs no thread hop: opening the lock file
and a non-blocking `flock` are metadata calls, and the directory is created only when the
lock file cannot be opened (first use, or the directory was removed).
"""

from __future__ import annotations

import errno
import functools
import inspect
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from ._core._canon import active_workdir
from ._errors import WorkdirError
from ._jobdir._layout import cache_dir
from ._jobdir._names import CACHE_KEY

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from ._core._config import ConfigBase

__all__ = ["cache", "resolve_workdir"]

S = TypeVar("S", bound="ConfigBase")
P = ParamSpec("P")
R = TypeVar("R")

_POLL_MIN, _POLL_MAX = 0.001, 0.1
_REWAIT = 1.0  # a queued coroutine also retries this often, as a safety net


def resolve_workdir() -> str:
    """The current experiment's workdir, else `$LEGATO_WORKDIR`, else the user cache
    directory (`platformdirs.user_cache_dir("legato")`), as an absolute path."""
    workdir = active_workdir()
    value = str(workdir) if workdir is not None else _user_cache_dir()
    return value if os.path.isabs(value) else os.path.abspath(value)


_user_dir: tuple[str | None, str] = ("", "")


def _user_cache_dir() -> str:
    global _user_dir
    xdg = os.environ.get("XDG_CACHE_HOME")  # what platformdirs reads on Linux
    if _user_dir[0] != xdg or not _user_dir[1]:
        import platformdirs

        _user_dir = (xdg, platformdirs.user_cache_dir("legato"))
    return _user_dir[1]


def _target(config: Any, name: str) -> tuple[Path, str]:
    """(path given to the method, lock file), kept on the configuration per workdir."""
    workdir = resolve_workdir()
    try:
        return config.__dict__[CACHE_KEY][workdir, name]  # type: ignore[no-any-return]
    except KeyError:
        pass
    try:
        type_name = type(config).__legato_type_name__
        identifier = config.__identifier__
    except AttributeError:
        raise TypeError(
            f"@cache({name!r}) decorates methods of a legato Config, not of {type(config).__name__}"
        ) from None
    path = cache_dir(Path(workdir), type_name, identifier) / name
    target = (path, os.path.join(path.parent, f".{path.name}.lock"))
    config.__dict__.setdefault(CACHE_KEY, {})[workdir, name] = target
    return target


class _Slot:
    __slots__ = ("lock", "owner", "users", "wakers")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None  # the holder's thread
        self.users = 0  # holders and waiters: the slot leaves the registry at zero
        self.wakers: deque[Callable[[], None]] = deque()


_guard = threading.Lock()
_slots: dict[str, _Slot] = {}


def _reset_after_fork() -> None:
    global _guard
    _guard = threading.Lock()  # a thread of the parent may have held it
    _slots.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _enter(key: str) -> _Slot:
    with _guard:
        slot = _slots.get(key)
        if slot is None:
            slot = _slots[key] = _Slot()
        slot.users += 1
    return slot


def _leave(key: str, slot: _Slot, *, release: bool) -> None:
    wake = None
    with _guard:
        if release:
            slot.owner = None
            slot.lock.release()
            if slot.wakers:
                wake = slot.wakers.popleft()
        slot.users -= 1
        if slot.users == 0:
            del _slots[key]
    if wake is not None:
        wake()


def _waker(event: Any) -> Callable[[], None] | None:
    """A thread-safe callable that sets `event` (an anyio Event) in the current loop."""
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        run = trio.lowlevel.current_trio_token().run_sync_soon
    else:
        asyncio = sys.modules.get("asyncio")
        try:
            run = asyncio.get_running_loop().call_soon_threadsafe  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):
            return None

    def wake() -> None:
        try:
            run(event.set)
        except RuntimeError:  # that loop has ended
            pass

    return wake


async def _take_slot(slot: _Slot) -> None:
    """Acquire `slot.lock` without blocking the event loop."""
    import anyio

    while True:
        event = anyio.Event()
        wake = _waker(event)
        with _guard:
            if slot.lock.acquire(blocking=False):
                return
            if wake is not None:
                slot.wakers.append(wake)
        try:
            with anyio.move_on_after(_REWAIT if wake is not None else _POLL_MAX):
                await event.wait()
        except BaseException:
            _dequeue(slot, wake, leaving=True)
            raise
        _dequeue(slot, wake, leaving=False)


def _dequeue(slot: _Slot, wake: Callable[[], None] | None, *, leaving: bool) -> None:
    """Take our waker off the queue; if it was already used (we were woken) and we are
    leaving without the lock, wake the next waiter in our place."""
    if wake is None:
        return
    following = None
    with _guard:
        try:
            slot.wakers.remove(wake)
        except ValueError:
            if leaving and slot.wakers:
                following = slot.wakers.popleft()
    if following is not None:
        following()


_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _unwritable(path: str, exc: OSError) -> WorkdirError:
    return WorkdirError(
        f"@cache: cannot create {os.path.dirname(path)}: {exc.strerror} (a read-only "
        "workdir serves the values computed there before, and this one never was)"
    )


class _FlockFile:
    """`fcntl.flock` on an open lock file; the directory is created when missing.

    On a read-only workdir the lock file is opened read-only (flock needs no write
    access); where it was never made, nobody can write either, and no lock is needed."""

    __slots__ = ("fd",)

    def __init__(self, path: str) -> None:
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            except OSError as exc:
                if exc.errno not in _READ_ONLY:
                    raise
                raise _unwritable(path, exc) from None
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in _READ_ONLY:
                raise
            try:
                self.fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                self.fd = -1

    def try_acquire(self) -> bool:
        if self.fd < 0:
            return True
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def acquire(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def close(self) -> None:
        """Unlock (explicitly, in case a forked child shares the descriptor) and close."""
        if self.fd < 0:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)


class _PortableFile:
    """The same over `filelock`, for platforms without `fcntl`."""

    __slots__ = ("lock",)

    def __init__(self, path: str) -> None:
        import filelock

        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.lock = filelock.FileLock(path, thread_local=False)

    def try_acquire(self) -> bool:
        import filelock

        try:
            self.lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        return True

    def acquire(self) -> None:
        self.lock.acquire()

    def close(self) -> None:
        if self.lock.is_locked:
            self.lock.release()


_LockFile: type[_FlockFile] | type[_PortableFile] = _FlockFile if fcntl else _PortableFile


def _lock_sync(key: str) -> tuple[_Slot, _FlockFile | _PortableFile]:
    slot, held = _enter(key), False
    try:
        if not slot.lock.acquire(blocking=False):
            if slot.owner == threading.get_ident():
                raise RuntimeError(
                    f"@cache: the lock {key} is held in this thread, by a coroutine of its "
                    "event loop or by this call's caller; waiting would deadlock. Call the "
                    "sync method from a worker thread (anyio.to_thread.run_sync)."
                )
            slot.lock.acquire()
        held = True
        slot.owner = threading.get_ident()
        file = _LockFile(key)
        try:
            file.acquire()
        except BaseException:
            file.close()
            raise
    except BaseException:
        _leave(key, slot, release=held)
        raise
    return slot, file


async def _lock_async(key: str) -> tuple[_Slot, _FlockFile | _PortableFile]:
    slot, held = _enter(key), False
    try:
        if not slot.lock.acquire(blocking=False):
            await _take_slot(slot)
        held = True
        slot.owner = threading.get_ident()
        file = _LockFile(key)
        try:
            delay = _POLL_MIN
            while not file.try_acquire():  # another process holds it
                import anyio

                await anyio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)
        except BaseException:
            file.close()
            raise
    except BaseException:
        _leave(key, slot, release=held)
        raise
    return slot, file


def _unlock(key: str, slot: _Slot, file: _FlockFile | _PortableFile) -> None:
    try:
        file.close()
    finally:
        _leave(key, slot, release=True)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"@cache takes a non-empty file name, got {name!r}")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or os.path.isabs(name):
        raise ValueError(f"@cache({name!r}): the name must be relative, without '..'")
    return name


def cache(
    name: str,
) -> Callable[[Callable[Concatenate[S, Path, P], R]], Callable[Concatenate[S, P], R]]:
    """Give a method of a Config a path keyed by the configuration, under a lock.

    The method (sync or `async def`) receives `path`, that is
    `<workdir>/cache/<type name>/<identifier>/<name>` (its directory created), where the
    workdir is the current experiment's, else `$LEGATO_WORKDIR`, else the per-user cache
    directory. Callers pass the other arguments; `path` is filled in:

        @cache("terms.npy")
        def load(self, path: Path) -> np.ndarray:
            if path.exists():
                return np.load(path)
            terms = compute(self.corpus)
            with open(tmp := path.with_name(path.name + ".tmp"), "wb") as f:
                np.save(f, terms)
            os.replace(tmp, path)  # atomic: `path` exists only once complete
            return terms

    Calls for the same path run one at a time across coroutines, threads and processes;
    different paths never wait on each other. An async method waits for the lock without
    blocking the event loop; call a sync method from a worker thread when inside async
    code. The method decides whether to load or compute: write to a temporary name and
    rename, so a crash or an exception never leaves a partial file that looks complete.
    The lock is released when the method returns, raises or is cancelled. A sync call that
    would wait for a lock held in its own thread (by a coroutine of the thread's event loop,
    or by its caller) raises RuntimeError instead of deadlocking; an async method must not
    await itself for the same configuration.
    """
    name = _check_name(name)

    def decorate(fn: Callable[Concatenate[S, Path, P], R]) -> Callable[Concatenate[S, P], R]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def call_async(self: S, /, *args: P.args, **kwargs: P.kwargs) -> Any:
                path, key = _target(self, name)
                slot, file = await _lock_async(key)
                try:
                    return await fn(self, path, *args, **kwargs)  # type: ignore[misc]
                finally:
                    _unlock(key, slot, file)

            return call_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            path, key = _target(self, name)
            slot, file = _lock_sync(key)
            try:
                return fn(self, path, *args, **kwargs)
            finally:
                _unlock(key, slot, file)

        return call

    return decorate
