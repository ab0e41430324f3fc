"""The audit worker's subscribers (`webapi.auditor`): who receives which history changes, where.

Every process validates their shape at start; only the worker reads the secrets they name
(`christmas_spiders.config.resolve_subscribers`), so the crawler and the API start without them.
See docs/auditor.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import marshmallow as ma
from marshmallow import ValidationError, validate

from christmas_spiders.config import fields as f
from christmas_spiders.domain import AUDITABLE_FIELDS, CHANGE_KINDS, EVENT_KINDS, HEALTH_KIND
from christmas_spiders.vendors import VENDORS

# Tables whose changes reach product_changes (the history trigger is on `products`).
SUBSCRIBABLE_TABLES = ("products",)
ALERT_RULES = (
    "price_drop",
    "below_target",
    "back_in_stock",
    "new_listing",
    "delisted",
    HEALTH_KIND,  # a crawl run of a vendor is suspect, or healthy again (docs/health.md)
)
SUBSCRIBER_DESTINATIONS = ("log", "webhook", "apprise")
# What a product rule watches: one ornament (`ornament`: its id) or the ornaments of a SKU in any
# form (`sku`: "2999QXM2797", "qxm2797", "QXM2797NB"), at every shop; without either, every
# product. below_target needs one of them.
_WATCH = ("sku", "ornament")
_RULE_OPTIONS = {
    "price_drop": ("min_percent", *_WATCH),
    "below_target": (*_WATCH, "target"),
    "back_in_stock": _WATCH,
    "new_listing": _WATCH,
    "delisted": _WATCH,
}


@dataclass(frozen=True)
class AlertRule:
    """One alert rule of a subscriber (see docs/auditor.md)."""

    rule: str
    min_percent: Decimal | None = None  # price_drop: only drops of at least this many percent
    sku: str | None = None  # the ornaments of this SKU (any form) are watched, at every shop
    target: Decimal | None = None  # below_target: alert when the price falls to this or below
    ornament: int | None = None  # this ornament (its id) is watched, at every shop


@dataclass(frozen=True)
class Destination:
    """Where a subscriber's deliveries go: the log, a signed webhook or an Apprise URL.

    A URL or secret may be given in the file (`url`, `secret`) or named by an environment
    variable (`url_env`, `secret_env`); `resolve_subscribers` fills in the latter.
    """

    kind: str
    url: str | None = field(default=None, repr=False)
    url_env: str | None = None
    secret: str | None = field(default=None, repr=False)
    secret_env: str | None = None


@dataclass(frozen=True)
class Subscriber:
    name: str
    destination: Destination
    tables: tuple[str, ...] = SUBSCRIBABLE_TABLES
    kinds: tuple[str, ...] = CHANGE_KINDS  # crawl_health only when asked for
    fields: tuple[str, ...] | None = None  # None: every audited field (`changed` rows only)
    vendors: tuple[str, ...] | None = None  # None: every vendor
    alerts: tuple[AlertRule, ...] = ()  # empty: every matching change; else alerts only
    start: str = "latest"  # where a new subscriber's cursor starts: "latest" or "beginning"
    batch_size: int | None = None  # changes per delivery; None: auditor_batch_size


def _exclusive(low: int, high: int) -> validate.Range:
    return validate.Range(
        low,
        high,
        min_inclusive=False,
        max_inclusive=False,
        error="must be more than {min} and less than {max}.",
    )


class _AlertRule(f.Strict):
    rule = f.String()  # one of ALERT_RULES, checked first: the other keys depend on it
    min_percent = f.Decimal(allow_none=True, validate=_exclusive(0, 100))
    sku = f.text(upper=True)
    ornament = f.integer(1, 2**63 - 1)
    target = f.Decimal(validate=_exclusive(0, 10**10))

    def allowed(self, data: dict[str, Any]) -> list[str]:
        if data.get("rule") not in ALERT_RULES:
            raise ValidationError(f"must be one of {', '.join(ALERT_RULES)}.", "rule")
        return ["rule", *_RULE_OPTIONS.get(data["rule"], ())]

    def check(self, data: dict[str, Any]) -> None:
        if "sku" in data and "ornament" in data:
            raise ValidationError("takes 'sku' or 'ornament', not both.")
        if data["rule"] == "below_target":
            if "sku" not in data and "ornament" not in data:
                raise ValidationError("needs 'sku' or 'ornament' for the below_target rule.")
            if "target" not in data:
                raise ValidationError("needs 'target' for the below_target rule.")

    @ma.post_load
    def build(self, data: dict[str, Any], **kwargs: Any) -> AlertRule:
        return AlertRule(**data)


# The destinations' URLs; the worker reads the ones named by `url_env` with the same fields.
URLS = {
    "webhook": f.url(("http", "https")),
    # Apprise URLs (json://, mailto://, discord://, …) are checked by Apprise at worker start.
    "apprise": f.matching(".*://", "must be an Apprise URL such as mailto://… or json://…."),
}


def _one_of(data: dict[str, Any], names: tuple[str, str], message: str) -> None:
    if (names[0] in data) == (names[1] in data):
        raise ValidationError(message)


class _Apprise(f.Strict):
    url = URLS["apprise"]
    url_env = f.env_name()

    def check(self, data: dict[str, Any]) -> None:
        _one_of(data, ("url", "url_env"), "needs exactly one of 'url' and 'url_env'.")


class _Webhook(_Apprise):
    url = URLS["webhook"]
    secret = f.text()
    secret_env = f.env_name()

    def check(self, data: dict[str, Any]) -> None:
        super().check(data)
        _one_of(
            data,
            ("secret", "secret_env"),
            "needs exactly one of 'secret_env' (recommended) and 'secret': "
            "every webhook delivery is signed.",
        )


def _names(choices: tuple[str, ...], **kwargs: Any) -> f.List:
    return f.names(
        choices,
        invalid=f"must be a non-empty list of names from {', '.join(choices)}.",
        unknown="has unknown {first!r}; choose from {choices}.",
        **kwargs,
    )


def _url_only(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


_NAME = "must be a short lower-case name (letters, digits, - _ .), not {input!r}."
_START = "must be 'latest' or 'beginning', not {input!r}."
_LOG = "must be true (deliver to the worker's log)."


def _true(value: Any) -> None:
    if value is not True:
        raise ValidationError(_LOG)


class _Subscriber(f.Strict):
    name = f.matching(r"[a-z0-9][a-z0-9_.-]{0,63}\Z", _NAME, required=True)
    log = f.Raw(validate=_true, error_messages={"invalid": _LOG})
    webhook = f.Object(_Webhook)
    apprise = f.Object(_Apprise, pre_load=_url_only)  # "apprise": "<url>" for short
    tables = _names(SUBSCRIBABLE_TABLES)
    kinds = _names(EVENT_KINDS)
    changed_fields = _names(AUDITABLE_FIELDS, data_key="fields", attribute="fields")
    vendors = _names(tuple(VENDORS))
    alerts = f.List(
        f.Object(_AlertRule),
        error_messages={"invalid": "must be a list of rules."},
        post_load=tuple,
    )
    start = f.matching(r"(?:latest|beginning)\Z", _START)
    batch_size = f.integer(1, 10_000, allow_none=True)

    def check(self, data: dict[str, Any]) -> None:
        if sum(kind in data for kind in SUBSCRIBER_DESTINATIONS) != 1:
            raise ValidationError(f"needs exactly one of {', '.join(SUBSCRIBER_DESTINATIONS)}.")

    @ma.post_load
    def build(self, data: dict[str, Any], **kwargs: Any) -> Subscriber:
        kind = next(kind for kind in SUBSCRIBER_DESTINATIONS if kind in data)
        options = data.pop(kind)
        destination = Destination(kind) if kind == "log" else Destination(kind, **options)
        if any(rule.rule == HEALTH_KIND for rule in data.get("alerts", ())):
            # The crawl_health rule needs the crawl_health rows it alerts on.
            data["kinds"] = tuple(dict.fromkeys((*data.get("kinds", CHANGE_KINDS), HEALTH_KIND)))
        return Subscriber(destination=destination, **data)


def _unique_names(subscribers: list[Subscriber]) -> None:
    names = [subscriber.name for subscriber in subscribers]
    for index, name in enumerate(names):
        if name in names[:index]:
            message = f"{name!r} is used twice; names must be unique."
            raise ValidationError({index: {"name": [message]}})


def subscribers_field() -> f.List:
    """The `subscribers` key: a list, or its JSON from the environment."""
    return f.List(
        f.Object(_Subscriber),
        pre_load=f.from_json,
        validate=_unique_names,
        post_load=tuple,
        error_messages={"invalid": "must be a list of subscribers."},
    )
