"""Storage in PostgreSQL: schema, migrations, the history trigger, upserts and crawl runs."""

from christmas_spiders.storage.database import (
    SchemaMismatch,
    check_schema,
    database_url,
    get_engine,
    upgrade,
)

__all__ = ["SchemaMismatch", "check_schema", "database_url", "get_engine", "upgrade"]
