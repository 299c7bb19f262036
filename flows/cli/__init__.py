"""The ``dataengine`` command.

Each command group lives in its own module with a ``register(app)`` function; this module only
assembles them. Errors the engine raises on purpose (:class:`engine.errors.DataEngineError`)
are printed as one ``error:`` line with exit status 2, never as a traceback.
"""

from __future__ import annotations

import os
import sys

import typer

# The temporary Prefect API that a command starts for itself (no PREFECT_API_URL) would try to
# send usage analytics at start-up and log an error on a machine without internet access.
# A user's own setting wins.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from engine.errors import DataEngineError
from flows.cli import (
    annotate_cmd,
    catalog_cmd,
    demo_cmd,
    evaluate_cmd,
    ingest_cmd,
    models_cmd,
    queue_cmd,
    report_cmd,
    sav_cmd,
    segment_cmd,
    serve_cmd,
    synthesize_cmd,
    train_cmd,
    users_cmd,
)

app = typer.Typer(
    name="dataengine",
    help="An open data engine for video segmentation datasets (SAM 2 / SA-V style).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    catalog_cmd, ingest_cmd, sav_cmd, evaluate_cmd, synthesize_cmd, models_cmd, queue_cmd, annotate_cmd,
    segment_cmd, demo_cmd, users_cmd, serve_cmd, report_cmd, train_cmd,
):
    module.register(app)


def main() -> None:
    try:
        app()
    except DataEngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
