"""``dataengine serve``: the web app for annotators, verifiers and the dashboard.

One process: the annotation workspaces (masks, the model's memory of a task) live in its
memory, so run one server per catalog, or route each task's requests to the same one.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from engine.segmenters import DEFAULT_MODEL
from flows.cli.context import open_context, reports_errors

SIMULATED = "simulated"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("enqueue")(enqueue)


@reports_errors
def enqueue(
    video_ids: list[str] = typer.Argument(None, help="videos to annotate (default: every video with ground truth)"),
    phase: int = typer.Option(..., min=1, max=3, help="1: SAM per frame, 2: SAM + SAM 2 Mask, 3: SAM 2"),
    round_: int = typer.Option(1, "--round", min=1, help="annotate the same objects again under a new round"),
) -> None:
    """Queue one annotation task per ground-truth object of the videos, for people to claim in the web app.

    The same tasks `dataengine annotate` queues, without working them with simulated annotators.
    """
    from phases.workers import enqueue_annotation
    from storage.annotation_store import SqlAnnotationStore
    from storage.task_queue import TaskQueue

    with open_context() as ctx, TaskQueue(ctx.catalog) as queue:
        tasks = enqueue_annotation(queue, SqlAnnotationStore(ctx.catalog, ctx.store), phase, video_ids or None, round_=round_)
    typer.echo(f"phase {phase}: {len(tasks)} objects in the queue annotate_phase_{phase}")


@reports_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on (loopback by default)"),
    port: int = typer.Option(8000, min=1, max=65535, help="port to listen on"),
    model: str = typer.Option(DEFAULT_MODEL, help=f"model reference in the registry, or {SIMULATED!r} (degraded ground truth)"),
    lease_seconds: float = typer.Option(300.0, min=30.0, help="lease of a claimed task; the page heartbeats every third of it"),
    secure_cookies: bool = typer.Option(
        None, "--secure-cookies/--no-secure-cookies",
        help="send the session cookie over HTTPS only (default: on unless listening on loopback)",
    ),
) -> None:
    """Serve the web app: log in, annotate and verify in the browser, and watch the dashboard."""
    # Imported here: FastAPI, uvicorn and the model stack are for serving only.
    import uvicorn

    from storage.model_registry import SqlModelRegistry
    from webapp.app import create_app
    from webapp.config import WebConfig

    secure = not _loopback(host) if secure_cookies is None else secure_cookies
    with open_context() as ctx:
        registry = SqlModelRegistry(ctx.catalog, ctx.store, Path(ctx.settings.model_cache_dir))
        models = None
        if model == SIMULATED:
            from engine.simulated_segmenter import SimulatedSegmenterSource

            models = SimulatedSegmenterSource()
        elif model != DEFAULT_MODEL:
            from engine.model_segmenters import RegistrySegmenterSource

            models = RegistrySegmenterSource(registry, model)
        config = WebConfig(lease_s=lease_seconds, secure_cookies=secure)
        app = create_app(ctx.settings, ctx.catalog, ctx.store, registry, models=models, config=config)
        typer.echo(f"dataengine web app on http://{host}:{port}/ (catalog {ctx.catalog.display_url()})")
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
