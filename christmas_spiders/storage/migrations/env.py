"""Alembic environment: migrations run on the connection handed over by storage.database."""

from alembic import context

from christmas_spiders.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `python -m christmas_spiders.storage`")

context.configure(connection=connection, target_metadata=metadata, compare_server_default=True)
with context.begin_transaction():
    context.run_migrations()
