"""Marshmallow fields and schemas shared by the /v1 blueprints (they validate the query string
and document it and every answer in the OpenAPI document)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from christmas_spiders.catalog.rules import CONDITIONS, FLAGS
from christmas_spiders.domain import AVAILABILITY, CHANGE_KINDS
from christmas_spiders.storage.schema import RUN_HEALTH, RUN_STATUSES
from christmas_spiders.vendors import VENDORS

BIGINT_MAX = 2**63 - 1
PRICE_MAX = 10**10  # products.price is NUMERIC(12, 2)
YEAR_MIN, YEAR_MAX = 1900, 2100
# Query strings: printable text only (a NUL byte cannot even reach PostgreSQL).
_PRINTABLE = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="must not contain control characters.")
_WORD = re.compile(r"\w")


def text(max_length: int = 200, **kwargs) -> fields.String:
    return fields.String(
        validate=[validate.Length(min=1, max=max_length), _PRINTABLE],
        **kwargs,
    )


def choices(values: Sequence[str], error: str | None = None, **kwargs) -> fields.List:
    """A parameter given once or repeated, each value one of `values`."""
    return fields.List(
        fields.String(validate=validate.OneOf(list(values), error=error)),
        validate=validate.Length(min=1, max=len(values)),
        **kwargs,
    )


def vendor_ids(**kwargs) -> fields.List:
    return choices(list(VENDORS), error="unknown vendor {input!r}.", **kwargs)


class Moment(fields.AwareDateTime):
    """An ISO 8601 time, converted to UTC; without an offset it is taken as UTC."""

    def __init__(self, **kwargs) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)  # PostgreSQL takes offsets up to ±15:59 only
        except OverflowError:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


def moment(**kwargs) -> Moment:
    return Moment(**kwargs)


class Money(fields.Decimal):
    """A price in an answer: a decimal string ("17.95"), documented as such."""

    def __init__(self, **kwargs) -> None:
        super().__init__(as_string=True, **kwargs)


class PriceParameter(fields.Decimal):
    """A price in the query string (read as Decimal; documented as a number)."""

    def _serialize(self, value, attr, obj, **kwargs):
        # apispec writes the Range bounds through this: as JSON numbers, not strings.
        return None if value is None else float(value)


def price(**kwargs) -> fields.Decimal:
    return PriceParameter(
        validate=validate.Range(min=0, max=PRICE_MAX, error="must be from 0 to 10000000000."),
        **kwargs,
    )


def record_id(**kwargs) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=0, max=BIGINT_MAX), **kwargs)


def require_word(data: dict[str, Any], name: str) -> None:
    """A search parameter (checked once its field is valid) needs a word to search for."""
    if name in data and not _WORD.search(data[name]):
        raise ma.ValidationError("must contain a letter or a digit.", name)


class Query(ma.Schema):
    """Query strings: unknown parameters are errors (a misspelt filter must not be ignored).

    Takes effect because our parser (`webapi.errors.Parser`) leaves `unknown` to the schema:
    webargs would otherwise pass EXCLUDE for the query string, overriding this Meta.
    """

    class Meta:
        unknown = ma.RAISE


class HistoryArgs(Query):
    """The window of a product's (or a SKU's offers') history."""

    since = moment(metadata={"description": "Window start (the price then is included)."})
    until = moment(metadata={"description": "Window end, exclusive."})
    include_suspicious = fields.Boolean(
        load_default=False,
        metadata={"description": "Count prices flagged suspicious in lowest/highest."},
    )

    @ma.validates_schema
    def _check_window(self, data: dict[str, Any], **_kwargs) -> None:
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise ma.ValidationError("must be before until.", "since")


class Vendor(ma.Schema):
    id = fields.String(metadata={"description": "The vendor id (the spider's name)."})
    display_name = fields.String()
    base_url = fields.String()
    last_synced_at = fields.DateTime(
        allow_none=True, metadata={"description": "Latest time a product of this shop was synced."}
    )
    products = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={
            "description": "Product counts: total, listed, delisted, available, preorder, "
            "unavailable (the last three among listed products)."
        },
    )
    last_run = fields.Nested(lambda: RunSummary(), allow_none=True)


class RunSummary(ma.Schema):
    id = fields.Integer()
    status = fields.String(validate=validate.OneOf(RUN_STATUSES))
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class Product(ma.Schema):
    id = fields.Integer()
    vendor = fields.String()
    vendor_product_id = fields.String(allow_none=True)
    sku = fields.String(allow_none=True)
    name = fields.String()
    price = Money(allow_none=True, metadata={"description": "USD."})
    regular_price = Money(allow_none=True, metadata={"description": "The pre-sale price."})
    currency = fields.String()
    availability = fields.String(validate=validate.OneOf(AVAILABILITY))
    availability_text = fields.String(allow_none=True)
    release_year = fields.Integer()
    series = fields.String(allow_none=True)
    series_number = fields.Integer(allow_none=True)
    artist = fields.String(allow_none=True)
    brand = fields.String()
    link = fields.String()
    image_url = fields.String(allow_none=True)
    first_seen_at = fields.DateTime()
    last_synced_at = fields.DateTime()
    updated_at = fields.DateTime(metadata={"description": "Last change of any of its fields."})
    delisted_at = fields.DateTime(allow_none=True)
    ornament_id = fields.Integer(
        allow_none=True,
        metadata={"description": "Its ornament (null: the rules could not link it)."},
    )
    condition = fields.String(
        allow_none=True,
        validate=validate.OneOf(CONDITIONS),
        metadata={"description": "Of this offer: boxed, no_box, no_tag or damaged_box."},
    )


class ProductDetail(Product):
    vendor_name = fields.String()
    last_change_id = fields.Integer(allow_none=True)


class ProductPage(ma.Schema):
    items = fields.List(fields.Nested(Product))
    limit = fields.Integer()
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as `cursor` for the next page."}
    )


class PricePoint(ma.Schema):
    change_id = fields.Integer()
    at = fields.DateTime()
    price = Money(allow_none=True)
    suspicious = fields.Boolean()


class AvailabilityPoint(ma.Schema):
    change_id = fields.Integer()
    at = fields.DateTime()
    kind = fields.String(validate=validate.OneOf(CHANGE_KINDS))
    availability = fields.String(
        allow_none=True, metadata={"description": "None when delisted or not recorded."}
    )


class Figures(ma.Schema):
    lowest = Money(allow_none=True)
    highest = Money(allow_none=True)
    latest = Money(allow_none=True)
    latest_at = fields.DateTime(allow_none=True)
    points = fields.Integer()


class History(ma.Schema):
    product_id = fields.Integer()
    since = fields.DateTime(allow_none=True)
    until = fields.DateTime(allow_none=True)
    figures = fields.Nested(Figures)
    prices = fields.List(fields.Nested(PricePoint))
    availability = fields.List(fields.Nested(AvailabilityPoint))


class Offer(ProductDetail):
    history = fields.Nested(History)


def offer_list(description: str) -> fields.List:
    """Offers each with its history (product_history.offers), in the order `description` says."""
    return fields.List(fields.Nested(Offer), metadata={"description": description})


class SkuView(ma.Schema):
    sku = fields.String()
    item_number = fields.String(
        allow_none=True, metadata={"description": "The SKU's Hallmark item number, if it has one."}
    )
    ornaments = fields.List(
        fields.Nested(lambda: OrnamentSummary()),
        metadata={"description": "The ornaments of the SKU, newest year first."},
    )
    offers = offer_list("Their offers: by ornament, then in stock cheapest first.")


class ChangeProduct(ma.Schema):
    vendor = fields.String()
    vendor_name = fields.String()
    name = fields.String()
    sku = fields.String(allow_none=True)
    link = fields.String()
    currency = fields.String()
    price = Money(allow_none=True)
    availability = fields.String()


class Change(ma.Schema):
    id = fields.Integer()
    product_id = fields.Integer()
    kind = fields.String(validate=validate.OneOf(CHANGE_KINDS))
    field = fields.String(allow_none=True)
    old_value = fields.String(allow_none=True)
    new_value = fields.String(allow_none=True)
    changed_at = fields.DateTime()
    crawl_run_id = fields.Integer(allow_none=True)
    flags = fields.List(fields.String())
    event = fields.String(
        allow_none=True,
        metadata={"description": "price_drop, price_rise, restock or sold_out, when it is one."},
    )
    product = fields.Nested(ChangeProduct)


class ChangePage(ma.Schema):
    changes = fields.List(fields.Nested(Change))
    next_after_id = fields.Integer(
        metadata={"description": "Pass as `after_id` for the next page."}
    )
    settled_up_to = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Every change up to this id is final; null when writers were still "
            "open (the page is then empty: ask again)."
        },
    )
    has_more = fields.Boolean()


class Run(ma.Schema):
    id = fields.Integer()
    vendor = fields.String()
    arguments = fields.Dict()
    status = fields.String(validate=validate.OneOf(RUN_STATUSES))
    close_reason = fields.String(allow_none=True)
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    duration_seconds = fields.Float(allow_none=True)
    counters = fields.Dict(keys=fields.String(), values=fields.Integer())
    health = fields.String(
        allow_none=True,
        validate=validate.OneOf(RUN_HEALTH),
        metadata={"description": "ok, suspect, or null when the run was not judged."},
    )
    health_reasons = fields.List(fields.String())
    stats = fields.Dict()


class RunPage(ma.Schema):
    items = fields.List(fields.Nested(Run))
    limit = fields.Integer()
    next_cursor = fields.String(allow_none=True)


# --- ornaments and series (issue #15) ------------------------------------------------------------


class OfferSummary(ma.Schema):
    """One shop's offer of an ornament, in short."""

    product_id = fields.Integer(attribute="id")
    vendor = fields.String()
    vendor_name = fields.String()
    name = fields.String(metadata={"description": "The shop's name of it."})
    sku = fields.String(allow_none=True)
    condition = fields.String(allow_none=True, validate=validate.OneOf(CONDITIONS))
    price = Money(allow_none=True)
    currency = fields.String()
    availability = fields.String(validate=validate.OneOf(AVAILABILITY))
    link = fields.String()


class OrnamentSummary(ma.Schema):
    id = fields.Integer()
    year = fields.Integer(metadata={"description": "The Keepsake year of the design."})
    item_number = fields.String(
        allow_none=True, metadata={"description": "Hallmark's, e.g. QX5216."}
    )
    name = fields.String(metadata={"description": "A shop's name of it (its commonest boxed one)."})
    series = fields.String(allow_none=True)
    series_number = fields.Integer(allow_none=True)
    flags = fields.List(
        fields.String(validate=validate.OneOf(FLAGS)),
        metadata={"description": "Kinds that make another ornament: miniature, magic, signed…"},
    )
    listed_offers = fields.Integer(metadata={"description": "Offers listed at any shop."})
    vendors = fields.List(fields.String(), metadata={"description": "Shops listing it."})
    cheapest = fields.Nested(
        OfferSummary,
        allow_none=True,
        metadata={
            "description": "The cheapest offer in stock (available or pre-order), any condition."
        },
    )
    cheapest_boxed = fields.Nested(
        OfferSummary,
        allow_none=True,
        metadata={"description": "The cheapest boxed offer in stock."},
    )
    updated_at = fields.DateTime()


class OrnamentPage(ma.Schema):
    items = fields.List(fields.Nested(OrnamentSummary))
    limit = fields.Integer()
    next_cursor = fields.String(
        allow_none=True, metadata={"description": "Pass as `cursor` for the next page."}
    )


class OrnamentDetail(OrnamentSummary):
    series_numbers = fields.List(
        fields.Integer(), metadata={"description": "Every number its listings state."}
    )
    created_at = fields.DateTime()
    offers = offer_list("Every offer at every shop, delisted ones last, with history.")


class SeriesSummary(ma.Schema):
    name = fields.String()
    ornaments = fields.Integer()
    first_year = fields.Integer()
    last_year = fields.Integer()
    last_number = fields.Integer(
        allow_none=True, metadata={"description": "The highest number known (null: none)."}
    )
    numbers_known = fields.Integer(metadata={"description": "Numbers 1–last an ornament has."})
    numbers_in_stock = fields.Integer(metadata={"description": "Numbers with an offer in stock."})


class SeriesNumber(ma.Schema):
    number = fields.Integer()
    ornaments = fields.List(
        fields.Nested(OrnamentSummary), metadata={"description": "Empty: no shop lists it."}
    )
    cheapest = fields.Nested(OfferSummary, allow_none=True)
    cheapest_boxed = fields.Nested(OfferSummary, allow_none=True)


class SeriesDetail(ma.Schema):
    name = fields.String()
    first_number = fields.Integer()
    last_number = fields.Integer(allow_none=True)
    numbers = fields.List(
        fields.Nested(SeriesNumber), metadata={"description": "Every number first to last."}
    )
    missing = fields.List(
        fields.Integer(), metadata={"description": "Numbers no shop lists (no ornament known)."}
    )
    not_in_stock = fields.List(
        fields.Integer(), metadata={"description": "Numbers listed, but in stock nowhere."}
    )
    in_stock = fields.Integer(metadata={"description": "Numbers you can buy today."})
    in_stock_boxed = fields.Integer(metadata={"description": "Numbers you can buy boxed today."})
    cheapest_total = Money(
        metadata={"description": "The cheapest in-stock offer of every number that has one."}
    )
    cheapest_boxed_total = Money(
        metadata={"description": "The cheapest boxed in-stock offer of every number with one."}
    )
    unnumbered = fields.List(
        fields.Nested(OrnamentSummary), metadata={"description": "Its ornaments without a number."}
    )
