"""The database errors the audit worker waits out: a lost or refused connection.

The waits themselves are christmas_spiders.retrying's (tenacity).
"""

from __future__ import annotations

import psycopg2
import sqlalchemy as sa

# A dropped connection, a server that is restarting or refuses connections, a terminated
# backend: the worker waits and tries again, forever.
TRANSIENT_DB_ERRORS = (
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
)
