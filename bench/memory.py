"""Figure 8 — memory: peak memory of every process of a job, browsers included.

    python -m bench.memory [--quick]

Every job runs under bench.procmon, which sums the memory of the job's whole process tree
every 0.1 s (PSS every 0.5 s) and keeps the peaks:

* PSS (proportional set size: a page shared by n processes counts 1/n in each) is what the
  job occupies — what a container's memory limit, such as a Heroku dyno's, is charged; the
  goals are judged on it.
* RSS summed over the processes counts every shared page once per process (Chromium's dozen
  processes share most of their code), so it overstates a multi-process job; shown beside.

Jobs:

* a crawler per shop: full syncs of the 20,000-product replica (figure 1's runs) and of a
  5,000-product one, politeness off; HO's includes its browser (chromedriver, Chromium);
* HO again without the browser flag `--disable-features=BackForwardCache` (the baseline: our
  flags before figure 8 was profiled; removed for the run by bench.chromium_flags);
* the scheduler (`python scheduler.py`: generating the jobs of three shops from their year
  indexes, then running one sync job; its crawl is a crawler, not counted here);
* the audit worker (`python -m webapi.auditor` delivering 10,000 changes to a webhook);
* one API worker (gunicorn, 1 sync worker; its master not counted) answering /healthz, product
  lists, product histories and SKU views for a few seconds.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa

from bench import auditor_latency, chromium_flags, storage_upserts
from bench.constants import HO, HOOH, MB, PROJECT_ROOT, SHORT, UNTHROTTLED, VENDORS
from bench.crawl_efficiency import full_sync
from bench.crawls import Crawl
from bench.report import Row, log, markdown, mb
from bench.services import child_env
from bench.session import Session, standalone
from christmas_spiders import config
from christmas_spiders.errors import one_line
from christmas_spiders.storage import database
from christmas_spiders.storage.products import upsert_products
from christmas_spiders.storage.schema import crawl_runs
from webapi.auditor.receiver import WebhookReceiver

FIGURE = "8"
BROWSER_GOAL = 800 * MB
PLAIN_GOAL = 300 * MB
FLAT = 1.10  # "flat": the peak at 4× the catalog is at most 10 % above
BFCACHE_OFF = "--disable-features=BackForwardCache"


class Monitored:
    """A long-running command under bench.procmon, stopped with SIGTERM."""

    def __init__(self, session: Session, name: str, command: list[str], env: dict[str, str]):
        self.report_path = session.work / f"{name}.procmon.json"
        self.log_path = session.work / f"{name}.log"
        with open(self.log_path, "wb") as output:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "bench.procmon", str(self.report_path), "--", *command],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 60) -> dict[str, Any]:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        if not self.report_path.exists():
            raise RuntimeError(f"no report; the log ends:\n{self.tail()}")
        return json.loads(self.report_path.read_text())

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def _wait(condition: Any, timeout: float, what: str, monitored: Monitored) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if not monitored.alive():
            break
        time.sleep(0.5)
    monitored.stop()
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s; log:\n{monitored.tail()}")


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(database.database_url(config.Config(database_url=url)))


# --- the jobs -----------------------------------------------------------------------------------


def scheduler(session: Session) -> dict[str, Any]:
    """The scheduler generating its jobs from the replica's year indexes, then running one."""
    from christmas_spiders.scheduling import commands

    process = session.replica()
    url = session.services.scratch_database()
    config_path = session.work / "scheduler-config.json"
    config_path.write_text(
        json.dumps(
            {
                "log_level": "INFO",
                "vendors": {vendor: {"base_url": process.base_urls[vendor]} for vendor in VENDORS},
                "schedule": {"max_crawls": 1, "crawl_settings": UNTHROTTLED},
            }
        )
    )
    env = child_env(DATABASE_URL=url, CONFIG_PATH=str(config_path))
    log("scheduler: generating jobs, then one sync run")
    monitored = Monitored(session, "scheduler", [sys.executable, "scheduler.py"], env)
    engine = _engine(url)

    def count(query: str) -> int:
        with engine.connect() as connection:
            try:
                return connection.execute(sa.text(query)).scalar_one()
            except sa.exc.ProgrammingError:  # the job store is not created yet
                return 0

    _wait(
        lambda: count("SELECT count(*) FROM apscheduler_jobs") >= 9, 90, "job generation", monitored
    )
    time.sleep(1)
    jobs = count("SELECT count(*) FROM apscheduler_jobs")
    year = 2019
    settings = config.load({"DATABASE_URL": url, "CONFIG_PATH": str(config_path)})
    commands.run_now(settings, f"sync:{HOOH}:{year}")

    def finished() -> bool:
        with engine.connect() as connection:
            return bool(
                connection.execute(
                    sa.select(sa.func.count())
                    .select_from(crawl_runs)
                    .where(crawl_runs.c.status != "running")
                ).scalar_one()
            )

    _wait(finished, 180, "the scheduled crawl", monitored)
    time.sleep(2)
    report = monitored.stop()
    engine.dispose()
    session.services.drop(url)
    return {"report": report, "jobs": jobs, "ran": f"sync:{HOOH}:{year}"}


def auditor(session: Session) -> dict[str, Any]:
    """The audit worker delivering `changes` changes to a signed webhook."""
    changes = session.scaled(10_000, 300)
    url = session.services.scratch_database()
    engine = _engine(url)
    products = auditor_latency._catalog(engine)
    with WebhookReceiver(auditor_latency.SECRET) as receiver:
        subscribers = [
            {
                "name": "bench",
                "webhook": {"url": receiver.url(), "secret": auditor_latency.SECRET},
                "batch_size": 100,
            }
        ]
        env = child_env(
            DATABASE_URL=url, LOG_LEVEL="WARNING", CHRISTMAS_SUBSCRIBERS=json.dumps(subscribers)
        )
        log(f"audit worker: delivering {changes:,} changes")
        monitored = Monitored(session, "auditor", [sys.executable, "-m", "webapi.auditor"], env)

        def ready() -> bool:
            with engine.connect() as connection:
                try:
                    return bool(
                        connection.execute(
                            sa.text("SELECT count(*) FROM audit_subscribers")
                        ).scalar_one()
                    )
                except sa.exc.ProgrammingError:
                    return False

        _wait(ready, 60, "the audit worker's start", monitored)
        auditor_latency._write(engine, products, changes, pause=0.01)
        if not receiver.wait_for(lambda r: r.events_delivered >= changes, 120):
            monitored.stop()
            raise RuntimeError(f"not every change was delivered; log:\n{monitored.tail()}")
        report = monitored.stop()
    engine.dispose()
    session.services.drop(url)
    return {"report": report, "changes": changes}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(port: int, path: str, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def api_worker(session: Session) -> dict[str, Any]:
    """One gunicorn sync worker answering the API's read endpoints."""
    from webapi import auth

    count = session.scaled(20_000, 300)
    url = session.services.scratch_database()
    engine = _engine(url)
    for offset in range(3):  # listed, then two price changes each: 3 history rows a product
        rows = storage_upserts.items(count, price_offset=offset)
        for start in range(0, count, 1000):
            with engine.begin() as connection:
                upsert_products(connection, rows[start : start + 1000])
    with engine.begin() as connection:
        _, key = auth.create_key(connection, "bench")
        low, high = connection.execute(sa.text("SELECT min(id), max(id) FROM products")).one()
        history = connection.execute(sa.text("SELECT count(*) FROM product_changes")).scalar()
    engine.dispose()
    port = _free_port()
    env = child_env(DATABASE_URL=url, LOG_LEVEL="WARNING", CHRISTMAS_API_RATE_LIMIT="10000000")
    command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}"]
    command += ["--log-level", "warning", "webapi:create_app()"]
    log(f"API worker: {count:,} products, {history:,} history rows")
    monitored = Monitored(session, "api", command, env)

    def up() -> bool:
        try:
            return _get(port, "/healthz", {}) == 200
        except OSError:
            return False

    _wait(up, 60, "the API's start", monitored)
    headers = {"Authorization": f"Bearer {key}"}
    paths = ["/healthz", "/v1/products?limit=50", "/v1/products?sort=-price&limit=50"]
    paths += [f"/v1/products/{low + (high - low) * i // 97}/history" for i in range(97)]
    paths += [f"/v1/skus/QX{(count * i // 89):05d}" for i in range(89)]
    statuses: dict[int, int] = {}
    stop_at = time.monotonic() + session.scaled(8, 2)
    lock = threading.Lock()

    def client(offset: int) -> None:
        number = offset
        while time.monotonic() < stop_at:
            status = _get(port, paths[number % len(paths)], headers)
            number += 1
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(n * 37,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = monitored.stop()
    session.services.drop(url)
    return {"report": report, "statuses": statuses, "products": count, "history": history}


# --- the figure ---------------------------------------------------------------------------------


def _peaks(report: dict[str, Any], part: str = "") -> tuple[int, int]:
    """(PSS, RSS) peaks of the tree (part ""), the main process ("main_") or the rest."""
    return report[f"peak_{part}pss_bytes"], report[f"peak_{part}rss_bytes"]


def measure(session: Session) -> list[Row]:
    # --quick measures one size only (the code path is the same; flatness is then trivially 1)
    small, large = session.scaled(5_000, session.size), session.size
    crawls: dict[tuple[str, int], Crawl] = {}
    for size in (large, small):
        for vendor in VENDORS:
            crawls[vendor, size] = full_sync(session, vendor, size)
    before = chromium_flags.settings(BFCACHE_OFF)
    with_bfcache = {
        size: full_sync(session, HO, size, label="with-bfcache", settings=before)
        for size in dict.fromkeys((large, small))
    }
    if small != large:
        session.stop_replica(small)
    jobs = {"scheduler": scheduler(session), "auditor": auditor(session)}
    try:
        jobs["API worker"] = api_worker(session)
    except Exception as error:  # the API is another issue's work: report, do not fail the rest
        log(f"API worker not measured: {error}")
        jobs["API worker"] = {"error": one_line(error)}

    rows, details = [], []
    for vendor in VENDORS:
        big, little = crawls[vendor, large], crawls[vendor, small]
        (big_pss, big_rss), (little_pss, little_rss) = _peaks(big.report), _peaks(little.report)
        goal = BROWSER_GOAL if vendor == HO else PLAIN_GOAL
        growth = big_pss / little_pss
        rows.append(
            Row(
                FIGURE,
                f"memory: {SHORT[vendor]} crawler"
                + (" + its browser" if vendor == HO else "")
                + f", peak of the process tree, {large:,} vs {small:,} products",
                f"{mb(big_pss)} vs {mb(little_pss)} PSS (RSS summed {mb(big_rss)} vs "
                f"{mb(little_rss)})",
                "",
                f"≤ {mb(goal)}, flat (×{growth:.2f} for 4× products; flat = ≤ ×{FLAT:.2f})",
                big_pss <= goal and growth <= FLAT,
            )
        )
    big, little = with_bfcache[large], with_bfcache[small]
    (big_pss, big_rss), (little_pss, little_rss) = _peaks(big.report), _peaks(little.report)
    rows.append(
        Row(
            FIGURE,
            f"memory: HO crawler + browser, baseline: without {BFCACHE_OFF} (our flags before "
            f"this figure was profiled), {large:,} vs {small:,} products",
            f"{mb(big_pss)} vs {mb(little_pss)} PSS (RSS summed {mb(big_rss)} vs {mb(little_rss)})",
            f"with the flag: {mb(_peaks(crawls[HO, large].report)[0])}",
            f"≤ {mb(BROWSER_GOAL)}, flat (×{big_pss / little_pss:.2f})",
            None,
        )
    )
    for name, job in jobs.items():
        if "error" in job:
            rows.append(Row(FIGURE, f"memory: {name}", "not measured", "", job["error"], None))
            continue
        part = "others_" if name == "API worker" else "main_"
        pss, rss = _peaks(job["report"], part)
        what = {
            "scheduler": f"{job.get('jobs', 0)} jobs generated, then {job.get('ran')} run (its "
            "crawl not counted)",
            "auditor": f"{job.get('changes', 0):,} changes delivered",
            "API worker": f"{job.get('products', 0):,} products, {job.get('history', 0):,} "
            f"history rows; answers {job.get('statuses')}",
        }[name]
        rows.append(
            Row(
                FIGURE,
                f"memory: {name} ({what})",
                f"{mb(pss)} PSS (RSS {mb(rss)})",
                "",
                f"no goal of its own (≤ {mb(PLAIN_GOAL)} for a process without a browser)",
                None,
            )
        )
    for (vendor, size), crawl in sorted(
        crawls.items(), key=lambda entry: (entry[0][0], -entry[0][1])
    ):
        details.append(_detail_row(f"{SHORT[vendor]} crawl", size, crawl.report, crawl))
    for size, crawl in with_bfcache.items():
        details.append(_detail_row(f"HO crawl without {BFCACHE_OFF}", size, crawl.report, crawl))
    session.detail(
        FIGURE,
        "Peak memory of each crawler's process tree",
        markdown(
            [
                "job",
                "products",
                "tree PSS",
                "tree RSS (summed)",
                "crawler process PSS",
                "browser processes PSS",
                "processes",
            ],
            details,
        ),
    )
    return rows


def _detail_row(name: str, size: int, report: dict[str, Any], crawl: Crawl) -> list[str]:
    return [
        name,
        f"{size:,}",
        mb(report["peak_pss_bytes"]),
        mb(report["peak_rss_bytes"]),
        mb(report["peak_main_pss_bytes"]),
        mb(report["peak_others_pss_bytes"]),
        str(report["peak_processes"]),
    ]


if __name__ == "__main__":
    standalone(measure, __doc__.splitlines()[0])
