"""The FastAPI application: ``create_app(settings, catalog, store, registry)``.

Everything a request needs hangs off one :class:`WebApp` (``app.state.web``): the catalog and
its transactions (:class:`webapp.work.Work`), the annotation store, the open workspaces, the
models, the password hasher and the dashboard cache. Errors the engine raises on purpose become
JSON ``{"error": ...}`` answers with a status that says what kind of problem it was; anything
else is a 500 without internals.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from engine.annotation_store import AnnotationStore
from engine.errors import (
    AlreadyVerifiedError,
    AuthenticationError,
    BadUserError,
    CatalogError,
    DataEngineError,
    LeaseLostError,
    LoginThrottledError,
    NotFoundError,
    ObjectStoreError,
    PermissionDeniedError,
    SegmenterFailedError,
    SelfVerificationError,
    WorkInProgressError,
)
from engine.model_registry import ModelRegistry
from engine.ports import ObjectStore
from engine.segmenters import SegmenterSource
from engine.settings import Settings
from engine.time_model import SystemClock
from storage.annotation_store import SqlAnnotationStore
from storage.catalog import Catalog
from storage.schema import utcnow
from webapp.auth import Passwords, hash_token
from webapp.config import WebConfig
from webapp.dashboard import CachedDashboard
from webapp.middleware import BodyLimit, SecurityHeaders
from webapp.work import HeldTask, Work
from webapp.workspace import UntouchedFramesError, Workspace, Workspaces, open_workspace

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


@dataclass
class WebApp:
    """What the routes share."""

    settings: Settings
    catalog: Catalog
    store: ObjectStore
    annotations: AnnotationStore
    models: SegmenterSource
    config: WebConfig
    passwords: Passwords
    work: Work
    workspaces: Workspaces
    dashboard: CachedDashboard
    templates: Jinja2Templates
    clock: Callable[[], datetime]

    def workspace(self, user: str, held: HeldTask) -> Workspace:
        return self.workspaces.get(user, held, hash_token(held.token))


def create_app(
    settings: Settings,
    catalog: Catalog,
    store: ObjectStore,
    registry: ModelRegistry | None = None,
    *,
    models: SegmenterSource | None = None,
    config: WebConfig | None = None,
    passwords: Passwords | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The web app on one catalog and object store; ``models`` default to the registry's champion."""
    config = config or WebConfig()
    if models is None:
        # Imported here: torch loads with it, and only a serving app needs it.
        from engine.model_segmenters import RegistrySegmenterSource

        models = RegistrySegmenterSource(registry)
    annotations = SqlAnnotationStore(catalog, store)

    def opener(user: str, held: HeldTask) -> Workspace:
        return open_workspace(user, held, store=annotations, models=models, clock=SystemClock(), idle_cap_s=config.idle_cap_s)

    web = WebApp(
        settings=settings,
        catalog=catalog,
        store=store,
        annotations=annotations,
        models=models,
        config=config,
        passwords=passwords or Passwords(),
        work=Work(catalog, clock),
        workspaces=Workspaces(opener, config.max_workspaces),
        dashboard=CachedDashboard(catalog, clock, config.dashboard_ttl_s),
        templates=Jinja2Templates(directory=str(HERE / "templates")),
        clock=clock,
    )
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        web.work.close()  # the queue's own connections (PostgreSQL)

    # No public schema or docs pages: the API is described in docs/web.md.
    app = FastAPI(title="dataengine", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.web = web
    from webapp import pages
    from webapp.api import dashboard, frames, session, tasks, verify

    for module in (session, tasks, verify, frames, dashboard, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.add_exception_handler(DataEngineError, _engine_error)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app


# Most specific first: the first class an error is an instance of decides its status.
STATUS: tuple[tuple[type[DataEngineError], int], ...] = (
    (LoginThrottledError, 429),
    (AuthenticationError, 401),
    (PermissionDeniedError, 403),
    (SelfVerificationError, 403),
    (LeaseLostError, 409),
    (AlreadyVerifiedError, 409),
    (WorkInProgressError, 409),
    (UntouchedFramesError, 409),
    (NotFoundError, 404),
    (SegmenterFailedError, 500),
    (CatalogError, 503),
    (ObjectStoreError, 503),
    (BadUserError, 400),
    (DataEngineError, 400),
)


def status_of(exc: DataEngineError) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


async def _engine_error(request: Request, exc: DataEngineError) -> JSONResponse:
    status = status_of(exc)
    body: dict[str, object] = {"error": str(exc), "kind": type(exc).__name__}
    headers = {}
    if isinstance(exc, LoginThrottledError):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, UntouchedFramesError):
        body["untouched"] = list(exc.frames)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(body, status_code=status, headers=headers)
