"""Keeping the index fresh while someone watches, and telling the watchers what changed.

Nobody watching, nothing is read: pages and API calls refresh the index on demand. While
a page holds an event stream open, one task re-reads the workdir every second, backing off
to every few seconds once nothing has changed for a while, so a finished sweep left open in
a browser tab costs next to nothing. No inotify: it does not see changes made on other
machines of a cluster's shared file system, which is where SLURM jobs write.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Iterator

import anyio

from ._index import Index

__all__ = ["Watcher"]

_HISTORY = 64
_MAX_NAMES = 500


class Watcher:
    def __init__(
        self, index: Index, interval: float = 1.0, idle_interval: float = 5.0, calm: float = 30.0
    ) -> None:
        self.index = index
        self.interval = interval
        self.idle_interval = idle_interval
        self.calm = calm
        """Seconds without a change after which polls slow down."""
        self.watchers = 0
        self._wanted = anyio.Event()
        self._changed = anyio.Event()
        self._history: deque[tuple[int, set[str]]] = deque(maxlen=_HISTORY)
        self._lock = anyio.Lock()
        self._last_change = time.monotonic()
        self.closed = False
        """Set when the server shuts down: event streams end rather than hold it up."""

    def close(self) -> None:
        """End the event streams (they return from `next_change` with None)."""
        self.closed = True
        self._changed.set()

    async def refresh(self, max_age: float = 0.0) -> None:
        """Re-read the workdir unless it was read less than `max_age` seconds ago."""
        async with self._lock:
            if self.index.refreshed and time.monotonic() - self.index.refreshed < max_age:
                return
            changed = await anyio.to_thread.run_sync(self.index.refresh)
        self.publish(changed)

    def publish(self, changed: set[str]) -> None:
        if not changed:
            return
        self._last_change = time.monotonic()
        self._history.append((self.index.version, changed))
        event, self._changed = self._changed, anyio.Event()
        event.set()

    async def run(self) -> None:
        """Poll while somebody watches; forever (cancel it to stop)."""
        while True:
            if not self.watchers:
                await self._wanted.wait()
                self._wanted = anyio.Event()
                continue
            await self.refresh()
            quiet = time.monotonic() - self._last_change > self.calm
            await anyio.sleep(self.idle_interval if quiet else self.interval)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Count the caller as a watcher (the workdir is polled while there is one)."""
        self.watchers += 1
        self._wanted.set()
        try:
            yield
        finally:
            self.watchers -= 1

    async def next_change(self, seen: int) -> tuple[int, list[str] | None] | None:
        """Wait for a change after version `seen`: (the version now, the names of the jobs
        that changed since `seen`, or None for "too many to say", reload everything); None
        once the server closes."""
        while not any(v > seen for v, _ in self._history):
            if self.closed:
                return None
            await self._changed.wait()
        version = self.index.version
        batches = [names for v, names in self._history if v > seen]
        names: set[str] = set().union(*batches)
        many = self._history[0][0] > seen + 1 or len(names) > _MAX_NAMES
        return version, None if many else sorted(names)
