"""``dataengine users add|disable|enable|list``: the people who log in to the web app."""

from __future__ import annotations

import typer

from flows.cli.context import open_context, reports_errors

users_app = typer.Typer(help="People of the web app: annotators, verifiers, admins.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


@users_app.command("add")
@reports_errors
def add(
    name: str = typer.Argument(..., help="login name (also the worker name in queues and masklets)"),
    role: str = typer.Option(..., "--role", help="annotator, verifier or admin"),
    password: str = typer.Option(None, "--password", help="the password (asked for, hidden, when not given)"),
) -> None:
    """Create a user; their password is stored as an argon2id hash."""
    from webapp.auth import Passwords, add_user, check_name, parse_role

    check_name(name)
    parse_role(role)
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with open_context() as ctx:
        user = add_user(ctx.catalog, Passwords(), name, role, password)
    typer.echo(f"added {user.name} ({user.role.value})")


@users_app.command("disable")
@reports_errors
def disable(name: str = typer.Argument(..., help="the user")) -> None:
    """Disable a user: their sessions end now and they can no longer log in."""
    from webapp.auth import disable_user

    with open_context() as ctx:
        user = disable_user(ctx.catalog, name)
    typer.echo(f"disabled {user.name}; their sessions are revoked")


@users_app.command("enable")
@reports_errors
def enable(name: str = typer.Argument(..., help="the user")) -> None:
    """Let a disabled user log in again."""
    from webapp.auth import enable_user

    with open_context() as ctx:
        user = enable_user(ctx.catalog, name)
    typer.echo(f"enabled {user.name}")


@users_app.command("list")
@reports_errors
def list_users() -> None:
    """Every user: name, role, whether disabled, since when."""
    from webapp.auth import list_users as users

    with open_context() as ctx:
        rows = users(ctx.catalog)
    if not rows:
        typer.echo("no users yet: add one with `dataengine users add NAME --role admin`")
    for user in rows:
        state = "disabled" if user.disabled else "active"
        typer.echo(f"{user.name:<24}{user.role.value:<11}{state:<10}{user.created_at:%Y-%m-%d %H:%M}")
