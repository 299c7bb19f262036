"""``/api/session``: log in, log out, who am I."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from webapp.api.deps import SESSION_COOKIE, changing, client_address, same_origin, session_token, web
from webapp.auth import csrf_token, login, logout

router = APIRouter(prefix="/api/session", tags=["session"])


class LoginBody(BaseModel):
    name: str = Field(max_length=128)
    password: str = Field(max_length=1024)


@router.post("/login")
def log_in(body: LoginBody, request: Request, response: Response) -> dict:
    """A new session (a new token, whatever the browser held before), in an HttpOnly SameSite=Strict cookie."""
    app = web(request)
    same_origin(request)
    result = login(
        app.catalog,
        app.passwords,
        body.name,
        body.password,
        client_address(request),
        lifetime_s=app.config.session_s,
        limits=app.config.login_limits,
        previous_token=session_token(request),
        now=app.clock(),
    )
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        max_age=int(app.config.session_s),
        httponly=True,
        samesite="strict",
        secure=app.config.secure_cookies,
        path="/",
    )
    return {"name": result.user.name, "role": result.user.role.value, "csrf": csrf_token(result.token)}


@router.post("/logout")
def log_out(request: Request, response: Response, token: str = Depends(changing)) -> dict:
    logout(web(request).catalog, token, now=web(request).clock())
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=web(request).config.secure_cookies)
    return {"logged_out": True}


@router.get("/me")
def me(request: Request) -> dict:
    """The logged-in user, their queues and the CSRF token their page sends with every change."""
    token = session_token(request)
    user = web(request).work.user(token)
    return {
        "name": user.name,
        "role": user.role.value,
        "queues": [q.value for q in user.queues],
        "csrf": csrf_token(token or ""),
    }
