"""End to end: the whole system as separate processes, each started with its Procfile command,
against the replica. The scheduler fires a sync, a standing crawler worker crawls it and stores
the products, the replica changes a price, the next sync records the change, the audit worker
delivers it as a signed webhook, and the API's history and change feed show it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from christmas_spiders import config as config_module
from christmas_spiders.scheduling import commands, jobs
from christmas_spiders.storage import heartbeats
from christmas_spiders.storage.schema import crawl_runs
from christmas_spiders.vendors import VENDORS
from webapi.auditor.receiver import WebhookReceiver

from .conftest import PROJECT_ROOT
from .replica.client import Replica
from .test_distributed import expected_ids, stored
from .test_production import REDIS_URL, _free_port, _healthz, _procfile
from .test_scheduler import quiet_schedule

OS = "ornament_shop_com"
YEAR = 2019
SECRET = "e2e-" + uuid.uuid4().hex
WAIT = 90


def _until(condition, what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)
    return value


def _finished_runs(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(crawl_runs).where(crawl_runs.c.status == "finished").order_by(crawl_runs.c.id)
        ).all()
    return [dict(row._mapping) for row in rows]


def _fire(env: dict[str, str], job_id: str) -> None:
    """The job runs now, as `python scheduler.py run JOB_ID` makes it (its trigger fires hours
    from now in this test): the running scheduler answers once it has queued the run."""
    commands.run_now(config_module.load(env), job_id)


def _api(port: str, key: str, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_a_price_change_travels_from_the_shop_to_the_webhook_and_the_api(
    replica_reset: Replica, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    config_path = tmp_path / "config.json"
    vendors = {vendor: {"base_url": replica_reset.base_urls[vendor]} for vendor in VENDORS}
    schedule = quiet_schedule(vendors=[OS], max_crawls=1)
    config_path.write_text(json.dumps({"vendors": vendors, "schedule": schedule}))
    with WebhookReceiver(SECRET) as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHRISTMAS_", "REDIS_"))}
        env.update(
            PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
            DATABASE_URL=database_url,
            REDIS_URL=REDIS_URL,
            PORT=str(_free_port()),
            CONFIG_PATH=str(config_path),
            CHRISTMAS_DATA_DIR=str(tmp_path / "data"),
            CHRISTMAS_REDIS_KEY_PREFIX=prefix,
            CHRISTMAS_WORKER_POLL_SECONDS="1",
            CHRISTMAS_CRAWL_IDLE_SECONDS="1",
            CHRISTMAS_AUDITOR_POLL_SECONDS="1",
            CHRISTMAS_SHOP_MAX_CONCURRENCY="8",
            CHRISTMAS_SHOP_REQUESTS_PER_SECOND="200",
            CHRISTMAS_SUBSCRIBERS=json.dumps(
                [
                    {
                        "name": "shop-sync",
                        "webhook": {"url": receiver.url(), "secret_env": "SHOP_SYNC_SECRET"},
                        "kinds": ["changed"],
                        "fields": ["price"],
                    }
                ]
            ),
            SHOP_SYNC_SECRET=SECRET,
            PYTHONUNBUFFERED="1",
        )
        processes: dict[str, subprocess.Popen[bytes]] = {}
        logs = {
            name: tmp_path / f"{name}.log" for name in ("web", "scheduler", "auditor", "crawler")
        }
        try:
            for name, log_path in logs.items():
                with log_path.open("wb") as log:
                    processes[name] = subprocess.Popen(
                        shlex.split(_procfile()[name]),
                        cwd=PROJECT_ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )

            def alive() -> set[str]:
                with engine.connect() as connection:
                    return {r.process for r in heartbeats.states(connection) if r.state == "alive"}

            _until(lambda: alive() >= {"scheduler", "auditor", "crawler"}, "every process is up")
            _until(lambda: _healthz(env["PORT"]), "the API is up")
            created = subprocess.run(
                ["flask", "--app", "webapi", "keys", "create", "e2e"],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            # The key is the command's output; stdout also carries the app's log lines.
            [key] = re.findall(r"^xmas_\S+$", created.stdout, re.M)

            # The scheduler fires the sync; the standing worker crawls it.
            job_id = jobs.sync_id(OS, YEAR)
            done = re.compile(rf"{job_id}: crawl run \d+ finished")
            _fire(env, job_id)
            _until(lambda: done.search(logs["scheduler"].read_text()), "the first sync")
            assert set(stored(engine, OS)) == expected_ids(replica_reset, OS, {YEAR})

            # The shop changes a price; the next sync records it.
            item = next(
                item
                for item in replica_reset.expected_items(OS, {YEAR})
                if item.price is not None and item.regular_price is None
            )
            new_price = "3.21" if item.price > 10 else "42.00"
            replica_reset.set_product(OS, item.vendor_product_id, price=new_price)
            _fire(env, job_id)
            _until(lambda: len(done.findall(logs["scheduler"].read_text())) == 2, "the next sync")

            # The audit worker delivers it, signed.
            assert receiver.wait_for(lambda r: r.change_ids(), WAIT), "no webhook delivery"
            [delivery] = receiver.delivered()
            assert delivery.signature_valid  # the HMAC signature verifies with the shared secret
            [event] = json.loads(delivery.body)["events"]
            assert (event["field"], event["old_value"], event["new_value"]) == (
                "price",
                f"{item.price:.2f}",
                new_price,
            )
            assert event["product"]["link"] == item.link

            # The API shows it: the product's history and the change feed.
            product_id = event["product_id"]
            history = _api(env["PORT"], key, f"/v1/products/{product_id}/history")
            assert [point["price"] for point in history["prices"]] == [
                f"{item.price:.2f}",
                new_price,
            ]
            feed = _api(env["PORT"], key, f"/v1/changes?product_id={product_id}&kind=changed")
            assert [change["id"] for change in feed["changes"]] == [event["change_id"]]
            assert feed["changes"][0]["new_value"] == new_price

            for process in processes.values():
                process.send_signal(signal.SIGTERM)
            statuses = {name: process.wait(30) for name, process in processes.items()}
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
            server = redis.Redis.from_url(REDIS_URL)
            for stale in server.scan_iter(match=f"{prefix}:*", count=1000):
                server.delete(stale)
            server.close()
    outputs = {name: path.read_text() for name, path in logs.items()}
    assert statuses == dict.fromkeys(logs, 0), {n: o[-2000:] for n, o in outputs.items()}
    runs = _finished_runs(engine)
    assert [run["stats"].get("scheduler/announced") for run in runs] == [True, True]
    assert all(run["stats"]["scheduler/job_id"] == job_id for run in runs)
    assert "joining crawl run" in outputs["crawler"]
    assert SECRET not in "".join(outputs.values())
