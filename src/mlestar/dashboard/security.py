"""Who may talk to the dashboard, and what its responses may do in a browser.

The dashboard is read-only and local by default. Serving on any address other
than loopback needs a token; once a token is set, every request must carry it
as ``Authorization: Bearer T``, as ``?token=T`` (which also sets a cookie so
links keep working), or as that cookie. Requests other than GET and HEAD are
refused, whatever the route. Every response carries a Content-Security-Policy
that allows only the dashboard's own scripts and styles; artifact downloads get
a sandboxing policy, so an HTML report inside a run cannot run script in the
dashboard's origin.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from http.cookies import SimpleCookie

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlestar.errors import MlestarError

LOOPBACK_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
COOKIE = "mlestar_dashboard_token"
READ_METHODS = frozenset({"GET", "HEAD"})

PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
               "form-action 'self'")
ARTIFACT_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
_COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback IP literal (``127.0.0.1``, ``::1``, ``[::1]``)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse settings that would expose runs: a non-loopback host without a token, an empty token.

    Raises:
        MlestarError: naming the host and how to fix the command (exit code 2 in the CLI).
    """
    if token is not None and not token.strip():
        raise MlestarError("--token is empty", hint="pass a long random string, e.g. from `openssl rand -hex 16`")
    if not is_loopback(host) and not token:
        raise MlestarError(f"refusing to serve the dashboard on {host} without a token: "
                           "anyone who can reach that address could read every run",
                           hint="add --token SECRET and open http://HOST:PORT/?token=SECRET, "
                                "or keep the default --host 127.0.0.1")


def presented_token(request: Request) -> tuple[str | None, bool]:
    """The token a request carries and whether it came in the query string.

    The header wins over the query, the query over the cookie; only the first one
    present is considered.
    """
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    if "token" in request.query_params:
        return request.query_params["token"], True
    return request.cookies.get(COOKIE), False


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; ``None`` never matches."""
    return given is not None and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def cookie_header(token: str) -> tuple[bytes, bytes]:
    """``Set-Cookie`` for the token: HttpOnly, SameSite=Strict, whole site."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[COOKIE] = token
    cookie[COOKIE]["httponly"] = True
    cookie[COOKIE]["samesite"] = "Strict"
    cookie[COOKIE]["path"] = "/"
    return b"set-cookie", cookie.output(header="").strip().encode("latin-1")


class Guard:
    """ASGI middleware: host check, token check, read-only methods, security headers.

    Args:
        app: the application to protect.
        token: required on every request when set.
        allowed_hosts: ``Host`` header names accepted (against DNS rebinding when
            bound to loopback); ``None`` accepts any.
    """

    def __init__(self, app: ASGIApp, *, token: str | None = None,
                 allowed_hosts: Iterable[str] | None = None) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = None if allowed_hosts is None else {h.strip("[]").lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await _with_headers(refusal, [])(scope, receive, send)
            return
        extra = []
        given, from_query = presented_token(request)
        if self.token is not None and from_query:
            extra.append(cookie_header(given or ""))
        await self.app(scope, receive, _adding_headers(send, extra))

    def _refusal(self, request: Request) -> JSONResponse | None:
        """The error response for a request that may not proceed, or ``None``."""
        host = (request.url.hostname or "").lower()
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return JSONResponse({"error": f"host {host!r} is not served here"}, status_code=400)
        if self.token is not None and not token_matches(presented_token(request)[0], self.token):
            return JSONResponse({"error": "missing or wrong token: send 'Authorization: Bearer TOKEN' "
                                          "or open the page with ?token=TOKEN"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if request.method not in READ_METHODS:
            return JSONResponse({"error": "the dashboard is read-only"}, status_code=405,
                                headers={"Allow": "GET, HEAD"})
        return None


def _with_headers(response: JSONResponse, extra: list[tuple[bytes, bytes]]) -> ASGIApp:
    """Wrap a response so it is sent with the security headers."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await response(scope, receive, _adding_headers(send, extra))

    return app


def _adding_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    """A ``send`` that adds the common headers, a page CSP unless one is set, and ``extra``."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {name.lower() for name, _ in headers}
            headers += [h for h in _COMMON_HEADERS if h[0] not in names]
            if b"content-security-policy" not in names:
                headers.append((b"content-security-policy", PAGE_POLICY.encode("ascii")))
            message = {**message, "headers": headers + extra}
        await send(message)

    return wrapped
