"""project_christmas: the Scrapy project and the storage and config code every process shares.

Every command of the project imports this package first, so this is where a Python without
the project's packages (the usual cause: `.venv` not activated) is told what to do, in one
sentence, instead of failing later with `No module named 'apscheduler'` or, under Flask, with
`No such command 'keys'`.
"""

import sys
from importlib.util import find_spec

# A few packages every process needs (requirements.txt): their absence means "not set up".
_NEEDED = ("marshmallow", "sqlalchemy", "psycopg2", "scrapy", "apscheduler", "flask")

if _missing := [name for name in _NEEDED if find_spec(name) is None]:
    raise SystemExit(
        f"project_christmas: {sys.executable} lacks the project's packages "
        f"({', '.join(_missing)}): run `make setup`, then `. .venv/bin/activate` "
        "and run the command again (or run it as .venv/bin/<command>)."
    )
