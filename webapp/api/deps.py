"""What every route asks first: the app, the session cookie, and (for changes) the CSRF token."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from engine.errors import AuthenticationError, PermissionDeniedError
from webapp.auth import SIGNED_OUT, csrf_matches

SESSION_COOKIE = "dataengine_session"
CSRF_HEADER = "X-CSRF-Token"


def web(request: Request):  # type: ignore[no-untyped-def]
    """The :class:`webapp.app.WebApp` the request is served by."""
    return request.app.state.web


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE)


def changing(request: Request) -> str:
    """The session token of a state-changing request, after its CSRF checks.

    Anonymous: 401. Then the CSRF token (an HMAC of the session token, sent in a header that a
    form or an image of another site cannot set) must match, and a request that names its
    origin must come from this one. Whether the session is still live is checked later,
    inside the transaction that makes the change.
    """
    token = session_token(request)
    if not token:
        raise AuthenticationError(SIGNED_OUT)
    same_origin(request)
    if not csrf_matches(token, request.headers.get(CSRF_HEADER)):
        raise PermissionDeniedError(f"missing or wrong CSRF token: send the page's token in {CSRF_HEADER}")
    return token


def same_origin(request: Request) -> None:
    """Refuse a request whose Origin names another site (browsers send it on every POST)."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser's cross-site request (curl, tests, same-origin GET-like fetches)
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise PermissionDeniedError(f"cross-site request refused (origin {origin!r}, this site {host!r})")


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
