"""Running generated source: the per-class check and digest functions and the inline
canonicalisers are Python written at class creation (see docs/architecture.md, "The
identity pipeline"). Each is registered with `linecache` under a name that says what it is
and for which class, so a traceback through it shows its lines like any other code's.
"""

from __future__ import annotations

import itertools
import linecache
from typing import Any

__all__ = ["run_source"]

_serial = itertools.count(1)


def run_source(source: str, kind: str, owner: str | None, namespace: dict[str, Any]) -> None:
    """Execute `source` in `namespace`, under the file name `<legato KIND of OWNER>` (a
    serial number when there is no owner class)."""
    filename = f"<legato {kind} of {owner}>" if owner else f"<legato {kind} #{next(_serial)}>"
    # An entry without a modification time is kept by linecache.checkcache.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - source written by legato
