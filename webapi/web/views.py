"""The blueprint and its pages: search, recent changes, crawl status; one SKU and one listing
lead to their ornament's page (`ornament_pages`: ornaments and series).

Every page is a GET whose query string is validated like the API's (`forms`); the key setting
and the security headers (`security`) and the error pages (`error_pages`) are registered here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from werkzeug.exceptions import BadRequest, NotFound

from christmas_spiders.storage import history
from christmas_spiders.vendors import VENDORS
from webapi import db, ornament_queries, schemas
from webapi.web import error_pages, formatting, queries, security
from webapi.web.forms import MAX_SKU, ChangesArgs, SearchArgs, arguments, page_url
from webapi.web.offer_history import WINDOWS, offer_history

blueprint = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)
blueprint.before_request(security.require_key)
blueprint.after_request(security.add_headers)
blueprint.add_url_rule("/key", view_func=security.enter_key, methods=["POST"])
error_pages.register(blueprint)

PER_PAGE = 25
CHANGES_PER_PAGE = 50
PRODUCT_CHANGES = 100  # newest changes listed on a product page
RECENT_RUNS = 20


@blueprint.get("/")
def search():
    """Search by name, SKU, series, year, shop; in stock only; each shop's current price."""
    args = arguments(SearchArgs())
    filters: dict[str, Any] = {}
    for name, key in (("q", "q"), ("series", "series"), ("year", "release_year")):
        if name in args:
            filters[key] = args[name]
    if "shop" in args:
        filters["vendor"] = [args["shop"]]
    if args["in_stock"]:
        filters["availability"] = ["available"]
    ornaments, more = queries.search(
        db.reader(), filters, args["page"], PER_PAGE, sku=args.get("sku")
    )
    page = args["page"]
    return render_template(
        "web/search.html",
        args=args,
        ornaments=ornaments,
        vendors=VENDORS,
        searched=bool(set(args) - {"page", "in_stock"}) or args["in_stock"],
        previous_url=page_url("web.search", args, page=page - 1) if page > 1 else None,
        next_url=page_url("web.search", args, page=page + 1) if more else None,
    )


@blueprint.get("/sku/<path:sku>")
def sku_page(sku: str):
    """A SKU in any form: its ornament's page, or the search for it when Hallmark used its item
    number in several years; a listing the rules could not link has a page of its own."""
    arguments(schemas.Query())
    wanted = sku.strip().upper()
    if not wanted or len(wanted) > MAX_SKU or not wanted.isprintable():
        raise _bad_sku(sku)
    connection = db.reader()
    found = connection.execute(ornament_queries.sku_ornament_ids(wanted)).scalars().all()
    if len(found) == 1:
        return redirect(url_for("web.ornament_page", ornament_id=found[0]))
    if found:
        return redirect(url_for("web.search", sku=wanted))
    listings = queries.sku_listings(connection, wanted)
    if not listings:
        raise NotFound(f"No ornament has the SKU {wanted!r}.")
    return listing_page(listings)


def _bad_sku(sku: str) -> BadRequest:
    shown = sku if len(sku) <= 40 else sku[:40] + "…"
    return BadRequest(
        f"{shown!r} is not a SKU: at most {MAX_SKU} printable characters, such as QX1234."
    )


@blueprint.get("/products/<int:product_id>")
def product_page(product_id: int):
    """One listing: shown on its ornament's page, beside the other shops' offers; a listing the
    rules could not link has a page of its own."""
    arguments(schemas.Query())
    found = queries.product(db.reader(), product_id) if product_id <= schemas.BIGINT_MAX else None
    if found is None:
        raise NotFound(f"No product {product_id}.")
    if found.ornament_id is not None:
        return redirect(
            url_for("web.ornament_page", ornament_id=found.ornament_id, _anchor=f"offer-{found.id}")
        )
    return listing_page([found])


def listing_page(offers: list):
    """Listings not linked to an ornament (rows of queries.product or sku_listings)."""
    connection = db.reader()
    ids = [offer.id for offer in offers]
    histories = history.product_histories(connection, ids)
    first = offers[0]
    page = offer_history(offers, histories, datetime.now(UTC), first.sku or first.name)
    changes, _ = queries.recent_changes(connection, limit=PRODUCT_CHANGES, product_ids=ids)
    return render_template(
        "web/product.html",
        first=first,
        offers=page.offers,
        chart=page.chart,
        overall=page.overall,
        windows=WINDOWS,
        changes=changes,
        changes_limit=PRODUCT_CHANGES,
    )


@blueprint.get("/changes")
def changes_page():
    """Price drops and restocks of the last days, newest first."""
    args = arguments(ChangesArgs())
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
        older_url=page_url("web.changes_page", args, before=before) if before else None,
        newest_url=page_url("web.changes_page", args, before=None) if "before" in args else None,
    )


@blueprint.get("/runs")
def runs_page():
    """The last crawl run of each vendor × year, and the latest runs; failures stand out."""
    arguments(schemas.Query())
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
blueprint.add_app_template_filter(formatting.run_target, "run_target")
blueprint.add_app_template_filter(formatting.condition_text, "condition")
blueprint.add_app_template_filter(formatting.numbers, "numbers")
