"""What every command shares: the error that ends a command, the workdir, plain tables.

Tables are laid out here rather than with rich: `jobs ls` prints thousands of rows, and
rich measures every cell (seconds for 10,000 rows). Colour goes only to a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .._workdir import experiments_root, jobs_root

__all__ = [
    "EXIT_ERROR",
    "EXIT_USAGE",
    "CliError",
    "format_duration",
    "format_time",
    "open_workdir",
    "table",
]

EXIT_ERROR = 1
"""Bad workdir, unreadable file, a job that would not end."""
EXIT_USAGE = 2
"""Bad arguments: an unknown or ambiguous job ID, an unknown experiment."""


class CliError(Exception):
    """Ends a command with one line on stderr and a non-zero exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def open_workdir(value: str | None) -> Path:
    """The workdir named by `--workdir`, `$LEGATO_WORKDIR` or `.`, checked."""
    raw = value or os.environ.get("LEGATO_WORKDIR") or "."
    path = Path(raw).expanduser().absolute()
    if not path.exists():
        raise CliError(f"workdir {path} does not exist")
    if not path.is_dir():
        raise CliError(f"workdir {path} is not a directory")
    if not (jobs_root(path).is_dir() or experiments_root(path).is_dir()):
        raise CliError(
            f"{path} is not a legato workdir (it has no jobs/ or experiments/ directory); "
            "pass --workdir or set LEGATO_WORKDIR"
        )
    return path


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


_COLOURS = {
    "done": "32",
    "failed": "31",
    "cancelled": "33",
    "running": "36",
    "interrupted": "33",
}


def use_colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], colour_column: int = -1) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    last = len(headers) - 1
    colour = colour_column >= 0 and use_colour()

    def line(cells: Sequence[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            text = cell if i == last else cell.ljust(widths[i])
            if colour and i == colour_column and cell in _COLOURS:
                text = f"\x1b[{_COLOURS[cell]}m{text}\x1b[0m"
            parts.append(text)
        return "  ".join(parts).rstrip()

    out = [line(headers)]
    out.extend(line(row) for row in rows)
    return "\n".join(out)
