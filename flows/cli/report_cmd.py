"""``dataengine report [--open] [--out DIR] [--artifacts]``: the dashboards from the shell.

Writes ``dashboard.html`` (self-contained: tables and inline SVG plots) and one Parquet file
per table to ``--out``, and prints the headline. Without Prefect by default, so it is quick
and needs no server; ``--artifacts`` runs the ``report`` flow instead, which also publishes
the tables and a summary as artifacts to the Prefect API in use (the scheduled ``report``
deployment does that every 15 minutes).
"""

from __future__ import annotations

import webbrowser
from pathlib import Path

import typer

from flows.cli.context import reports_errors

DEFAULT_OUT = Path(".dataengine/report")


def register(app: typer.Typer) -> None:
    app.command("report")(report)


@reports_errors
def report(
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="folder for dashboard.html and the Parquet tables"),
    open_: bool = typer.Option(False, "--open", help="open the dashboard in a browser"),
    artifacts: bool = typer.Option(False, "--artifacts", help="run the report flow: also publish Prefect artifacts"),
) -> None:
    """Dashboards of annotation time by phase, verification, queues and models: HTML and Parquet."""
    from flows.report import dashboard_for, headline, write_dashboard
    from flows.resources import close_resources, resources

    if artifacts:
        from flows.cli.api_server import terminal_safe_api
        from flows.report import report as report_flow

        try:
            with terminal_safe_api():
                result = report_flow(out_dir=str(out))
        except KeyboardInterrupt:
            typer.echo("interrupted: no dashboard written", err=True)
            raise typer.Exit(130) from None
        html, line, tables = Path(result.html), result.headline, len(result.parquet)
    else:
        try:
            res = resources()
            dashboard = dashboard_for(res)
            written = write_dashboard(res, dashboard, out)
        finally:
            close_resources()
        html, line, tables = written.html, headline(dashboard), len(written.parquet)
    typer.echo(line)
    typer.echo(f"dashboard: {html}")
    typer.echo(f"Parquet: {tables} tables in {html.parent}")
    if open_:
        webbrowser.open(html.resolve().as_uri())
