"""The pages: search, one SKU (or one product), recent changes, crawl status.

Every page is a GET whose query string is validated like the API's (the same fields and
messages, `webapi.errors.Parser`); a bad value gives a 400 page that says which, never a 500.
Empty form fields count as not given, so a form submitted with blanks searches everything.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import marshmallow as ma
from flask import (
    Blueprint,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from marshmallow import fields, validate
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, Unauthorized

from christmas_spiders.config import Config
from christmas_spiders.errors import one_line
from christmas_spiders.storage import history
from christmas_spiders.vendors import VENDORS
from webapi import auth, db, errors, schemas
from webapi.changes import event_of
from webapi.web import charts, formatting, queries

logger = logging.getLogger(__name__)

blueprint = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)

PER_PAGE = 25
MAX_PAGE = 400
CHANGES_PER_PAGE = 50
PRODUCT_CHANGES = 100  # newest changes listed on a product page
RECENT_RUNS = 20
WINDOWS = (90, 365)  # days of the lowest / highest figures
KEY_COOKIE = "christmas_key"
KEY_COOKIE_DAYS = 30
_MAX_SKU = 64
_WORD = re.compile(r"\w")
# Only our own files; no script at all, no frames, forms posting to ourselves.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_PUBLIC_ENDPOINTS = ("web.static", "web.enter_key")


# --- query strings ---------------------------------------------------------------------------


class _FormParser(errors.Parser):
    """The API's parser (400 naming the parameter), reading blank form fields as not given."""

    def load_querystring(self, req, schema):
        given = MultiDict(
            (name, value.strip()) for name, value in req.args.items(multi=True) if value.strip()
        )
        return self._makeproxy(given, schema)


_parser = _FormParser()


def _shop(**kwargs) -> fields.String:
    return fields.String(
        validate=validate.OneOf(list(VENDORS), error="unknown shop {input!r}."), **kwargs
    )


class SearchArgs(schemas.Query):
    q = schemas.text(metadata={"description": "Words of the name, each a word prefix."})
    sku = schemas.text(_MAX_SKU)
    series = schemas.text()
    year = fields.Integer(validate=validate.Range(schemas.YEAR_MIN, schemas.YEAR_MAX))
    shop = _shop()
    in_stock = fields.Boolean(load_default=False)
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))

    @ma.validates_schema
    def _words(self, data: dict[str, Any], **_kwargs) -> None:
        if "q" in data and not _WORD.search(data["q"]):
            raise ma.ValidationError("must contain a letter or a digit.", "q")


class ChangesArgs(schemas.Query):
    days = fields.Integer(load_default=7, validate=validate.Range(1, 365))
    shop = _shop()
    event = fields.List(
        fields.String(validate=validate.OneOf(queries.EVENTS)),
        validate=validate.Length(min=1, max=len(queries.EVENTS)),
    )
    before = schemas.record_id()


def _arguments(schema: ma.Schema) -> dict[str, Any]:
    return _parser.parse(schema, request, location="query", unknown=ma.RAISE)


def _page_url(endpoint: str, args: Mapping[str, Any], **changes: Any) -> str:
    """This page's URL with the same parameters, some changed."""
    params = {name: value for name, value in {**args, **changes}.items() if value is not None}
    if params.get("page") == 1:
        del params["page"]
    if "in_stock" in params:
        if params["in_stock"]:
            params["in_stock"] = 1
        else:
            del params["in_stock"]
    return url_for(endpoint, **params)


# --- the key setting, headers, error pages --------------------------------------------------


def _settings() -> Config:
    return current_app.config["CHRISTMAS_CONFIG"]


def _presented_key() -> str | None:
    """As the API takes it (Authorization: Bearer, X-API-Key), or the cookie the key form set."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for value in (request.headers.get("X-API-Key"), request.cookies.get(KEY_COOKIE)):
        if value and value.strip():
            return value.strip()
    return None


@blueprint.before_request
def _require_key() -> None:
    """With `web_requires_key`, every page needs a valid API key (checked as the API checks
    it); the style sheet and the key form do not."""
    if not _settings().web_requires_key or request.endpoint in _PUBLIC_ENDPOINTS:
        return
    presented = _presented_key()
    if presented is None:
        raise Unauthorized("These pages need an API key.")
    key, reason = auth.check_key(presented)
    if key is None:
        raise Unauthorized(f"The API key is {reason}.")
    g.api_key = key


@blueprint.post("/key")
def enter_key():
    """The key form: a valid key is kept in an HttpOnly cookie (never in a URL, which proxies
    log), then the page asked for is shown."""
    presented = request.form.get("key", "").strip()
    key, reason = auth.check_key(presented) if presented else (None, "missing")
    if key is None:
        raise Unauthorized(f"The API key is {reason}.")
    response = redirect(_local(request.form.get("next", "")), code=303)
    response.set_cookie(
        KEY_COOKIE,
        presented,
        max_age=KEY_COOKIE_DAYS * 86400,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure or request.headers.get("X-Forwarded-Proto") == "https",
    )
    return response


def _local(target: str) -> str:
    """A path on this site, or the search page (never an open redirect)."""
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        return url_for("web.search")
    return target


@blueprint.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-cache"
        if _settings().web_requires_key:
            response.headers["Cache-Control"] = "private, no-cache"
            response.vary.update(("Authorization", "X-API-Key", "Cookie"))
    return response


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    data = getattr(error, "data", None) or {}
    message = data.get("message") or error.description or error.name
    response = current_app.response_class(
        render_template(
            "web/error.html",
            code=error.code,
            name=error.name,
            message=message,
            ask_key=error.code == 401,
            next=request.full_path.rstrip("?") if request.method == "GET" else "/",
        ),
        status=error.code,
    )
    if error.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="christmas"'
    return response


def _database_unavailable(error: SQLAlchemyError):
    logger.error("database error: %s", one_line(error))
    page = render_template(
        "web/error.html",
        code=503,
        name="Service Unavailable",
        message="The database is unavailable; try again shortly.",
    )
    return page, 503, {"Retry-After": "5"}


for _error in errors.DATABASE_UNAVAILABLE:
    blueprint.register_error_handler(_error, _database_unavailable)


@blueprint.errorhandler(Exception)
def _unexpected(error: Exception):
    logger.exception("unhandled error: %s", error)
    page = render_template(
        "web/error.html",
        code=500,
        name="Internal Server Error",
        message="Something went wrong on our side; it has been logged.",
    )
    return page, 500


# --- pages -----------------------------------------------------------------------------------


@blueprint.get("/")
def search():
    """Search by name, SKU, series, year, shop; in stock only; each shop's current price."""
    args = _arguments(SearchArgs())
    filters: dict[str, Any] = {}
    for name, key in (("q", "q"), ("sku", "sku"), ("series", "series"), ("year", "release_year")):
        if name in args:
            filters[key] = args[name]
    if "shop" in args:
        filters["vendor"] = [args["shop"]]
    if args["in_stock"]:
        filters["availability"] = ["available"]
    ornaments, more = queries.search(db.reader(), filters, args["page"], PER_PAGE)
    page = args["page"]
    return render_template(
        "web/search.html",
        args=args,
        ornaments=ornaments,
        vendors=VENDORS,
        searched=bool(set(args) - {"page", "in_stock"}) or args["in_stock"],
        previous_url=_page_url("web.search", args, page=page - 1) if page > 1 else None,
        next_url=_page_url("web.search", args, page=page + 1) if more else None,
    )


@blueprint.get("/sku/<path:sku>")
def sku_page(sku: str):
    """Every shop's offer of one SKU, its price history and its changes."""
    _arguments(schemas.Query())
    wanted = sku.strip().upper()
    if not wanted or len(wanted) > _MAX_SKU or not wanted.isprintable():
        raise _bad_sku(sku)
    offers = queries.sku_offers(db.reader(), wanted)
    if not offers:
        raise NotFound(f"No ornament has the SKU {wanted!r}.")
    return _product_page(offers, sku=wanted)


def _bad_sku(sku: str) -> BadRequest:
    shown = sku if len(sku) <= 40 else sku[:40] + "…"
    return BadRequest(
        f"{shown!r} is not a SKU: at most {_MAX_SKU} printable characters, such as QX1234."
    )


@blueprint.get("/products/<int:product_id>")
def product_page(product_id: int):
    """One listing; a listing with a SKU is shown on its SKU's page, beside the other shops."""
    _arguments(schemas.Query())
    found = queries.product(db.reader(), product_id) if product_id <= schemas.BIGINT_MAX else None
    if found is None:
        raise NotFound(f"No product {product_id}.")
    if found.sku:
        return redirect(url_for("web.sku_page", sku=found.sku, _anchor=f"offer-{found.id}"))
    return _product_page([found], sku=None)


def _product_page(offers: list, sku: str | None):
    connection = db.reader()
    now = datetime.now(UTC)
    styles = {vendor: index for index, vendor in enumerate(VENDORS)}
    views, series = [], []
    histories = history.product_histories(connection, [offer.id for offer in offers])
    for offer in offers:
        found = histories[offer.id]
        figures = {days: found.since(now - timedelta(days=days)).figures() for days in WINDOWS}
        views.append({"offer": offer, "figures": figures})
        series.append(
            charts.Series(
                vendor=offer.vendor,
                label=offer.vendor_name,
                product_id=offer.id,
                prices=[
                    charts.PricePoint(point.at, point.price, point.suspicious)
                    for point in found.prices
                ],
                stock=[
                    charts.StockPoint(point.at, point.availability in queries.IN_STOCK)
                    for point in found.availability
                ],
                style=styles.get(offer.vendor, 0),
            )
        )
    _label_repeated_shops(series)
    first = offers[0]
    shops = len({offer.vendor for offer in offers})
    title = f"Price history of {sku or first.name} at {_count(shops, 'shop')}"
    chart = charts.price_chart("price-chart", title, series, now, first.currency)
    changes, _ = queries.recent_changes(
        connection, limit=PRODUCT_CHANGES, product_ids=[offer.id for offer in offers]
    )
    return render_template(
        "web/product.html",
        sku=sku,
        first=first,
        offers=views,
        chart=chart,
        overall=_overall(views),
        windows=WINDOWS,
        changes=changes,
        changes_limit=PRODUCT_CHANGES,
    )


def _label_repeated_shops(series: list[charts.Series]) -> None:
    """Two listings at one shop (box / no box…) get their product id in the legend."""
    seen: dict[str, int] = {}
    for one in series:
        seen[one.vendor] = seen.get(one.vendor, 0) + 1
    for index, one in enumerate(series):
        if seen[one.vendor] > 1:
            series[index] = replace(one, label=f"{one.label} (#{one.product_id})")


def _overall(views: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Lowest and highest over each window at any shop."""
    result = {}
    for days in WINDOWS:
        figures = [view["figures"][days] for view in views]
        lows = [found.lowest for found in figures if found.lowest is not None]
        highs = [found.highest for found in figures if found.highest is not None]
        result[days] = {"lowest": min(lows, default=None), "highest": max(highs, default=None)}
    return result


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


@blueprint.get("/changes")
def changes_page():
    """Price drops and restocks of the last days, newest first."""
    args = _arguments(ChangesArgs())
    events = args.get("event") or list(queries.EVENTS)
    found, before = queries.recent_changes(
        db.reader(),
        limit=CHANGES_PER_PAGE,
        since=datetime.now(UTC) - timedelta(days=args["days"]),
        events=events,
        vendors=[args["shop"]] if "shop" in args else None,
        before_id=args.get("before"),
    )
    return render_template(
        "web/changes.html",
        args=args,
        events=events,
        changes=found,
        vendors=VENDORS,
        day_choices=(1, 3, 7, 14, 30, 90, 365),
        older_url=_page_url("web.changes_page", args, before=before) if before else None,
        newest_url=_page_url("web.changes_page", args, before=None) if "before" in args else None,
    )


@blueprint.get("/runs")
def runs_page():
    """The last crawl run of each vendor × year, and the latest runs; failures stand out."""
    _arguments(schemas.Query())
    connection = db.reader()
    return render_template(
        "web/runs.html",
        grid=queries.run_grid(connection, tuple(VENDORS)),
        runs=queries.latest_runs(connection, RECENT_RUNS),
        vendors=VENDORS,
    )


blueprint.add_app_template_filter(formatting.money, "money")
blueprint.add_app_template_filter(formatting.utc, "utc")
blueprint.add_app_template_filter(formatting.iso, "iso")
blueprint.add_app_template_filter(formatting.stock, "stock")
blueprint.add_app_template_filter(formatting.change_text, "change_text")
blueprint.add_app_template_filter(event_of, "event")  # price_drop, restock… as /v1/changes
blueprint.add_app_template_filter(formatting.run_target, "run_target")
