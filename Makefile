# project_christmas — every command runs in .venv, created by `make setup` when missing.
VENV := .venv
PYTHON := $(VENV)/bin/python
READY := $(VENV)/.ready

.PHONY: setup test lint format demo demo-up screenshots bench up clean

setup: $(READY)

$(READY): requirements.txt requirements-dev.txt
	bash .ci/system-packages
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(READY)

test: $(READY)
	$(PYTHON) -m pytest

lint: $(READY)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(READY)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# A day at the replica shops in about a minute: two syncs a day apart (demo/story.py).
demo: $(READY)
	$(PYTHON) -m demo

# The whole system live (make up) against the replica shops, which move every few minutes;
# alerts printed as they arrive (demo/live.py). Ctrl-C stops it.
demo-up: $(READY)
	$(PYTHON) -m demo live

# docs/screenshots/: the search, ornament, changes, runs and market pages at desktop and phone width,
# taken by headless Chromium from a demo run in a temporary folder (demo/screenshots.py).
screenshots: $(READY)
	$(PYTHON) -m demo screenshots

# Every performance figure beside its baseline; needs PostgreSQL and Redis up (as make test).
# Writes bench/results.md (and .json); `python -m bench --quick` is the tiny pass the tests run.
bench: $(READY)
	$(PYTHON) -m bench

# The whole system, as on Heroku (Procfile), on the embedded PostgreSQL and a private Redis;
# the API on http://127.0.0.1:8000; the LIVE shops (demo-up: the replica). Ctrl-C stops it.
# See bin/up for what it reads.
up: $(READY)
	bin/up

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
