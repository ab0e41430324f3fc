"""The database schema, defined once as SQLAlchemy Core tables.

Alembic migrations (``storage/migrations``) create and evolve it; a test checks that the
migrations and these tables agree. The history trigger lives in ``storage/sql``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from christmas_spiders.catalog.rules import CONDITIONS, FLAGS, LINK_METHODS
from christmas_spiders.domain import AVAILABILITY, EVENT_KINDS, HEALTH_KIND
from christmas_spiders.domain import CHANGE_KINDS as CHANGE_KINDS  # re-exported for webapi

RUN_STATUSES = ("running", "finished", "failed")
RUN_HEALTH = ("ok", "suspect")  # christmas_spiders.health; NULL: not judged

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _timestamp(name: str, nullable: bool = True, default_now: bool = False) -> Column:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if default_now else None,
    )


vendors = Table(
    "vendors",
    metadata,
    Column("id", String(64), primary_key=True),  # the spider name
    Column("display_name", Text, nullable=False),
    Column("base_url", Text, nullable=False),
    _timestamp("last_synced_at"),
)

crawl_runs = Table(
    "crawl_runs",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("spider", String(64), ForeignKey("vendors.id"), nullable=False),
    Column("arguments", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _timestamp("started_at", nullable=False, default_now=True),
    _timestamp("finished_at"),
    Column("status", String(16), nullable=False, server_default="running"),
    Column("close_reason", Text),
    Column("requests", Integer, nullable=False, server_default="0"),
    Column("items_created", Integer, nullable=False, server_default="0"),
    Column("items_updated", Integer, nullable=False, server_default="0"),
    Column("items_unchanged", Integer, nullable=False, server_default="0"),
    Column("items_dropped", Integer, nullable=False, server_default="0"),
    Column("items_dead_lettered", Integer, nullable=False, server_default="0"),
    Column("errors", Integer, nullable=False, server_default="0"),
    Column("browser_renders", Integer, nullable=False, server_default="0"),
    Column("stats", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # The run's health (christmas_spiders.health), judged as the run ends: one sentence per
    # reason (also notes of an `ok` run, such as a year that looks emptied).
    Column("health", String(16)),
    Column("health_reasons", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    CheckConstraint(f"health IS NULL OR {_in('health', RUN_HEALTH)}", name="health"),
    Index(None, "spider", "started_at"),
)

products = Table(
    "products",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("vendor", String(64), ForeignKey("vendors.id"), nullable=False),
    Column("vendor_product_id", Text),
    # Identity within the vendor: the shop's own product id, else the canonical link.
    Column("vendor_key", Text, nullable=False),
    Column("sku", Text),
    Column("name", Text, nullable=False),
    Column("price", Numeric(12, 2)),
    Column("regular_price", Numeric(12, 2)),
    Column("currency", String(3), nullable=False, server_default="USD"),
    Column("availability", String(16), nullable=False),
    Column("availability_text", Text),
    Column("release_year", Integer, nullable=False),
    Column("brand", Text, nullable=False, server_default="Hallmark"),
    Column("link", Text, nullable=False),
    Column("image_url", Text),
    Column("series", Text),
    Column("series_number", Integer),
    Column("artist", Text),
    _timestamp("first_seen_at", nullable=False, default_now=True),
    _timestamp("last_synced_at", nullable=False, default_now=True),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
    _timestamp("delisted_at"),
    # When its own page was last read (migration 0008): a quick sync marks a product it found
    # unchanged on a listing synced without reading the page (christmas_spiders.quick).
    _timestamp("page_read_at", nullable=False, default_now=True),
    # Its ornament (christmas_spiders.catalog, migrations 0007 and 0010), linked when the
    # product is stored: the offer's condition, how it was linked (`item_number` or `name`) and
    # the score (0-100). `link_pending`: new, or its name, SKU, year or series changed since it
    # was last linked (the upsert sets it, the linking clears it).
    Column("ornament_id", BigInteger, ForeignKey("ornaments.id", ondelete="SET NULL")),
    Column("condition", String(16)),
    Column("link_method", String(16)),
    Column("link_score", Float),
    Column("link_pending", Boolean, nullable=False, server_default=text("true")),
    UniqueConstraint("vendor", "vendor_key"),
    CheckConstraint(_in("availability", AVAILABILITY), name="availability"),
    CheckConstraint(f"condition IS NULL OR {_in('condition', CONDITIONS)}", name="condition"),
    CheckConstraint(
        f"link_method IS NULL OR {_in('link_method', LINK_METHODS)}", name="link_method"
    ),
    CheckConstraint("price IS NULL OR price >= 0", name="price"),
    CheckConstraint("regular_price IS NULL OR regular_price >= 0", name="regular_price"),
    Index(None, "sku"),
    Index(None, "vendor", "release_year"),
    Index(None, "last_synced_at"),
    Index(None, "ornament_id"),
)

product_changes = Table(
    "product_changes",
    metadata,
    Column("id", BigInteger, primary_key=True),
    # NULL only for a crawl_health row: a verdict on a vendor's crawl run, not on a product.
    Column("product_id", BigInteger, ForeignKey("products.id", ondelete="CASCADE")),
    Column("kind", String(16), nullable=False),
    # For `changed`: the audited column. For listed/delisted/relisted: NULL, and new_value
    # holds a JSON snapshot of the audited fields at that moment.
    Column("field", String(64)),
    Column("old_value", Text),
    Column("new_value", Text),
    _timestamp("changed_at", nullable=False, default_now=True),
    Column("crawl_run_id", BigInteger, ForeignKey("crawl_runs.id", ondelete="SET NULL")),
    Column("flags", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    CheckConstraint(_in("kind", EVENT_KINDS), name="kind"),
    CheckConstraint(f"product_id IS NOT NULL OR kind = '{HEALTH_KIND}'", name="product"),
    Index(None, "product_id", "id"),
    Index(None, "crawl_run_id"),
)

# The audit worker's delivery state (webapi.auditor): one row per configured subscriber with
# its durable cursor, and a log of every delivery attempt.
DELIVERY_STATUSES = ("delivered", "failed")

audit_subscribers = Table(
    "audit_subscribers",
    metadata,
    Column("name", String(64), primary_key=True),
    # The cursor: every change with a lower or equal id has been delivered (or filtered out).
    Column("last_change_id", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False, server_default="0"),  # consecutive failures
    Column("last_error", Text),
    _timestamp("paused_at"),  # set when a failing subscriber is paused; cleared on resume
    _timestamp("last_delivered_at"),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
)

audit_deliveries = Table(
    "audit_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column(
        "subscriber",
        String(64),
        ForeignKey("audit_subscribers.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("first_change_id", BigInteger, nullable=False),
    Column("last_change_id", BigInteger, nullable=False),
    Column("events", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("http_status", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    _timestamp("attempted_at", nullable=False, default_now=True),
    CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    Index(None, "subscriber", "id"),
    Index(None, "attempted_at"),
)

# The read-only API (webapi): its keys, and the indexes its queries need (migration 0003).
# A key is stored only as the SHA-256 of the whole key; `prefix` is its public part, shown in
# listings and used to find the row before the hash is compared in constant time.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("rate_limit", Integer),  # requests per window; NULL: api_rate_limit
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("last_used_at"),  # the one column the API's database role may UPDATE
    _timestamp("revoked_at"),
    UniqueConstraint("prefix"),
    # One active key per name; a revoked key's name may be reused.
    Index(
        "ix_api_keys_active_name",
        "name",
        unique=True,
        postgresql_where=text("revoked_at IS NULL"),
    ),
)

# Product list: keyset pagination for each sort order, the changed-since filter, name search.
Index(None, products.c.name, products.c.id)
Index(None, products.c.price, products.c.id)
Index(None, products.c.release_year, products.c.id)
Index(None, products.c.updated_at, products.c.id)
Index(None, products.c.delisted_at)
Index("ix_products_lower_series", func.lower(products.c.series))
Index("ix_products_lower_artist", func.lower(products.c.artist))
# Word-prefix search on the name (`to_tsvector('simple', name) @@ to_tsquery(…)`): built in,
# so it works on the embedded server too (which has no pg_trgm).
NAME_SEARCH_CONFIG = "simple"
name_search_vector = func.to_tsvector(text(f"'{NAME_SEARCH_CONFIG}'::regconfig"), products.c.name)
Index("ix_products_name_search", name_search_vector, postgresql_using="gin")
# The change feed started from a time.
Index(None, product_changes.c.changed_at)

# Liveness of the long-running processes (migration 0004, storage.heartbeats): the scheduler,
# audit workers, standing crawler workers and crawls each write their row at start, every few
# seconds while they run, and at a clean stop. A row whose beat is older than a few of its
# intervals belongs to a process that died (or lost the database).
HEARTBEAT_PROCESSES = ("scheduler", "auditor", "crawler", "crawl")

process_heartbeats = Table(
    "process_heartbeats",
    metadata,
    Column("process", String(32), primary_key=True),  # one of HEARTBEAT_PROCESSES
    Column("instance", String(200), primary_key=True),  # host:pid
    Column("pid", Integer, nullable=False),
    Column("interval_seconds", Numeric(10, 3), nullable=False),  # how often it promises to beat
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _timestamp("started_at", nullable=False, default_now=True),
    _timestamp("beat_at", nullable=False, default_now=True),
    _timestamp("stopped_at"),  # set by a clean stop
    CheckConstraint(_in("process", HEARTBEAT_PROCESSES), name="process"),
    Index(None, "beat_at"),
)

# The processes that work each crawl run (migration 0005, storage.runs): a crawl records itself
# when it opens or joins a run and marks itself left when it closes it. A running run none of
# whose processes is alive any more is closed failed, reason `abandoned` (runs.sweep).
crawl_run_processes = Table(
    "crawl_run_processes",
    metadata,
    Column("run_id", BigInteger, ForeignKey("crawl_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("host", String(200), primary_key=True),  # socket.gethostname(), as in heartbeats
    Column("pid", Integer, primary_key=True),
    # When the process started, by its host's clock (psutil): tells a reused pid apart.
    Column("pid_created", Float, nullable=False),
    _timestamp("joined_at", nullable=False, default_now=True),
    _timestamp("left_at"),  # set when the process closed the run (or left it to its siblings)
)

# Crawl health (christmas_spiders.health, migration 0006). What each run read, per release year
# (0: the whole run), summed over its workers: product pages, items, items showing each field,
# problem pages… The run is judged against the last healthy runs' counts of the same years.
crawl_run_counts = Table(
    "crawl_run_counts",
    metadata,
    Column("run_id", BigInteger, ForeignKey("crawl_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("counter", String(48), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Values that disappeared during a run: the product showed `field` (a protected group's key,
# storage.products.PROTECTED) before, this run's page did not, and the store kept the stored
# values (`kept`). The run's end applies `new` (the values the page gave) when the field's
# coverage is healthy, else leaves them unapplied (`python -m christmas_spiders.health accept`
# applies them later, for a run an operator accepts).
crawl_run_vanishes = Table(
    "crawl_run_vanishes",
    metadata,
    Column("run_id", BigInteger, ForeignKey("crawl_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("field", String(32), primary_key=True),
    Column(
        "product_id", BigInteger, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("kept", JSONB, nullable=False),
    Column("new", JSONB, nullable=False),
)

# Ornaments (christmas_spiders.catalog, migration 0007): one Keepsake design of one year, what the
# listings of every shop are linked to. `key` is the linker's stable id ("1994:QX5216", or the
# name key of the listings that founded it); `aliases` are the comparable names of its listings
# (each with `searcher`: a listing without item number has it), read when linking.
ornaments = Table(
    "ornaments",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("key", Text, nullable=False),
    Column("year", Integer, nullable=False),
    Column("item_number", String(32)),
    Column("name", Text, nullable=False),  # a shop name of it, for people
    Column("comparable_name", Text, nullable=False),  # its name as the rules compare names
    Column("series", Text),
    Column("series_number", Integer),
    Column("series_numbers", ARRAY(Integer), nullable=False, server_default=text("'{}'::int[]")),
    Column("flags", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column("aliases", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _timestamp("created_at", nullable=False, default_now=True),
    _timestamp("updated_at", nullable=False, default_now=True),
    UniqueConstraint("key"),
    CheckConstraint(f"flags <@ ARRAY[{', '.join(map(repr, FLAGS))}]::text[]", name="flags"),
    # Item numbers are unique within a year, not across years.
    Index(
        "ix_ornaments_year_item_number",
        "year",
        "item_number",
        unique=True,
        postgresql_where=text("item_number IS NOT NULL"),
    ),
    Index(None, "year", "comparable_name"),
    Index(None, "item_number"),
)
Index("ix_ornaments_lower_series", func.lower(ornaments.c.series), ornaments.c.series_number)

# Each linked product's listing as the rules read it (catalog.records; migration 0010): store-time
# linking reads its neighbours' forms instead of parsing their names again. Kept apart from
# `products`, whose rows every sync rewrites. `form` holds `problem` when the rules cannot read
# the listing.
listing_forms = Table(
    "listing_forms",
    metadata,
    Column(
        "product_id", BigInteger, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("form", JSONB, nullable=False),
)

# The year index, precomputed (storage.market_index, migration 0012): each day's step of each
# release year's index per condition (the last 365 days): ornaments priced at the day's end,
# matched (priced the day before too), the mean log of their price ratios (NULL: none matched).
market_year_steps = Table(
    "market_year_steps",
    metadata,
    Column("condition", String(16), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("ornaments", Integer, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("log_step", Numeric),
)
# Every product's state (in stock, price) at the end of market_year_index.base_day, from the
# history, and its link (ornament, its year, condition) at the last refresh: relinks show.
market_offer_states = Table(
    "market_offer_states",
    metadata,
    Column(
        "product_id", BigInteger, ForeignKey("products.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("ornament_id", BigInteger),
    Column("year", Integer),
    Column("condition", String(16)),
    Column("in_stock", Boolean),
    Column("price", Numeric),
)
# One row: the base day of market_offer_states, and when the steps were last brought up to
# date (the answers' `as_of`: today's point is the state then).
market_year_index = Table(
    "market_year_index",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=text("true")),
    Column("base_day", Date, nullable=False),
    _timestamp("as_of", nullable=False),
    CheckConstraint("singleton", name="singleton"),
)

# Commands for the running scheduler (migration 0009, scheduling.commands): `python scheduler.py
# pause|resume|run JOB_ID` queues one here and NOTIFYs; the scheduler applies it through
# APScheduler's API and writes the answer (`ok`, `result`: one sentence). With no scheduler
# running the CLI applies it itself. Applied commands are kept 30 days.
SCHEDULER_ACTIONS = ("run", "pause", "resume")

scheduler_commands = Table(
    "scheduler_commands",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("action", String(16), nullable=False),
    Column("job_id", Text, nullable=False),
    _timestamp("requested_at", nullable=False, default_now=True),
    _timestamp("applied_at"),
    Column("ok", Boolean),
    Column("result", Text),
    CheckConstraint(_in("action", SCHEDULER_ACTIONS), name="action"),
)

# When each market view (migration 0011, storage.market) was last refreshed: the `as_of` of the
# market answers. `seconds`: how long that refresh step took (NULL: built by the migration).
market_refreshes = Table(
    "market_refreshes",
    metadata,
    Column("name", Text, primary_key=True),
    _timestamp("refreshed_at", nullable=False),
    Column("seconds", Float),
)
