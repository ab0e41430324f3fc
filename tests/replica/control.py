"""The control API under /__replica__/ on every shop origin (no spider follows it; robots.txt
disallows it). It reads the ground truth and changes the running shop:

    GET  /__replica__/health
    GET  /__replica__/catalog[?offset=&limit=]   ground truth of this shop (with overrides)
    GET  /__replica__/catalog/<vendor_product_id>
    POST /__replica__/products/<vendor_product_id>  {"price": "12.50", "regular_price": null,
         "msrp": ..., "availability": "unavailable", "availability_text": ..., "name": ...,
         "sku": ..., "gone": true, "listed": false, "tile_price": "9.99", "tile_broken": true}
         (listed: false takes it off every listing and deletes its page, true puts it back;
         tile_price / tile_broken: what its listing tile shows, its page unchanged)
    POST /__replica__/throttle   {"every": 5, "burst": 0, "status": 429, "retry_after": 1}
    POST /__replica__/latency    {"ms": 200}
    POST /__replica__/faults     {"path": "/x_p_1.html" (optional: else the shop's next
         requests), "skip": 0, "faults": [{"kind": "reset", "times": 1}, ...]} (faults.py)
    POST /__replica__/robots     {"disallow": ["/x_p_1.html", ...]}  lines added to robots.txt
    POST /__replica__/theme      {"broken": ["price", "availability_text", "name", "listing"],
         "empty_years": [2018]}  a broken theme (state.Theme); {} restores the shop's own
    GET  /__replica__/stats      request counts by path kind and status, most in flight at once
    GET  /__replica__/requests[?kind=product]   the paths requested, in order (the request log)
    POST /__replica__/reset      drop overrides, counts, throttle, latency and theme changes

Every answer is JSON; errors are {"error": "<one sentence>"} with a 4xx status.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.wrappers import Request, Response

from .catalog import category_record, product_record
from .faults import Fault, FaultPlan
from .models import AVAILABLE, EXPECT_GONE, EXPECT_ITEM, PREORDER, STATUS_OK, UNAVAILABLE
from .products import AVAILABILITY_TEXTS
from .shops.base import Shop
from .state import THEME_BREAKS, ShopState, Theme, Throttle

PREFIX = "/__replica__"
_PRODUCT = re.compile(r"/(?:catalog|products)/(\d+)")
_OVERRIDABLE = {"price", "regular_price", "msrp", "availability", "availability_text", "name"}
_OVERRIDABLE |= {"sku", "gone"}
_LISTING = {"listed", "tile_price", "tile_broken"}  # how the listings show a product


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status, content_type="application/json")


def handle(shop: Shop, request: Request) -> Response:
    origin = request.host_url.rstrip("/")
    path = request.path.removeprefix(PREFIX)
    try:
        return _route(shop, request, origin, path)
    except ControlError as error:
        return _json({"error": str(error)}, error.status)


def _route(shop: Shop, request: Request, origin: str, path: str) -> Response:
    state = shop.state
    method = request.method
    product_match = _PRODUCT.fullmatch(path)
    if (method, path) == ("GET", "/health"):
        return _json({"vendor": shop.vendor, "ok": True, "size": len(shop.catalog)})
    if (method, path) == ("GET", "/catalog"):
        return _json(_catalog(shop, request, origin))
    if (method, path) == ("GET", "/stats"):
        return _json({"vendor": shop.vendor, **state.stats()})
    if (method, path) == ("GET", "/requests"):
        kind = request.args.get("kind") or None
        return _json({"vendor": shop.vendor, "kind": kind, "paths": state.requests(kind)})
    if (method, path) == ("POST", "/reset"):
        state.reset()
        return _json({"vendor": shop.vendor, "reset": True})
    if (method, path) == ("POST", "/throttle"):
        state.set_throttle(_throttle(_body(request)))
        return _json({"vendor": shop.vendor, "throttle": state.throttle.as_json()})
    if (method, path) == ("POST", "/latency"):
        milliseconds = _body(request).get("ms", 0)
        if not isinstance(milliseconds, int) or milliseconds < 0:
            raise ControlError(400, "latency 'ms' must be a non-negative integer")
        state.latency_ms = milliseconds
        return _json({"vendor": shop.vendor, "latency_ms": milliseconds})
    if (method, path) == ("POST", "/faults"):
        return _json({"vendor": shop.vendor, **_set_faults(state, _body(request))})
    if (method, path) == ("POST", "/theme"):
        state.theme = _theme(shop, _body(request))
        return _json({"vendor": shop.vendor, **state.theme.as_json()})
    if (method, path) == ("POST", "/robots"):
        disallow = _body(request).get("disallow", [])
        if not isinstance(disallow, list) or not all(
            isinstance(item, str) and item.startswith("/") for item in disallow
        ):
            raise ControlError(400, "robots 'disallow' must be a list of paths starting with /")
        state.robots_disallow = tuple(disallow)
        return _json({"vendor": shop.vendor, "disallow": disallow})
    if product_match and method in ("GET", "POST"):
        product = state.by_id(product_match[1])
        if product is None:
            raise ControlError(404, f"{shop.vendor} has no product {product_match[1]}")
        if method == "POST" and path.startswith("/products/"):
            body = _body(request)
            listing = {key: body.pop(key) for key in _LISTING & set(body)}
            changes = _changes(shop, body)
            if "listed" in listing:
                listed = bool(listing["listed"])
                changes["status"] = STATUS_OK if listed else shop.deleted_status
                changes["expect"] = EXPECT_ITEM if listed else EXPECT_GONE
                state.set_listed(product.index, listed)
            tile = {}
            if "tile_price" in listing:
                tile["price"] = _price("tile_price", listing["tile_price"])
            if "tile_broken" in listing:
                tile["broken"] = bool(listing["tile_broken"])
            if tile:
                state.set_tile(product.index, tile)
            product = state.override(product.index, changes)
        return _json(product_record(shop.catalog, product, origin))
    raise ControlError(404, f"no control endpoint {method} {PREFIX}{path}")


def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise ControlError(400, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ControlError(400, "the request body must be a JSON object")
    return body


def _catalog(shop: Shop, request: Request, origin: str) -> dict[str, Any]:
    catalog = shop.catalog
    offset = request.args.get("offset", "0")
    limit = request.args.get("limit", str(len(catalog)))
    if not (offset.isdigit() and limit.isdigit()):
        raise ControlError(400, "offset and limit must be non-negative integers")
    start, stop = int(offset), int(offset) + int(limit)
    return {
        "vendor": shop.vendor,
        "origin": origin,
        "seed": catalog.seed,
        "size": len(catalog),
        "offset": start,
        "index_url": origin + catalog.index.path,
        "categories": [category_record(c, origin) for c in catalog.categories.values()],
        "pages": [
            {"edge_case": case.edge_case, "path": case.path, "note": case.note}
            for case in catalog.layout.page_cases
        ],
        "edge_cases": catalog.edge_case_coverage(),
        "products": [
            product_record(catalog, shop.state.product(index), origin)
            for index in range(start, min(stop, len(catalog)))
        ],
    }


def _price(name: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ControlError(400, f'{name} must be a decimal string such as "12.50"') from None
    if not amount.is_finite() or amount < 0:
        raise ControlError(400, f"{name} must be a non-negative amount")
    return amount.quantize(Decimal("0.01")) if amount else None


def _changes(shop: Shop, body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - _OVERRIDABLE)
    if unknown:
        raise ControlError(
            400,
            f"cannot change {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_OVERRIDABLE | _LISTING))}",
        )
    changes: dict[str, Any] = {}
    for name in ("price", "regular_price", "msrp"):
        if name in body:
            changes[name] = _price(name, body[name])
    if "availability" in body:
        availability = body["availability"]
        if availability not in (AVAILABLE, PREORDER, UNAVAILABLE):
            raise ControlError(400, "availability must be available, preorder or unavailable")
        changes["availability"] = availability
        changes["availability_text"] = AVAILABILITY_TEXTS[shop.vendor][availability]
    for name, field in (("availability_text", "availability_text"), ("name", "raw_name")):
        if name in body:
            if not isinstance(body[name], str) or not body[name].strip():
                raise ControlError(400, f"{name} must be a non-empty string")
            changes[field] = body[name]
    if "sku" in body:
        if body["sku"] is not None and not isinstance(body["sku"], str):
            raise ControlError(400, "sku must be a string or null")
        changes["raw_sku"] = body["sku"]
    if "gone" in body:
        gone = bool(body["gone"])
        changes["status"] = shop.deleted_status if gone else STATUS_OK
        changes["expect"] = EXPECT_GONE if gone else EXPECT_ITEM
    return changes


def _set_faults(state: ShopState, body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - {"path", "skip", "faults"})
    if unknown:
        raise ControlError(400, f"unknown field(s) {', '.join(unknown)}; use path, skip, faults")
    path, skip, faults = body.get("path"), body.get("skip", 0), body.get("faults", [])
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise ControlError(400, "faults 'path' must be a path starting with / (or absent)")
    if not isinstance(skip, int) or skip < 0:
        raise ControlError(400, "faults 'skip' must be a non-negative integer")
    if not isinstance(faults, list):
        raise ControlError(400, "'faults' must be a list of faults ([] switches them off)")
    try:
        plan = FaultPlan([Fault.from_json(fault) for fault in faults], skip) if faults else None
    except ValueError as error:
        raise ControlError(400, str(error)) from None
    state.set_faults(plan, path)
    return {"path": path, **(plan.as_json() if plan else {"skip": 0, "faults": []})}


def _theme(shop: Shop, body: dict[str, Any]) -> Theme:
    unknown = sorted(set(body) - {"broken", "empty_years"})
    if unknown:
        raise ControlError(400, f"unknown field(s) {', '.join(unknown)}; use broken, empty_years")
    broken, empty_years = body.get("broken", []), body.get("empty_years", [])
    if not isinstance(broken, list) or not set(broken) <= set(THEME_BREAKS):
        raise ControlError(400, f"theme 'broken' must be a list of {', '.join(THEME_BREAKS)}")
    if not isinstance(empty_years, list) or not all(isinstance(y, int) for y in empty_years):
        raise ControlError(400, "theme 'empty_years' must be a list of years")
    return Theme(frozenset(broken), shop.per_page, frozenset(empty_years))


def _throttle(body: dict[str, Any]) -> Throttle:
    every, burst = body.get("every"), body.get("burst", 0)
    status, retry_after = body.get("status", 429), body.get("retry_after", 1)
    if every is not None and (not isinstance(every, int) or every < 1):
        raise ControlError(400, "throttle 'every' must be a positive integer or null")
    if not isinstance(burst, int) or burst < 0:
        raise ControlError(400, "throttle 'burst' must be a non-negative integer")
    if status not in (429, 503):
        raise ControlError(400, "throttle 'status' must be 429 or 503")
    if not isinstance(retry_after, int) or retry_after < 0:
        raise ControlError(400, "throttle 'retry_after' must be a non-negative integer")
    return Throttle(every=every, burst=burst, status=status, retry_after=retry_after)
