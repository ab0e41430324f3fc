"""Scrapy settings: constants only, importing this module has no side effect.

The project's configuration (christmas_spiders.config) comes in through the ``ProjectConfig``
add-on when Scrapy builds a crawl's settings: ``CHRISTMAS_CONFIG``, and from it ``LOG_LEVEL``,
``USER_AGENT`` and, with ``redis_url``, the shared request scheduler and budget
(christmas_spiders.addon). ``-s`` overrides any of them.
"""

BOT_NAME = "christmas_spiders"
SPIDER_MODULES = ["christmas_spiders.spiders"]
NEWSPIDER_MODULE = "christmas_spiders.spiders"
COMMANDS_MODULE = "christmas_spiders.commands"
ADDONS = {"christmas_spiders.addon.ProjectConfig": 0}

# Logging goes through our own handler (text or JSON, secrets redacted), set up by the add-on.
LOG_INSTALL_ROOT_HANDLER = False

# Politeness: robots.txt, AutoThrottle, a few requests at a time per shop, and retries that
# back off (Retry-After honoured) for 5xx, 429 and timeouts. The User-Agent is the
# configuration's (user_agent).
ROBOTSTXT_OBEY = True
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
# AutoThrottle aims above the per-shop cap, so the cap bounds a healthy shop and the delay
# (latency ÷ 8) only grows when the shop slows down (bench/results.md, figure 3).
AUTOTHROTTLE_TARGET_CONCURRENCY = 8.0
CONCURRENT_REQUESTS_PER_DOMAIN = 4
# Never 0: with no delay Scrapy does not enforce CONCURRENT_REQUESTS_PER_DOMAIN (bench notes, 3).
DOWNLOAD_DELAY = 0.01
DOWNLOAD_TIMEOUT = 30
RETRY_TIMES = 7  # with the backoff: 90-150 s of retries, longer than a one-minute outage
RETRY_BACKOFF_BASE = 1.0
RETRY_BACKOFF_MAX = 60.0
# A Retry-After is honoured in full up to 15 min; a shop asking for longer is not retried (the
# request gives up and the next crawl fetches it) rather than retried sooner than it asked.
RETRY_AFTER_MAX = 900.0
# Hostile pages: a redirect chain longer than this is a loop; a page over DOWNLOAD_MAXSIZE is
# refused: 12× the largest page of the replica's 20,000-product catalog (a HooH year in
# view-all mode, 0.7 MB); a warning at 3×.
REDIRECT_MAX_TIMES = 10
DOWNLOAD_WARNSIZE = 2 * 1024 * 1024
DOWNLOAD_MAXSIZE = 8 * 1024 * 1024
# Year listings asked for at once; each, once read, asks for the next (spiders/_vendor.py).
# One keeps a HooH crawler flat (141 MB at 20,000 products, 130 at 5,000) at no cost in speed.
YEAR_LISTINGS_AT_ONCE = 1
DOWNLOADER_MIDDLEWARES = {
    # A quick sync's requests wait until its stored products are loaded (christmas_spiders.quick).
    "christmas_spiders.quick.gate.SnapshotGate": 50,
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "christmas_spiders.middlewares.BackoffRetryMiddleware": 550,
    # After decompression (590): a page declared UTF-8 but in a legacy encoding is read as such.
    "christmas_spiders.middlewares.CharsetMiddleware": 580,
    # Renders requests that carry meta["render"] in headless Chromium (HO year grids only).
    "christmas_spiders.rendering.SeleniumMiddleware": 950,
}
SELENIUM_MAX_BROWSERS = 1

# No remote access into a running crawler.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
EXTENSIONS = {
    "scrapy.extensions.telnet.TelnetConsole": None,
    "scrapy.extensions.remote_control.RemoteControl": None,
    "christmas_spiders.extensions.CrawlRunRecorder": 100,
    "christmas_spiders.crawl_heartbeat.CrawlHeartbeat": 110,  # process_heartbeats (README)
}
HEARTBEAT_INTERVAL = 10.0  # seconds between the crawl's heartbeats
ITEM_PIPELINES = {
    "christmas_spiders.pipelines.NormalizePipeline": 100,
    "christmas_spiders.pipelines.ValidatePipeline": 200,
    "christmas_spiders.pipelines.StorePipeline": 300,
    "christmas_spiders.health.counting.HealthPipeline": 400,  # docs/health.md
}

FEED_EXPORT_ENCODING = "utf-8"

# Distributed crawling (docs/scale-out.md), only with REDIS_URL: the add-on sets the shared
# request scheduler (one request queue and dedup set per crawl run) and each shop's politeness
# budget shared by every worker. Without REDIS_URL nothing touches Redis.
