"""Scrapy settings, built from the shared configuration (christmas_spiders.config)."""

import sys

from christmas_spiders import config, logs

try:
    CHRISTMAS_CONFIG = config.load()
except config.ConfigError as error:
    sys.exit(f"configuration error: {error}")

logs.configure(CHRISTMAS_CONFIG.log_level, CHRISTMAS_CONFIG.log_format)

BOT_NAME = "christmas_spiders"
SPIDER_MODULES = ["christmas_spiders.spiders"]
NEWSPIDER_MODULE = "christmas_spiders.spiders"
COMMANDS_MODULE = "christmas_spiders.commands"

# Logging goes through our own handler (text or JSON, secrets redacted).
LOG_INSTALL_ROOT_HANDLER = False
LOG_LEVEL = CHRISTMAS_CONFIG.log_level

# Politeness.
USER_AGENT = f"project_christmas/0.1 (+{CHRISTMAS_CONFIG.contact_url})"
ROBOTSTXT_OBEY = True
AUTOTHROTTLE_ENABLED = True
CONCURRENT_REQUESTS_PER_DOMAIN = 4

# No remote access into a running crawler.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
EXTENSIONS = {
    "scrapy.extensions.telnet.TelnetConsole": None,
    "scrapy.extensions.remote_control.RemoteControl": None,
    "christmas_spiders.extensions.CrawlRunRecorder": 100,
}
ITEM_PIPELINES = {
    "christmas_spiders.pipelines.NormalizePipeline": 100,
    "christmas_spiders.pipelines.ValidatePipeline": 200,
    "christmas_spiders.pipelines.StorePipeline": 300,
}

FEED_EXPORT_ENCODING = "utf-8"
