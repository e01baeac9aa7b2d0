"""How the workdir's files are written and read: whole, by an atomic rename, and locked with
one kind of lock. The primitives under `JobDir` (`_job.py`), the experiment directory
(`_experimentdir.py`) and main task directories (`_maindir.py`); no module outside this
package calls them to write (tests/test_layers.py checks it)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

__all__ = [
    "append_lines",
    "atomic_write",
    "bound_text",
    "decode_json",
    "host_name",
    "read_bytes",
    "read_json",
    "remove_tree",
    "try_lock",
    "write_json",
]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Write to a temporary sibling, rename: readers never see a partial file.

    `durable` fsyncs first, for verdicts that must survive a machine crash. The file is
    created by hand rather than by `tempfile.mkstemp`, whose 0600 mode would hide job
    files from the other users of a shared workdir: this way the umask decides. Raw
    descriptors, not a file object: a job's process writes two of these records, and
    would pay more for `io`'s buffered file than for the writes."""
    head, name = os.path.split(os.fspath(path))
    tmp = os.path.join(head, f".{name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o666)
    try:
        try:
            written = os.write(fd, data)
            while written < len(data):  # a regular file takes it whole, but may not
                written += os.write(fd, data[written:])
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: str | os.PathLike[str], value: Any, *, durable: bool = True) -> None:
    """Write `value` as JSON, atomically; values JSON has no form for are written as str.

    msgspec's JSON rather than the json module: every legato process has msgspec loaded
    already, and a job's process would pay for importing json."""
    atomic_write(path, msgspec.json.encode(value, enc_hook=str), durable=durable)


def host_name() -> str:
    """This machine's name, as every record of the workdir gives it (`state.json`, a
    cancel request, an experiment's record): the kernel's node name, which is what
    `socket.gethostname()` returns on POSIX, without importing socket in a job's process."""
    return os.uname().nodename


decode_json = msgspec.json.Decoder().decode
"""msgspec's JSON decoder, shared by every reader of a JSON record."""


def read_bytes(path: str | os.PathLike[str]) -> bytes | OSError:
    """A small file's content, or the error: raw descriptors, cheaper than `open()` when
    `legato jobs ls` reads thousands of records."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_CLOEXEC)
    except OSError as exc:
        return exc
    try:
        data = os.read(fd, 65536)
        if len(data) == 65536:
            chunks = [data]
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            data = b"".join(chunks)
        return data
    except OSError as exc:
        return exc
    finally:
        os.close(fd)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The object of a JSON record, or None when missing, partial or corrupt: a record
    being replaced reads as its old content or its new, and one not written yet as None."""
    data = read_bytes(path)
    if isinstance(data, OSError):
        return None
    try:
        value = decode_json(data)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def bound_text(text: str, limit: int, where: str = "stderr.log") -> str:
    """`text` cut to about `limit` characters, head and tail kept, saying where the whole is.

    A 10 MB exception message must not be stored twice over in `failed.json`, nor printed
    whole by the CLI: the job's own stderr has it all."""
    if len(text) <= limit:
        return text
    keep = max(limit - 100, 20)
    head, tail = text[: keep * 3 // 4], text[len(text) - keep // 4 :]
    return f"{head} [... {len(text) - len(head) - len(tail)} characters cut: see {where}] {tail}"


def try_lock(path: str | os.PathLike[str]) -> int | None:
    """An fd holding the exclusive `flock` of the lock file at `path` (created if missing),
    or None when another process holds it.

    The one lock of the workdir: a job's `lock` (`JobDir.try_lock`) and a main task
    directory's `.legato-lock` (`_maindir.py`). A non-blocking `flock` on an open file: it
    goes with the open file, so a child that inherits the fd keeps the lock after its
    parent dies, and the kernel drops it when the last holder of the fd exits, however it
    exits. Raises OSError when the file cannot be opened (no directory, a read-only
    workdir)."""
    import fcntl  # not every job's process takes a lock

    fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append `lines` (each ending in a newline) to a list file: `jobs.txt`, a main
    directory's `.legato-jobs.txt`. Appends are not atomic: a reader ignores a last line
    without its newline, and `start_run_record` puts the next one on its own."""
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(lines)


def remove_tree(path: str | os.PathLike[str]) -> OSError | None:
    """Remove a whole directory (a job's, an experiment's record, a main task directory):
    renamed to a hidden sibling first, so that readers and experiments see it whole or not
    at all, then deleted. None once it is gone (or was already), else why the rename failed."""
    parent, name = os.path.split(os.fspath(path).rstrip(os.sep))
    trash = os.path.join(parent, f".{name}.removed-{os.getpid()}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc
    shutil.rmtree(trash, ignore_errors=True)
    return None
