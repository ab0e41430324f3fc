"""gunicorn's settings for the API (the `web` process type), read from the working folder.

gunicorn binds 0.0.0.0:$PORT by itself when PORT is set (Heroku sets it; so does the
Dockerfile), and runs WEB_CONCURRENCY workers (default 1). On SIGTERM it stops accepting
connections and gives requests in flight `graceful_timeout` seconds: well within the 30 s
Heroku allows before SIGKILL.
"""

graceful_timeout = 20
timeout = 30
worker_tmp_dir = "/dev/shm"  # worker heartbeats off the (possibly slow) container disk
control_socket_disable = True  # no runtime control interface (like Scrapy's telnet console)


def on_starting(server) -> None:
    """Log the start configuration (without secrets), like every other process."""
    from christmas_spiders import config
    from christmas_spiders.storage import heartbeats

    settings = config.load_for_command()
    heartbeats.log_start(
        "web",
        settings,
        bind=",".join(server.cfg.bind),
        workers=server.cfg.workers,
        graceful_timeout=server.cfg.graceful_timeout,
    )
