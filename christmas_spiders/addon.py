"""The project's configuration in Scrapy's settings: the ``ProjectConfig`` add-on.

Scrapy's settings are a crawl's only configuration channel: every component reads the project's
``Config`` from the setting ``CHRISTMAS_CONFIG`` (``from_crawler``). Importing
``christmas_spiders.settings`` does nothing else; this add-on (``ADDONS`` there) loads the
configuration (``christmas_spiders.config``: environment, JSON file, defaults) when Scrapy
builds a crawl's settings, once the command line's ``-s`` options are in:

* it sets ``CHRISTMAS_CONFIG``, and the Scrapy settings the configuration decides —
  ``LOG_LEVEL``, ``USER_AGENT``, and with ``redis_url`` the shared request scheduler and budget
  (docs/scale-out.md) — at add-on priority, so ``-s`` still overrides each of them;
* it sets up logging (``logs.configure``) from them;
* a bad configuration ends the command: its one sentence on stderr, exit status 2.

A ``CHRISTMAS_CONFIG`` given already (tests, benchmarks, in-process crawls) is kept as it is.
Commands that start no crawl (``scrapy worker``, ``scrapy announce``) call ``project_config``.
"""

from __future__ import annotations

from scrapy.settings import BaseSettings
from scrapy.utils.misc import load_object

from christmas_spiders import logs
from christmas_spiders.config import Config, load_for_command

PRIORITY = "addon"
SHARED_SCHEDULER = "christmas_spiders.distributed.request_scheduler.SharedRequestScheduler"
# Asked ahead of the Selenium middleware (950), so renders spend the budget too, and after
# redirects (600) and retries (550) turn a response into a new request, so its lease is returned
# first.
SHARED_BUDGET = "christmas_spiders.distributed.politeness.SharedBudgetMiddleware"
SHARED_BUDGET_ORDER = 900


class ProjectConfig:
    """Scrapy add-on: the project's configuration, loaded where Scrapy builds the settings."""

    @classmethod
    def update_pre_crawler_settings(cls, settings: BaseSettings) -> None:
        """A crawler process's settings (``scrapy crawl``, a CrawlerProcess)."""
        project_config(settings)

    def update_settings(self, settings: BaseSettings) -> None:
        """A crawler's own settings (a Crawler built without a crawler process)."""
        project_config(settings)


def project_config(settings: BaseSettings) -> Config:
    """The configuration in `settings`, loaded into them first if it is not there yet."""
    config: Config | None = settings.get("CHRISTMAS_CONFIG")
    if config is not None:
        return config
    config = load_for_command()  # a bad one: the sentence on stderr, exit status 2
    settings.set("CHRISTMAS_CONFIG", config, PRIORITY)
    settings.set("LOG_LEVEL", config.log_level, PRIORITY)
    settings.set("USER_AGENT", config.user_agent, PRIORITY)
    if config.redis_url:
        settings.set("SCHEDULER", SHARED_SCHEDULER, PRIORITY)
        settings.set_in_component_priority_dict(
            "DOWNLOADER_MIDDLEWARES", load_object(SHARED_BUDGET), SHARED_BUDGET_ORDER
        )
    # load_for_command configured logging at the configuration's level; -s LOG_LEVEL wins.
    logs.configure(settings["LOG_LEVEL"], config.log_format)
    return config
