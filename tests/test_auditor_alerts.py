"""Alert rules, and alerts delivered for real: Apprise to a local HTTP server (json://) and a
local SMTP server (mailto://, aiosmtpd), and our signed webhooks."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from email import message_from_bytes, policy
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from christmas_spiders.config import AlertRule, Config
from christmas_spiders.storage.history import Change
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import products
from webapi.auditor.alerts import NO_CATALOG, Catalog, alerts_for
from webapi.auditor.receiver import WebhookReceiver
from webapi.auditor.worker import Worker

from .test_auditor import (
    SECRET,
    auditor_config,
    catalog,
    change_ids,
    running,
    subscriber_row,
    wait_until,
    webhook,
)
from .test_storage import item

# --- the rules, on history rows -----------------------------------------------------------------


def change(**values: Any) -> Change:
    base: dict[str, Any] = {
        "id": 7,
        "product_id": 3,
        "kind": "changed",
        "field": "price",
        "old_value": "20.00",
        "new_value": "17.00",
        "changed_at": datetime(2026, 11, 28, tzinfo=UTC),
        "crawl_run_id": None,
        "flags": (),
        "vendor": "ornament_shop_com",
        "vendor_name": "Ornament Shop",
        "name": "2019 Nostalgic Rocking Horse",
        "sku": "QX1571NB",
        "link": "https://www.ornament-shop.com/rocking-horse",
        "currency": "USD",
        "price": Decimal("17.00"),
        "availability": "available",
    }
    return Change(**{**base, **values})


def rules(*names: str, **options: Any) -> list[AlertRule]:
    return [AlertRule(name, **options) for name in names]


@pytest.mark.parametrize(
    ("old", "new", "min_percent", "alerted"),
    [
        ("20.00", "19.99", None, True),  # any amount
        ("20.00", "21.00", None, False),  # a rise
        ("20.00", "18.50", Decimal(10), False),  # 7.5 % < 10 %
        ("20.00", "17.00", Decimal(10), True),  # 15 %
        ("20.00", None, None, False),  # to no price: not a drop
        (None, "5.00", None, False),  # from no price: not a drop
    ],
)
def test_price_drop_rule(
    old: str | None, new: str | None, min_percent: Decimal | None, alerted: bool
) -> None:
    found = alerts_for(
        change(old_value=old, new_value=new), rules("price_drop", min_percent=min_percent)
    )
    assert bool(found) is alerted


def test_price_drop_alert_names_product_vendor_values_and_link() -> None:
    [alert] = alerts_for(change(), rules("price_drop"))
    assert alert.title == "Price drop: 2019 Nostalgic Rocking Horse now $17.00 (was $20.00)"
    assert alert.text == (
        "2019 Nostalgic Rocking Horse (SKU QX1571NB)\n"
        "at Ornament Shop\n"
        "price $20.00 → $17.00 (−15%)\n"
        "https://www.ornament-shop.com/rocking-horse"
    )
    assert (alert.old_value, alert.new_value) == ("$20.00", "$17.00")


def test_suspicious_price_change_raises_no_price_alert() -> None:
    wild = change(old_value="100.00", new_value="10.00", flags=("suspicious",))
    every_price_rule = [
        AlertRule("price_drop"),
        AlertRule("below_target", sku="QX1571NB", target=Decimal("50")),
    ]
    assert alerts_for(wild, every_price_rule) == []


@pytest.mark.parametrize(
    ("values", "alerted"),
    [
        ({"old_value": "20.00", "new_value": "14.99"}, True),  # crosses the target
        ({"old_value": "20.00", "new_value": "15.00"}, True),  # reaches it
        ({"old_value": "20.00", "new_value": "16.00"}, False),  # not yet
        ({"old_value": "14.00", "new_value": "13.00"}, False),  # was already below
        ({"old_value": "20.00", "new_value": "14.99", "sku": "QX0000"}, False),  # another SKU
        ({"kind": "listed", "field": None, "new_value": '{"price": 12.5}'}, True),  # new listing
    ],
)
def test_below_target_rule(values: dict[str, Any], alerted: bool) -> None:
    found = alerts_for(
        change(**values), rules("below_target", sku="QX1571NB", target=Decimal("15.00"))
    )
    assert [alert.rule for alert in found] == (["below_target"] if alerted else [])


@pytest.mark.parametrize(
    ("values", "alerted"),
    [
        ({"old_value": "unavailable", "new_value": "available"}, True),
        ({"old_value": "unavailable", "new_value": "preorder"}, True),
        ({"old_value": "available", "new_value": "unavailable"}, False),
        ({"old_value": "preorder", "new_value": "available"}, False),
        ({"kind": "relisted", "field": None, "new_value": '{"availability": "available"}'}, True),
    ],
)
def test_back_in_stock_rule(values: dict[str, Any], alerted: bool) -> None:
    found = alerts_for(change(**{"field": "availability", **values}), rules("back_in_stock"))
    assert [alert.rule for alert in found] == (["back_in_stock"] if alerted else [])


def test_listing_and_delisting_alerts() -> None:
    snapshot = '{"price": 24.95, "availability": "available"}'
    [listed] = alerts_for(
        change(kind="listed", field=None, old_value=None, new_value=snapshot),
        rules("new_listing", "delisted"),
    )
    [delisted] = alerts_for(
        change(kind="delisted", field=None, old_value=None, new_value=snapshot),
        rules("new_listing", "delisted"),
    )
    assert listed.title == "New listing: 2019 Nostalgic Rocking Horse at $24.95"
    assert "listed at $24.95, available" in listed.text
    assert delisted.title == "Delisted: 2019 Nostalgic Rocking Horse"
    assert "no longer listed (last price $24.95)" in delisted.text
    assert delisted.text.endswith("https://www.ornament-shop.com/rocking-horse")


# --- delivered for real -------------------------------------------------------------------------


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[tuple[_Mailbox, int]]:
    """A local SMTP server (aiosmtpd) collecting every message."""
    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


def _set(engine: Engine, product_id: int, **values: Any) -> None:
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE products SET {assignments} WHERE id = :id"),
            {**values, "id": product_id},
        )


def test_alerts_reach_apprise_and_webhooks(
    engine: Engine, make_config: Callable[..., Config], mailbox: tuple[_Mailbox, int]
) -> None:
    box, smtp_port = mailbox
    dropping, wild, watched = catalog(engine, 3, vendor="ornament_shop_com")
    with WebhookReceiver(None) as chat, WebhookReceiver(SECRET) as hooks:
        settings = auditor_config(
            make_config,
            {
                "name": "chat",
                "apprise": f"json://127.0.0.1:{chat.port}/chat",
                "alerts": [{"rule": "price_drop", "min_percent": 10}, {"rule": "back_in_stock"}],
            },
            {
                "name": "mail",
                "apprise": (
                    f"mailto://127.0.0.1:{smtp_port}?mode=insecure"
                    "&from=auditor@example.com&to=collector@example.com"
                ),
                "alerts": [{"rule": "below_target", "sku": "QX00002", "target": "15.00"}],
            },
            {"name": "hook", "webhook": webhook(hooks), "alerts": [{"rule": "price_drop"}]},
        )
        with running(Worker(settings)):
            _set(engine, dropping, price=Decimal("17.00"))  # −15 %: alert
            _set(engine, dropping, price=Decimal("16.50"))  # −3 %: below min_percent
            _set(engine, dropping, availability="unavailable")
            _set(engine, dropping, availability="available")  # back in stock: alert
            _set(engine, wild, price=Decimal("100.00"))  # ×5: flagged suspicious
            _set(engine, wild, price=Decimal("10.00"))  # ÷10: flagged, so no price-drop alert
            _set(engine, wild, price=None)  # to no price: not a drop
            _set(engine, watched, price=Decimal("14.99"))  # below the target: mail
            last = change_ids(engine)[-1]
            for name in ("chat", "mail", "hook"):
                assert wait_until(
                    lambda name=name: subscriber_row(engine, name)["last_change_id"] == last
                )
    titles = [request.payload["title"] for request in chat.delivered()]
    assert titles == [
        "Price drop: 2019 Test Ornament 0 now $17.00 (was $20.00)",
        "Back in stock: 2019 Test Ornament 0 (available)",
        "Price drop: 2019 Test Ornament 2 now $14.99 (was $20.00)",
    ]
    assert {request.path for request in chat.delivered()} == {"/chat"}
    first_message = chat.delivered()[0].payload["message"]
    assert "at Ornament Shop" in first_message
    assert "price $20.00 → $17.00 (−15%)" in first_message
    assert "http://127.0.0.1:9/ornament_shop_com/0" in first_message

    [mail] = box.messages
    assert mail["Subject"] == "Below target: 2019 Test Ornament 2 now $14.99"
    assert mail["To"] == "collector@example.com"
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "price $14.99 (was $20.00), target $15.00" in body
    assert "http://127.0.0.1:9/ornament_shop_com/2" in body

    events = [event for request in hooks.delivered() for event in request.payload["events"]]
    assert [(event["new_value"], event["alerts"][0]["rule"]) for event in events] == [
        ("17.00", "price_drop"),
        ("16.50", "price_drop"),
        ("14.99", "price_drop"),
    ]
    assert all(request.signature_valid for request in hooks.requests)
    assert json.loads(hooks.delivered()[0].body)["subscriber"] == "hook"


# --- rules that watch an ornament (issue #15) --------------------------------------------------


HORSE = 41  # an ornament id


@pytest.mark.parametrize(
    ("rule", "values", "catalog", "alerted"),
    [
        # An ornament: any of its offers, whatever its SKU (or none); no other ornament's.
        (AlertRule("price_drop", ornament=HORSE), {}, Catalog({3: HORSE}), True),
        (AlertRule("price_drop", ornament=HORSE), {"sku": None}, Catalog({3: HORSE}), True),
        (AlertRule("price_drop", ornament=HORSE), {}, Catalog({3: HORSE + 1}), False),
        (AlertRule("price_drop", ornament=HORSE), {}, NO_CATALOG, False),  # not linked
        # A SKU in any form: its item number at any shop, in any form of the change's SKU…
        (AlertRule("price_drop", sku="QX1571"), {}, NO_CATALOG, True),
        (AlertRule("price_drop", sku="2999QX1571"), {"sku": "qx1571"}, NO_CATALOG, True),
        (AlertRule("price_drop", sku="QX1572"), {}, NO_CATALOG, False),
        (AlertRule("price_drop", sku="OS-11402"), {"sku": "os-11402"}, NO_CATALOG, True),
        # …and every offer of its ornaments, a listing without a SKU too.
        (
            AlertRule("price_drop", sku="QX1571"),
            {"sku": None},
            Catalog({3: HORSE}, {"QX1571": frozenset({HORSE})}),
            True,
        ),
        (AlertRule("price_drop", sku="QX1571"), {"sku": None}, Catalog({3: HORSE}), False),
        (
            AlertRule("below_target", ornament=HORSE, target=Decimal("18")),
            {},
            Catalog({3: HORSE}),
            True,
        ),
        (
            AlertRule("below_target", ornament=HORSE, target=Decimal("16")),
            {},
            Catalog({3: HORSE}),
            False,  # 17.00 is not below 16
        ),
    ],
)
def test_rules_that_watch_an_ornament_or_a_sku(
    rule: AlertRule, values: dict[str, Any], catalog: Catalog, alerted: bool
) -> None:
    assert bool(alerts_for(change(**values), [rule], catalog)) is alerted


def _ornament_of(engine: Engine, product_id: int) -> int:
    with engine.connect() as connection:
        found = connection.execute(
            sa.select(products.c.ornament_id).where(products.c.id == product_id)
        ).scalar()
    assert found is not None
    return found


def test_an_alert_on_an_ornament_fires_for_every_shops_offer(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    """One ornament at two shops in their own SKU forms (no box at one, a price-coded SKU at the
    other), and another ornament beside it: an alert on the ornament (by id, and by a SKU form
    neither shop uses) fires for both shops' offers, and for nothing else."""
    horse = {"release_year": 2019, "series": "Nostalgic Rocking Horse", "series_number": 5}
    shops = [
        item(
            vendor="ornament_shop_com",
            vendor_product_id="os-horse-nb",
            sku="QX1001NB",
            name="2019 Nostalgic Rocking Horse (No Box)",
            link="http://127.0.0.1:9/os/horse-nb",
            price=Decimal("20.00"),
            **horse,
        ),
        item(
            vendor="hallmark_ornaments_com",
            vendor_product_id="ho-horse",
            sku="1999QX1001",
            name="2019 Nostalgic Rocking Horse 5th in Nostalgic Rocking Horse Series",
            link="http://127.0.0.1:9/ho/horse",
            price=Decimal("25.00"),
            **horse,
        ),
        item(
            vendor="hookedonhallmark_com",
            vendor_product_id="hoh-angel",
            sku="QX2000",
            name="2019 Snow Angel",
            link="http://127.0.0.1:9/hoh/angel",
            price=Decimal("20.00"),
            release_year=2019,
        ),
    ]
    with engine.begin() as connection:
        upsert_products(connection, shops)
        ids = dict(connection.execute(sa.select(products.c.vendor_product_id, products.c.id)).all())
    ornament = _ornament_of(engine, ids["os-horse-nb"])
    assert _ornament_of(engine, ids["ho-horse"]) == ornament  # the premise: one ornament
    assert _ornament_of(engine, ids["hoh-angel"]) != ornament
    with WebhookReceiver(SECRET) as by_id, WebhookReceiver(SECRET) as by_sku:
        settings = auditor_config(
            make_config,
            {
                "name": "by-id",
                "webhook": webhook(by_id),
                "alerts": [
                    {"rule": "below_target", "ornament": ornament, "target": "15.00"},
                    {"rule": "price_drop", "ornament": ornament},
                ],
            },
            {
                "name": "by-sku",
                "webhook": webhook(by_sku),
                "alerts": [{"rule": "below_target", "sku": "qx1001", "target": "15.00"}],
            },
        )
        with running(Worker(settings)):
            _set(engine, ids["os-horse-nb"], price=Decimal("14.00"))
            _set(engine, ids["hoh-angel"], price=Decimal("10.00"))  # another ornament
            _set(engine, ids["ho-horse"], price=Decimal("14.50"))
            last = change_ids(engine)[-1]
            for name in ("by-id", "by-sku"):
                assert wait_until(
                    lambda name=name: subscriber_row(engine, name)["last_change_id"] == last
                )
    alerted = [
        (event["product"]["vendor"], event["new_value"], [a["rule"] for a in event["alerts"]])
        for event in (e for request in by_id.delivered() for e in request.payload["events"])
    ]
    assert alerted == [
        ("ornament_shop_com", "14.00", ["below_target", "price_drop"]),
        ("hallmark_ornaments_com", "14.50", ["below_target", "price_drop"]),
    ]
    by_sku_events = [e for request in by_sku.delivered() for e in request.payload["events"]]
    assert [(e["product"]["sku"], e["alerts"][0]["title"]) for e in by_sku_events] == [
        ("QX1001NB", "Below target: 2019 Nostalgic Rocking Horse (No Box) now $14.00"),
        (
            "1999QX1001",
            "Below target: 2019 Nostalgic Rocking Horse 5th in Nostalgic Rocking Horse Series "
            "now $14.50",
        ),
    ]
