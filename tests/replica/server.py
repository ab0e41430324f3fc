"""Serving the three shops from one process: one threaded Werkzeug server per shop origin.

`ReplicaApp` is the single WSGI application (each server hands it its shop); `serve()` binds
the three ports, reports the origins, and runs until `stop` is set.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from . import control, faults
from .catalog import Catalog
from .models import VENDORS
from .shops import SHOP_CLASSES, Shop
from .shops.base import make_environment
from .state import ShopState, Throttle

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VENDORS, 0))
    latency_ms: int = 0
    jsonld: bool = False
    throttle: Throttle = field(default_factory=Throttle)
    access_log: bool = False

    def __post_init__(self) -> None:
        if self.host != "localhost" and not ipaddress.ip_address(self.host).is_loopback:
            raise ValueError(f"--host must be a loopback address, not {self.host}")
        if self.latency_ms < 0:
            raise ValueError("--latency-ms must not be negative")


class ReplicaApp:
    """The three shops as one WSGI application; `for_vendor()` binds a server to one shop."""

    def __init__(self, catalog: Catalog, options: ServerOptions) -> None:
        env = make_environment()
        self.shops: dict[str, Shop] = {}
        for vendor in VENDORS:
            state = ShopState(catalog[vendor], options.latency_ms, options.throttle)
            self.shops[vendor] = SHOP_CLASSES[vendor](state, env, jsonld=options.jsonld)

    def for_vendor(self, vendor: str) -> WSGIApp:
        shop = self.shops[vendor]

        def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            response = self.respond(shop, Request(environ))
            return response(environ, start_response)

        return application

    def respond(self, shop: Shop, request: Request) -> Response:
        if request.path == control.PREFIX or request.path.startswith(control.PREFIX + "/"):
            return control.handle(shop, request)
        state = shop.state
        with state.serving():
            fault = state.take_fault(request.path)
            throttle = state.take_throttle() if fault is None else None
            if state.latency_ms:
                time.sleep(state.latency_ms / 1000)
            if fault is not None and fault.kind in faults.ANSWERS:
                kind, response = "faulted", faults.answer(fault, request)
            elif throttle is not None:
                kind, response = "throttled", _throttled(throttle)
            else:
                try:
                    kind, response = shop.dispatch(request)
                except Exception:  # one broken page must not take the shop down; tests see 500
                    log.exception("%s: error rendering %s", shop.vendor, request.full_path)
                    kind, response = "error", Response("internal error\n", 500)
                if fault is not None:
                    response = faults.hostile_page(fault, response, request)
            path = request.path + (
                f"?{request.query_string.decode()}" if request.query_string else ""
            )
            state.record(kind, response.status_code, path)
        return response


def _throttled(throttle: Throttle) -> Response:
    reason = "Too Many Requests" if throttle.status == 429 else "Service Unavailable"
    response = Response(
        f"<html><body><h1>{throttle.status} {reason}</h1></body></html>",
        throttle.status,
        content_type="text/html; charset=utf-8",
    )
    response.headers["Retry-After"] = str(throttle.retry_after)
    return response


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (errors are still logged)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def serve(
    catalog: Catalog,
    options: ServerOptions,
    ready: Callable[[dict[str, str]], None],
    stop: threading.Event,
) -> None:
    """Serve until `stop` is set; `ready` receives {vendor: origin} once every port listens."""
    app = ReplicaApp(catalog, options)
    for shop in catalog:
        shop.warm()
    handler = WSGIRequestHandler if options.access_log else _QuietHandler
    servers: dict[str, BaseWSGIServer] = {}
    running: list[BaseWSGIServer] = []
    try:
        for vendor in VENDORS:
            servers[vendor] = make_server(
                options.host,
                options.ports.get(vendor, 0),
                app.for_vendor(vendor),
                threaded=True,
                request_handler=handler,
            )
        for vendor, server in servers.items():
            name = f"replica-{vendor}"
            serve_forever = functools.partial(server.serve_forever, poll_interval=0.1)
            threading.Thread(target=serve_forever, name=name, daemon=True).start()
            running.append(server)
        host = f"[{options.host}]" if ":" in options.host else options.host
        ready({vendor: f"http://{host}:{server.port}" for vendor, server in servers.items()})
        stop.wait()
        log.info("stopping the replica")
    finally:
        for server in running:
            server.shutdown()
        for server in servers.values():
            server.server_close()
