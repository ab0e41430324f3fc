"""`make demo-up` (`python -m demo live`): the whole system, live, against the replica shops.

    replica   the three shops of the demo (tests/replica), on the demo's ports
    bin/up    every Procfile process (web, scheduler, auditor, crawler) as `make up` runs them,
              with a configuration file written to the data folder that points the spiders
              at the replica and syncs every year every `--sync-every` (default 3 min)
    shop      every `--move-every` (90 s), at each scheduled shop, one ornament the tracker
              has seen at its current price drops in price, and another sells out, comes
              back in stock or gets dearer; each line names the product's page
    alert     an Apprise `json://` subscriber's alerts (price drops, back in stock), printed
              by a receiver on 127.0.0.1 as they arrive; the log subscriber "journal" prints
              every change in the auditor's lines

So a price drop can be followed from the shop (`shop`) to a sync (`scheduler`), the history
(`auditor`, journal), an alert (`alert`) and the chart (its page, http://127.0.0.1:$PORT).
Ctrl-C or SIGTERM stops bin/up, which stops every process, then the replica.
`CHRISTMAS_SCHEDULE` (JSON) still overrides the schedule written here.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from christmas_spiders import config
from christmas_spiders.config.keys import CONFIG_DIR
from christmas_spiders.errors import one_line
from christmas_spiders.storage import SchemaMismatch, check_schema, get_engine
from christmas_spiders.storage.schema import products
from christmas_spiders.vendors import VENDORS
from demo.shops import ends_95, start_replica
from tests.replica.client import Replica, ReplicaError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_output_lock = threading.Lock()


def say(name: str, text: str) -> None:
    """One line of output, prefixed by its source as bin/up prefixes its processes'."""
    with _output_lock:
        for line in text.splitlines() or [""]:
            sys.stdout.write(f"{name:<9} | {line}\n")
        sys.stdout.flush()


# -- the alerts ------------------------------------------------------------------------------------


class _AlertHandler(BaseHTTPRequestHandler):
    """Apprise's json:// notification: {"title", "message", "type", …}; printed, answered 200."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            notification = json.loads(body)
            title, message = notification["title"], notification["message"]
        except (ValueError, KeyError, TypeError):
            self.send_error(400, "expected Apprise's JSON notification")
            return
        say("alert", f"{title}\n  " + "\n  ".join(str(message).splitlines()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the alert lines say it all."""


def start_alert_receiver() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlertHandler)
    threading.Thread(target=server.serve_forever, name="alerts", daemon=True).start()
    return server


# -- the shops moving ------------------------------------------------------------------------------


class Mover:
    """Every `every` seconds, a round of moves at each shop (see the module doc)."""

    def __init__(self, replica: Replica, settings: config.Config, every: float, port: str):
        self.replica, self.settings, self.every, self.port = replica, settings, every, port
        self.vendors = settings.schedule.vendors
        self.stopped = threading.Event()
        self.rng = random.Random(1)
        self.round = 0
        self.thread = threading.Thread(target=self._run, name="shop", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                check_schema(get_engine(self.settings))
            except (SchemaMismatch, SQLAlchemyError):
                continue  # bin/up's release has not migrated the database yet
            for vendor in self.vendors:
                try:
                    self._move(vendor)
                except (SQLAlchemyError, ReplicaError, OSError) as error:
                    say("shop", f"{vendor}: no move this time: {one_line(error)}")
            self.round += 1

    def _seen(self, vendor: str) -> dict[str, tuple[int, str, Decimal | None, str]]:
        """The shop's listed products as the tracker last saw them, by the shop's id, those
        synced longest ago first (their year is synced next: the move shows soonest)."""
        query = (
            sa.select(
                products.c.vendor_product_id,
                products.c.id,
                products.c.name,
                products.c.price,
                products.c.availability,
            )
            .where(products.c.vendor == vendor, products.c.delisted_at.is_(None))
            .order_by(products.c.last_synced_at, products.c.id)
        )
        with get_engine(self.settings).connect() as connection:
            return {row[0]: tuple(row[1:]) for row in connection.execute(query)}

    def _move(self, vendor: str) -> None:
        seen = self._seen(vendor)
        if not seen:
            return  # not synced yet: a change now would only be its first listing
        live = self.replica.live_catalog(vendor)["products"]
        order = {product_id: place for place, product_id in enumerate(seen)}
        synced = sorted(  # ordinary products the tracker has seen as the shop shows them now
            (
                record
                for record in live
                if record["expect"] == "item"
                and not record["edge_cases"]
                and record["vendor_product_id"] in seen
                and record["expected_item"]["price"]
                and seen[record["vendor_product_id"]][2]
                == Decimal(record["expected_item"]["price"])
                and seen[record["vendor_product_id"]][3] == record["expected_item"]["availability"]
            ),
            key=lambda record: order[record["vendor_product_id"]],
        )
        kind = ("sold out", "back in stock", "price rise")[self.round % 3]
        for wanted in ("price drop", kind):
            want = "unavailable" if wanted == "back in stock" else "available"
            choices = [r for r in synced if r["expected_item"]["availability"] == want]
            if choices:
                record = self.rng.choice(choices[:5])  # among those synced longest ago
                synced.remove(record)
                self._make(vendor, record, wanted, seen[record["vendor_product_id"]])

    def _make(self, vendor: str, record: dict[str, Any], kind: str, seen: tuple) -> None:
        product_id, name, price, availability = seen
        if kind == "price drop":
            new = ends_95(price * Decimal(self.rng.choice(("0.75", "0.8", "0.85"))), ROUND_FLOOR)
            change, shown = {"price": str(new)}, f"${price} → ${new}"
        elif kind == "price rise":
            new = ends_95(price * Decimal("1.15"), ROUND_CEILING)
            change, shown = {"price": str(new)}, f"${price} → ${new}"
        else:
            new_availability = "unavailable" if kind == "sold out" else "available"
            change, shown = (
                {"availability": new_availability},
                f"{availability} → {new_availability}",
            )
        self.replica.set_product(vendor, record["vendor_product_id"], **change)
        say(
            "shop",
            f"{VENDORS[vendor].display_name}: {name}: {shown} ({kind}); "
            f"its page: http://127.0.0.1:{self.port}/products/{product_id}",
        )


# -- the whole system ------------------------------------------------------------------------------

# Lines of bin/up's output that tell a newcomer nothing (every crawl's Scrapy start-up and
# stats), kept out of the terminal with their continuation lines; the log file has them all.
_LOG_LINE = re.compile(r"^(\S+) +\| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+ ([\w.]+):")
_CONTINUED = re.compile(r"^(\S+) +\| \s")
_NOISE = (
    "scrapy.utils.log",
    "scrapy.middleware",
    "scrapy.crawler",
    "scrapy.addons",
    "scrapy.core.engine",
    "scrapy.extensions.logstats",
    "scrapy.extensions.telnet",
    "scrapy.statscollectors",
)


def relay(output: IO[str], log_path: Path) -> None:
    """Copy bin/up's output to `log_path`, and to the terminal but for its noise."""
    hidden: dict[str, bool] = {}  # per process: its last log line is noise
    with log_path.open("a", encoding="utf-8") as log:
        for line in output:
            log.write(line)
            log.flush()
            if match := _LOG_LINE.match(line):
                hidden[match[1]] = match[2] in _NOISE
                show = not hidden[match[1]]
            elif match := _CONTINUED.match(line):
                show = not hidden.get(match[1], False)
            else:
                show = True
            if show:
                with _output_lock:
                    sys.stdout.write(line)
                    sys.stdout.flush()


def write_config(replica: Replica, data_dir: Path, sync_every: float) -> Path:
    """config/default.json, the spiders pointed at the replica, and a sync of every year every
    `sync_every` seconds, spread over that time."""
    settings = json.loads((CONFIG_DIR / "default.json").read_text())
    settings.pop("$comment", None)
    settings["vendors"] = {vendor: {"base_url": url} for vendor, url in replica.base_urls.items()}
    every = f"{sync_every:g}s"
    settings["schedule"] = {
        "sync": {"interval": every, "spread": every, "misfire_grace": every, "budget": "15m"}
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo-up.json"
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return path


def subscribers(receiver: ThreadingHTTPServer) -> list[dict[str, Any]]:
    """The journal (every change but first listings, in the auditor's log) and the alerts."""
    host, port = receiver.server_address[:2]
    return [
        {"name": "journal", "log": True, "kinds": ["changed", "delisted", "relisted"]},
        {
            "name": "demo-alerts",
            "apprise": f"json://{host}:{port}/alerts",
            "alerts": [{"rule": "price_drop"}, {"rule": "back_in_stock"}],
        },
    ]


def main(move_every: float, sync_every: float) -> int:
    port = os.environ.get("PORT", "8000")
    data_dir = config.load_for_command().data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "demo-up.log"
    replica = start_replica(log_path=data_dir / "replica.log")
    receiver = start_alert_receiver()
    environ = dict(os.environ, PORT=port, PYTHONUNBUFFERED="1")
    environ["CONFIG_PATH"] = str(write_config(replica, data_dir, sync_every))
    environ["CHRISTMAS_SUBSCRIBERS"] = json.dumps(subscribers(receiver))
    # A crawl shared through Redis ends once idle this long (10 s by default): the demo's
    # many short crawls end sooner.
    environ.setdefault("CHRISTMAS_CRAWL_IDLE_SECONDS", "2")
    settings = config.load(environ)  # CHRISTMAS_SCHEDULE may override the file's schedule
    say("demo", "the replica shops: " + ", ".join(replica.base_urls.values()))
    say(
        "demo",
        f"the shops move every {move_every:g} s; every year of "
        f"{', '.join(settings.schedule.vendors)} is synced every "
        f"{settings.schedule.sync.interval or sync_every:g} s (configuration: "
        f"{environ['CONFIG_PATH']}); the web view and the API: http://127.0.0.1:{port}/ "
        f"(/changes, /runs); everything is also logged to {log_path}. Ctrl-C stops it all.",
    )
    up = subprocess.Popen(
        [str(PROJECT_ROOT / "bin" / "up")],
        cwd=PROJECT_ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    relaying = threading.Thread(target=relay, args=(up.stdout, log_path), name="relay")
    relaying.start()
    mover = Mover(replica, settings, move_every, port)

    def stop(signum: int, frame: object) -> None:
        say("demo", f"{signal.Signals(signum).name} received: stopping")
        mover.stopped.set()  # the shops stand still from now on
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    mover.start()
    try:
        status = up.wait()
        relaying.join()  # to the end of bin/up's output
    finally:
        mover.stop()
        receiver.shutdown()
        receiver.server_close()
        replica.stop()
    say("demo", f"stopped (bin/up exit status {status})")
    return status
