# One image for every process of project_christmas: heroku.yml runs the release migration and
# the web, scheduler, auditor and crawler process types from it. Configuration comes only from
# the environment at run time (DATABASE_URL, REDIS_URL, PORT, CHRISTMAS_*): no secret is baked
# in, and .dockerignore keeps local data, virtualenvs and env files out of the build context.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

# Chromium and chromedriver from Debian's own packages (the Selenium middleware), installed by
# the same script CI runs (.ci/system-packages): nothing is downloaded from outside the package
# registries, and CI exercises this step on every run.
COPY .ci/system-packages .ci/system-packages
RUN bash .ci/system-packages chromium chromium-driver \
    && rm -rf /var/lib/apt/lists/*

# Exact pins, in their own layer so that a code change does not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# A non-root user; it may write only the data folder (dead-letter files).
RUN useradd --create-home --uid 10001 --user-group christmas \
    && mkdir -p /app/.data \
    && chown christmas:christmas /app/.data
USER 10001

EXPOSE 8000
# Without heroku.yml (docker run): the API. gunicorn binds 0.0.0.0:$PORT (gunicorn.conf.py).
CMD ["gunicorn", "webapi:create_app()"]
