# One image for every process of project_christmas (see heroku.yml for the process types).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

# Chromium and its driver from Debian's packages, through the same script CI uses.
COPY .ci/system-packages .ci/system-packages
RUN bash .ci/system-packages chromium chromium-driver && rm -rf /var/lib/apt/lists/*

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 christmas && mkdir -p /app/.data \
    && chown -R christmas /app/.data
USER christmas

CMD ["sh", "-c", "exec gunicorn --bind 0.0.0.0:${PORT} 'webapi:create_app()'"]
