"""``/api/dashboard``: the dashboard page's data (any logged-in user)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request

from webapp.api.deps import session_token, web

router = APIRouter(prefix="/api", tags=["dashboard"])


@router.get("/dashboard")
def dashboard(request: Request) -> dict:
    app = web(request)
    app.work.user(session_token(request))
    return asdict(app.dashboard.get())
