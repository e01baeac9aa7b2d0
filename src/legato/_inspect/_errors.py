"""The error that ends a query about a workdir (the command line prints it and exits with its
code; the web dashboard answers with it)."""

from __future__ import annotations

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "InspectError"]

EXIT_ERROR = 1
"""Bad workdir, unreadable file, a job that would not end."""
EXIT_USAGE = 2
"""Bad arguments: an unknown or ambiguous job ID, an unknown experiment."""


class InspectError(Exception):
    """Ends a command with one line on stderr and a non-zero exit status."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code
