"""What the three shop renderers share: routing by regex, Jinja templates, money, redirects.

A shop is a list of `Route`s (a path regex, a path kind for the stats, a handler). Handlers
get a `Page` (the request and its origin) and return a Werkzeug `Response`; every link they
render is absolute with the request's own origin unless a fixture asks for a relative one.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape
from werkzeug.wrappers import Request, Response

from ..models import STATUS_GONE, Product
from ..state import ShopState

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
HTML = "text/html; charset=utf-8"


def money(value: Decimal | None) -> str:
    """US format: 1299 → '$1,299.00'; None → '$0.00' (what 3dcart shows without a price)."""
    return f"${value or 0:,.2f}"


def json_number(value: Decimal | None) -> int | float:
    """A price as a JSON number the way platforms write it: 17.95, 1299, 0."""
    if value is None:
        return 0
    return int(value) if value == value.to_integral_value() else float(value)


def script_json(value: Any) -> str:
    """Compact JSON safe inside <script> (no '</')."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def text(value: str) -> Markup:
    """Escape for HTML text, writing no-break spaces as &nbsp; as shops do."""
    return Markup(str(escape(value)).replace("\u00a0", "&nbsp;"))


def attr_quot(value: str) -> Markup:
    """Escape for an attribute with &quot; (as 3dcart writes breadcrumb content attributes)."""
    return Markup(str(escape(value)).replace("&#34;", "&quot;"))


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(money=money, text=text, attr_quot=attr_quot)
    return env


@dataclass(frozen=True)
class Page:
    """One request as a handler sees it."""

    request: Request
    origin: str  # scheme://host:port of the request, no trailing slash

    def url(self, path: str) -> str:
        return self.origin + path

    def arg(self, name: str, default: str = "") -> str:
        return self.request.args.get(name, default)

    def int_arg(self, name: str, default: int) -> int:
        value = self.request.args.get(name, "")
        return int(value) if value.isdigit() else default


Handler = Callable[[Page, re.Match[str]], "Response | tuple[str, Response]"]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    kind: str  # path kind for /__replica__/stats
    handler: Handler


def route(pattern: str, kind: str, handler: Handler) -> Route:
    return Route(re.compile(pattern), kind, handler)


class Shop:
    """Base of the three shop renderers."""

    vendor: ClassVar[str]
    folder: ClassVar[str]  # template folder under templates/

    def __init__(self, state: ShopState, env: Environment, *, jsonld: bool = False) -> None:
        self.state = state
        self.catalog = state.catalog
        self.env = env
        self.jsonld = jsonld
        self._routes = [
            *self.routes(),
            route(r"/robots\.txt", "robots", self._robots),
            route(r"/(?:assets|images|product_images)/.+\.(?:jpe?g|gif|png)", "asset", self._pixel),
            route(r"/thumbnail\.asp|/favicon\.ico", "asset", self._pixel),
        ]

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def not_found(self, page: Page) -> Response:
        raise NotImplementedError

    robots_disallow: ClassVar[tuple[str, ...]] = ()
    per_page: ClassVar[int]  # products on a listing page (a broken theme may show only one)
    deleted_status: ClassVar[str] = STATUS_GONE  # what a product deleted via the API answers
    sitemap_path: ClassVar[str] = "/sitemap.xml"

    def dispatch(self, request: Request) -> tuple[str, Response]:
        page = Page(request, request.host_url.rstrip("/"))
        for candidate in self._routes:
            match = candidate.pattern.fullmatch(request.path)
            if match:
                answer = candidate.handler(page, match)
                if isinstance(answer, tuple):  # the handler refined the path kind
                    return answer
                return candidate.kind, answer
        return "not_found", self.not_found(page)

    # --- helpers for handlers -----------------------------------------------------------------

    def render(self, template: str, page: Page, status: int = 200, **context: Any) -> Response:
        body = self.env.get_template(f"{self.folder}/{template}").render(
            origin=page.origin, page=page, shop=self, **context
        )
        return Response(body, status=status, content_type=HTML)

    def redirect(self, page: Page, path: str, code: int = 301) -> Response:
        response = Response(f"Moved to {page.url(path)}\n", status=code, content_type=HTML)
        response.headers["Location"] = page.url(path)
        return response

    def href(self, page: Page, product: Product) -> str:
        """How a listing links to a product (relative for the E20 fixtures)."""
        if "relative_href" in product.quirks:
            return product.listed_path.lstrip("/")
        return page.url(product.listed_path)

    def _robots(self, page: Page, match: re.Match[str]) -> Response:
        lines = ["User-agent: *", "Disallow: /__replica__/"]
        disallowed = (*self.robots_disallow, *self.state.robots_disallow)
        lines += [f"Disallow: {path}" for path in disallowed]
        lines.append(f"Sitemap: {page.url(self.sitemap_path)}")
        return Response("\n".join(lines) + "\n", content_type="text/plain; charset=utf-8")

    def _pixel(self, page: Page, match: re.Match[str]) -> Response:
        return Response(PIXEL, content_type="image/gif")

    def static_script(self, name: str) -> Response:
        body = (STATIC / name).read_text(encoding="utf-8")
        return Response(body, content_type="application/javascript; charset=utf-8")


def xml_response(chunks: Any) -> Response:
    """A streamed XML document (sitemaps of large catalogs are never held in memory)."""
    return Response(chunks, content_type="application/xml; charset=utf-8")
