"""`flask --app webapi keys …`: create, list and revoke API keys.

The commands write with the project's own database login (DATABASE_URL), never the API's
read-only role. A new key is printed once and stored only as its hash.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from christmas_spiders.storage import get_engine
from webapi import auth

keys = AppGroup("keys", help="Create, list and revoke API keys.")


def _engine():
    return get_engine(current_app.config["CHRISTMAS_CONFIG"])


@keys.command("create")
@click.argument("name")
@click.option(
    "--rate-limit",
    type=click.IntRange(1, 10_000_000),
    default=None,
    help="Requests per rate window for this key (default: api_rate_limit).",
)
def create(name: str, rate_limit: int | None) -> None:
    """Create a key named NAME and print it (once: only its hash is stored)."""
    try:
        with _engine().begin() as connection:
            key_id, key = auth.create_key(connection, name, rate_limit)
    except auth.KeyCommandError as error:
        raise click.ClickException(str(error)) from None
    click.echo(key)
    click.echo(
        f"created API key {key_id} ({name}); it is shown only this once: store it now.",
        err=True,
    )


@keys.command("list")
@click.option("--active", is_flag=True, help="Leave out revoked keys.")
def list_(active: bool) -> None:
    """List keys (never the keys themselves: their ids, names and prefixes)."""
    with _engine().connect() as connection:
        rows = auth.list_keys(connection, include_revoked=not active)
    click.echo("| id | name | prefix | rate limit | created | last used | revoked |")
    click.echo("| --- | --- | --- | --- | --- | --- | --- |")
    for key in rows:
        cells = (
            key.id,
            key.name,
            f"xmas_{key.prefix}_…",
            key.rate_limit or "default",
            f"{key.created_at:%Y-%m-%d %H:%M:%S}",
            f"{key.last_used_at:%Y-%m-%d %H:%M:%S}" if key.last_used_at else "never",
            f"{key.revoked_at:%Y-%m-%d %H:%M:%S}" if key.revoked_at else "",
        )
        click.echo("| " + " | ".join(str(cell) for cell in cells) + " |")


@keys.command("revoke")
@click.argument("name_or_id")
def revoke(name_or_id: str) -> None:
    """Revoke the active key named NAME_OR_ID, or the key with that id. At once: its next
    request gets 401."""
    try:
        with _engine().begin() as connection:
            ids = auth.revoke_key(connection, name_or_id)
    except auth.KeyCommandError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"revoked API key {', '.join(map(str, ids))}")


def init_app(app) -> None:
    app.cli.add_command(keys)
