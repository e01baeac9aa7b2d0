"""Who may ask the dashboard anything: the holder of its token, from its own pages.

The dashboard can kill jobs and remove their directories, and shows params and logs, so
every request needs the token `legato serve` printed (as Jupyter's servers do): in the URL
once (the answer is a redirect that sets a cookie and drops the token from the address bar),
then the cookie, or in a header for scripts (`Authorization: token <T>` or `X-Legato-Token`).

A POST (an action) also needs the token itself, not only the cookie a browser attaches to
any request, and an `Origin` that is the dashboard's own: another site open in the same
browser can neither read the token nor pass the origin check.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["TOKEN_HEADER", "TokenGuard", "cookie_name"]

TOKEN_HEADER = "x-legato-token"  # noqa: S105 - a header name

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def cookie_name(scope: Scope) -> str:
    """One cookie a port: browsers share cookies between ports of one host, and two
    dashboards (two workdirs) may run side by side."""
    server = scope.get("server") or ("", 0)
    return f"legato-token-{server[1]}"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


class TokenGuard:
    """ASGI middleware: the token check in front of every route, streams and files too."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def _valid(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(
            candidate.encode("utf-8", "replace"), self.token.encode()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        from_query = next((v for k, v in query if k == "token"), None)
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        explicit = headers.get(TOKEN_HEADER) or (
            value.strip() if scheme.lower() in ("token", "bearer") else None
        )
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header: as if there were none
            cookies = SimpleCookie()
        name = cookie_name(scope)
        from_cookie = cookies[name].value if name in cookies else None

        if scope["method"] == "POST":
            if not self._valid(explicit):
                await _deny(send, 403, "an action needs the token in an X-Legato-Token header")
                return
            origin = headers.get("origin")
            host = headers.get("host", "")
            if origin is not None and origin != f"{scope.get('scheme', 'http')}://{host}":
                await _deny(send, 403, f"cross-origin request refused (Origin {origin})")
                return
            await self.app(scope, receive, send)
            return

        if self._valid(from_query) and not scope["path"].startswith("/api/"):
            # Set the cookie and take the token out of the address bar (and of the history).
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            location = scope["path"] + (f"?{rest}" if rest else "")
            cookie = f"{name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (b"location", location.encode("latin-1")),
                        (b"set-cookie", cookie.encode("latin-1")),
                        (b"cache-control", b"no-store"),
                        (b"content-length", b"0"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if not (self._valid(from_query) or self._valid(explicit) or self._valid(from_cookie)):
            given = from_query is not None or explicit is not None or from_cookie is not None
            why = "wrong token" if given else "missing token"
            await _deny(
                send, 403, f"{why}: open the URL that `legato serve` printed (it holds the token)"
            )
            return
        await self.app(scope, receive, send)


async def _deny(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
