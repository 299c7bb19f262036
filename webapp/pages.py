"""The HTML pages: login, home (claim work), annotate, verify, dashboard.

Plain server-rendered templates; the work happens in each page's script against the JSON
API. A page without a live session redirects to the login page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.errors import AuthenticationError
from webapp.api.deps import session_token, web
from webapp.auth import User, csrf_token

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return web(request).templates.TemplateResponse(request, "login.html", {"user": None, "csrf": ""})


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return _page(request, "home.html")


@router.get("/annotate/{task_id}", response_class=HTMLResponse)
def annotate_page(task_id: int, request: Request) -> Response:
    return _page(request, "annotate.html", task_id=task_id)


@router.get("/verify/{task_id}", response_class=HTMLResponse)
def verify_page(task_id: int, request: Request) -> Response:
    return _page(request, "verify.html", task_id=task_id)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(request: Request) -> Response:
    return _page(request, "dashboard.html")


def _page(request: Request, template: str, **context: object) -> Response:
    token = session_token(request)
    try:
        user: User = web(request).work.user(token)
    except AuthenticationError:
        return RedirectResponse("/login", status_code=303)
    context = {"user": user, "csrf": csrf_token(token or ""), **context}
    response = web(request).templates.TemplateResponse(request, template, context)
    response.headers["Cache-Control"] = "no-store"
    return response
