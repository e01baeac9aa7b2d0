"""What every command shares: the error that ends a command, the workdir, plain tables.

Tables are laid out here rather than with rich: `jobs ls` prints thousands of rows, and
rich measures every cell (seconds for 10,000 rows). Colour goes only to a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from .._inspect._errors import EXIT_ERROR, EXIT_USAGE, InspectError
from .._inspect._scan import open_workdir

__all__ = [
    "EXIT_ERROR",
    "EXIT_USAGE",
    "InspectError",
    "format_duration",
    "format_time",
    "json_text",
    "open_workdir",
    "table",
]

_times: dict[int, str] = {}


def format_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    second = int(timestamp)
    text = _times.get(second)
    if text is None:
        text = _times[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
    return text


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
    """Left-aligned columns two spaces apart; the last column is not padded.

    One format string for every row: `jobs ls` prints thousands of them."""
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=True)]
    header_fmt = "  ".join([*(f"{{:<{w}}}" for w in widths[:-1]), "{}"])
    fmt = header_fmt
    if 0 <= colour_column < len(widths) - 1 and use_colour():
        # An escape sequence takes no room on screen: pad for it.
        pad = len("\x1b[00m\x1b[0m")
        fmt = "  ".join(
            [
                *(
                    f"{{:<{w + (pad if i == colour_column else 0)}}}"
                    for i, w in enumerate(widths[:-1])
                ),
                "{}",
            ]
        )
        rows = [
            [
                f"\x1b[{_COLOURS[cell]}m{cell}\x1b[0m"
                if i == colour_column and cell in _COLOURS
                else cell + " " * pad
                if i == colour_column
                else cell
                for i, cell in enumerate(row)
            ]
            for row in rows
        ]
    out = [header_fmt.format(*headers).rstrip()]
    out.extend(fmt.format(*row).rstrip() for row in rows)
    return "\n".join(out)


def json_text(value: Any, enc_hook: Callable[[Any], Any] = str) -> str:
    """`value` (builtins) as JSON, however deeply nested: the params of the last job of a
    long chain of tasks hold every task before it, deeper than msgspec's encoder (which
    recurses) can go. Those are written from an explicit stack."""
    try:
        return msgspec.json.encode(value, enc_hook=enc_hook).decode()
    except RecursionError:
        pass
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        t = type(item)
        if t is _Raw:
            out.append(item.text)
        elif t is dict and item:
            stack.append(_Raw("}"))
            entries = list(item.items())
            for i in range(len(entries) - 1, -1, -1):
                key, child = entries[i]
                stack.append(child)
                key_text = msgspec.json.encode(str(key)).decode()
                stack.append(_Raw(("{" if i == 0 else ",") + key_text + ":"))
        elif (t is list or t is tuple) and item:
            stack.append(_Raw("]"))
            for i in range(len(item) - 1, -1, -1):
                stack.append(item[i])
                stack.append(_Raw("[" if i == 0 else ","))
        else:
            out.append(msgspec.json.encode(item, enc_hook=enc_hook).decode())
    return "".join(out)


class _Raw:
    """Text `json_text` writes as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
