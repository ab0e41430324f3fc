"""The verdict on a crawl run: `ok` or `suspect`, with one sentence per reason (pure, no I/O).

A run is compared with the last healthy runs of its vendor and years (``Baseline``): products
per year, each field's coverage, problem pages, errors and retries; values the run saw vanish
are judged on their own (they need no history, so one product page is judged too); a vendor's
first run meets absolute floors instead. The thresholds are configuration (docs/health.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

from christmas_spiders.config import Config

# Fields whose coverage is counted: name over product pages read, the rest over items.
FIELDS = ("name", "price", "sku", "availability", "availability_text", "image_url", "series")
LABELS = {"availability_text": "availability text", "image_url": "image", "sku": "SKU"}
CLEAN_ENDS = ("finished", "shutdown")  # shutdown: a worker stopped on SIGTERM handed its work back
MIN_REQUESTS = 20  # error and retry rates of fewer requests say nothing

Counts = Mapping[int, Mapping[str, int]]  # release year (0: the whole run) → counter → count


@dataclass(frozen=True)
class Thresholds:
    """The configuration's `health_*` keys, without their prefix (their defaults and meaning
    are in config.keys)."""

    min_items: int
    min_year_ratio: float
    min_coverage_ratio: float
    max_vanished_share: float
    first_run_min_share: float
    max_problem_share: float
    max_error_share: float
    max_retry_share: float

    @classmethod
    def from_config(cls, config: Config) -> Thresholds:
        return cls(**{key.name: getattr(config, f"health_{key.name}") for key in fields(cls)})


@dataclass(frozen=True)
class Run:
    """What the run read (summed over its workers)."""

    counts: Counts
    vanished: Mapping[str, int]  # protected field → products that lost it in this run
    years: frozenset[int] | None  # the years its listings covered; None: url/product mode
    finish_reason: str
    errors: int


@dataclass(frozen=True)
class Baseline:
    """The last healthy runs: per year the latest that read it, under 0 the latest overall."""

    counts: Counts
    errors: int = 0  # of the year-0 run
    requests: int = 0

    @property
    def first_run(self) -> bool:
        return not self.counts


@dataclass
class Verdict:
    health: str = "ok"
    reasons: list[str] = field(default_factory=list)  # suspect: why; ok: notes (emptied years)
    collapsed: set[str] = field(default_factory=set)  # fields whose vanishes are not applied
    coverage: dict[str, float] = field(default_factory=dict)  # field → share, this run

    def suspect(self, reason: str, collapsed: str | None = None) -> None:
        self.health = "suspect"
        self.reasons.append(reason)
        if collapsed:
            self.collapsed.add(collapsed)


def percent(share: float) -> str:
    return f"{share:.0%}"


def _sum(counts: Counts, years: Iterable[int], counter: str) -> int:
    return sum(counts.get(year, {}).get(counter, 0) for year in years)


def _denominator(name: str) -> str:
    return "pages" if name == "name" else "items"


def judge(run: Run, baseline: Baseline, thresholds: Thresholds) -> Verdict:
    verdict = Verdict()
    years = sorted(year for year in run.counts if year)
    if run.finish_reason not in CLEAN_ENDS:
        verdict.suspect(f"the crawl ended early (finish reason {run.finish_reason})")
    if run.years is not None:
        _year_counts(run, baseline, thresholds, verdict)
    _coverage(run, baseline, years, thresholds, verdict)
    _vanished(run, years, thresholds, verdict)
    _rates(run, baseline, thresholds, verdict)
    return verdict


def _year_counts(run: Run, baseline: Baseline, thresholds: Thresholds, verdict: Verdict) -> None:
    """Products per year against the year's last healthy run. A year now empty is a note: the
    shop may have removed it, and the incomplete-year guard delists nothing of it anyway."""
    assert run.years is not None
    compared = [year for year in sorted(run.years) if baseline.counts.get(year, {}).get("pages")]
    short = False
    for year in compared:
        found = run.counts.get(year, {}).get("pages", 0)
        before = baseline.counts[year]["pages"]
        if found == 0:
            verdict.reasons.append(
                f"{year}: no products, last healthy run {before}: the year looks emptied; "
                "nothing of it is delisted (incomplete-year guard)"
            )
        elif found < thresholds.min_year_ratio * before:
            short = True
            verdict.suspect(f"{year}: {found} products, last healthy run {before}")
    # Every year emptied at once (listings the spider no longer reads?) is not a removal.
    found = _sum(run.counts, compared, "pages")
    before = _sum(baseline.counts, compared, "pages")
    if not short and len(compared) > 1 and found < thresholds.min_year_ratio * before:
        verdict.suspect(
            f"{found} products in the {len(compared)} years crawled, last healthy runs {before}"
        )


def _coverage(
    run: Run, baseline: Baseline, years: list[int], thresholds: Thresholds, verdict: Verdict
) -> None:
    """Each field's share against the same years' last healthy runs; a first run against
    absolute floors for the fields every shop shows (a price on in-stock products)."""
    pages = _sum(run.counts, years, "pages")
    for name in FIELDS:
        total = _sum(run.counts, years, _denominator(name))
        if total:
            verdict.coverage[name] = _sum(run.counts, years, f"field/{name}") / total
    if pages < thresholds.min_items:
        return
    if baseline.first_run:
        floor = thresholds.first_run_min_share
        shares = {
            "price": ("in-stock products", "in_stock/price", "in_stock"),
            "name": ("product pages", "field/name", "pages"),
            "availability": ("products", "field/availability", "items"),
        }
        for name, (what, present, counter) in shares.items():
            total = _sum(run.counts, years, counter)
            share = _sum(run.counts, years, present) / total if total else 1.0
            if total and share < floor:
                verdict.suspect(
                    f"{LABELS.get(name, name)} on {percent(share)} of {total} {what} "
                    f"(a first run needs at least {percent(floor)})",
                    name,
                )
        return
    compared = [year for year in years if year in baseline.counts]
    for name in FIELDS:
        denominator = _denominator(name)
        total = _sum(run.counts, compared, denominator)
        before_total = _sum(baseline.counts, compared, denominator)
        if not total or not before_total:
            continue
        share = _sum(run.counts, compared, f"field/{name}") / total
        before = _sum(baseline.counts, compared, f"field/{name}") / before_total
        if share < thresholds.min_coverage_ratio * before:
            what = "product pages" if denominator == "pages" else "products"
            verdict.suspect(
                f"{LABELS.get(name, name)} on {percent(share)} of {total} {what} "
                f"(last healthy run: {percent(before)})",
                name,
            )


def _vanished(run: Run, years: list[int], thresholds: Thresholds, verdict: Verdict) -> None:
    """Of the products whose page was read and had a field, the share whose page no longer
    shows it (a quick sync's products confirmed from their listing tile are left out)."""
    for name, lost in sorted(run.vanished.items()):
        shown = _sum(run.counts, years, f"field/{name}")
        shown -= _sum(run.counts, years, f"confirmed/field/{name}")
        if lost and lost / (lost + shown) > thresholds.max_vanished_share:
            if name in verdict.collapsed:
                continue  # its coverage already said so
            verdict.suspect(
                f"{LABELS.get(name, name)} gone from {lost} of {lost + shown} products "
                "that had one",
                name,
            )


def _rates(run: Run, baseline: Baseline, thresholds: Thresholds, verdict: Verdict) -> None:
    """Problem pages, errors and retries against the last healthy run's."""
    whole, before = run.counts.get(0, {}), baseline.counts.get(0, {})

    def problems(counts: Mapping[str, int], pages: int) -> tuple[int, int]:
        """Pages with a problem, skipped, unread or dropped; of the product pages found."""
        keys = ("pages/problems", "pages/skipped", "pages/unread", "items/dropped")
        return sum(counts.get(key, 0) for key in keys), pages + counts.get("pages/unread", 0)

    years = [year for year in run.counts if year]
    troubled, pages = problems(whole, _sum(run.counts, years, "pages"))
    base_years = [year for year in baseline.counts if year]
    base_troubled, base_pages = problems(before, _sum(baseline.counts, base_years, "pages"))
    base_share = min(1.0, base_troubled / base_pages) if base_pages else 0.0
    if pages >= thresholds.min_items:
        share = min(1.0, troubled / pages)
        if share - base_share > thresholds.max_problem_share:
            verdict.suspect(
                f"problems on {percent(share)} of {pages} product pages "
                f"(last healthy run: {percent(base_share)})"
            )
    requests = whole.get("requests", 0)
    if requests < MIN_REQUESTS:
        return
    base_requests = before.get("requests", 0)
    checks = (
        ("errors", run.errors, baseline.errors, thresholds.max_error_share),
        ("retries", whole.get("retries", 0), before.get("retries", 0), thresholds.max_retry_share),
    )
    for what, count, base_count, limit in checks:
        share = count / requests
        base_share = base_count / base_requests if base_requests else 0.0
        if share - base_share > limit:
            verdict.suspect(
                f"{count} {what} for {requests} requests ({percent(share)}; "
                f"last healthy run: {percent(base_share)})"
            )
