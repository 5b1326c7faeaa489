"""The Insights view in a real browser (Debian's Chromium driven by Playwright) over the TikTok
Shop simulator's data, on a system of its own: the simulator pushes signed webhooks to its own
ingestor, which syncs the simulator's shop; its own state machine and query API.

The simulator's returns come in by Sync Return (with amounts, reasons and SKUs), then move on
by webhooks, some followed by an invalid claim (a rejected event, an anomaly). Every chart's
numbers, and its table's, are checked against `GET /api/v1/insights` asked with the very query
the page used, for every currency. Screenshot: test-artifacts/insights.png.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from devinfra.proc import free_port
from tests.integration.conftest import SIM_ACCESS_TOKEN, TOKEN, Stack, base_env
from tests.integration.services import ServiceProcess, http_ok, wait_until
from tests.integration.sync_support import request_sync, wait_for_job
from tests.integration.test_dashboard_browser import ARTIFACTS, browser_page  # noqa: F401
from tiktok_sim.protocol import shop_cipher_for

pytestmark = pytest.mark.integration

SHOP = f"insights-{uuid.uuid4().hex[:8]}"
GENERATED = 80
STATUS_ORDER = ["AFTERSALE_APPLYING", "AFTERSALE_REJECT_APPLICATION", "AFTERSALE_RETURNING",
                "AFTERSALE_BUYER_SHIPPED", "AFTERSALE_SELLER_REJECT_RECEIVE", "AFTERSALE_SUCCESS",
                "COMPLETE", "CLOSED", "CANCEL_SUCCESS"]
CHARTS = ["opened", "refunds", "durations", "reasons-count", "reasons-amount", "skus-count",
          "skus-amount", "anomalies"]
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, mongodb_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database = f"insights_ui_{uuid.uuid4().hex[:8]}"
    log_dir = tmp_path_factory.mktemp("insights-logs")
    ingestor_port, query_port, sim_port = free_port(), free_port(), free_port()
    env = base_env(kafka_bootstrap, mongodb_url, database)
    shops = [{"shop_id": SHOP, "api_version": "202309", "shop_cipher": shop_cipher_for(SHOP)}]
    processes = {name: ServiceProcess(name, {**extra}, log_dir / f"{name}.log") for name, extra in {
        "tiktok_sim": {"SIM_PORT": str(sim_port), "SIM_APP_KEY": env["TIKTOK_APP_KEY"],
                       "SIM_APP_SECRET": env["TIKTOK_APP_SECRET"],
                       "SIM_ACCESS_TOKEN": SIM_ACCESS_TOKEN, "SIM_WEBHOOK_RATE": "200",
                       "SIM_WEBHOOK_URL": f"http://127.0.0.1:{ingestor_port}/webhooks/tiktok"},
        "state_machine": {**env, "STATE_MACHINE_METRICS_PORT": str(free_port()),
                          "STATE_MACHINE_GROUP_ID": f"sm-{database}"},
        "query_api": {**env, "QUERY_API_PORT": str(query_port)},
        "ingestor": {**env, "INGESTOR_PORT": str(ingestor_port),
                     "TIKTOK_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
                     "TIKTOK_SHOPS": json.dumps(shops), "TIKTOK_ACCESS_TOKEN": SIM_ACCESS_TOKEN,
                     "TIKTOK_REQUESTS_PER_SECOND": "50", "SYNC_GROUP_ID": f"sync-{database}"},
    }.items()}
    stack = Stack(f"http://127.0.0.1:{ingestor_port}", f"http://127.0.0.1:{query_port}",
                  database, env, processes, log_dir, sim_url=f"http://127.0.0.1:{sim_port}",
                  sync_shops={"insights": SHOP})
    try:
        for process in processes.values():
            process.start()
        for url in (f"{stack.query_url}/readyz", f"{stack.ingestor_url}/readyz",
                    f"{stack.sim_url}/_sim/health"):
            wait_until(functools.partial(http_ok, url), 60, url)
        yield stack
    finally:
        for name, process in processes.items():
            process.stop()
            print(f"--- {name} log tail ---\n{process.log_tail(15)}")


def insights(stack: Stack, **params: str) -> Doc:
    response = httpx.get(f"{stack.query_url}/api/v1/insights", params={"shop_id": SHOP, **params},
                         headers=stack.auth, timeout=30)
    response.raise_for_status()
    body: Doc = response.json()
    return body


@pytest.fixture(scope="module")
def seeded(system: Stack) -> Doc:
    """The simulator's returns synced, moved on by webhooks (a third with an invalid claim after
    it), and the insights once they stop changing (the state machine has caught up)."""
    sim = httpx.Client(base_url=system.sim_url, timeout=60)
    generated = sim.post("/_sim/returns/generate",
                         json={"shop_id": SHOP, "count": GENERATED, "api_version": "202309"})
    assert generated.status_code == 200, generated.text
    job = wait_for_job(system, request_sync(system, SHOP))
    assert job["status"] == "succeeded", job
    wait_until(lambda: insights(system)["returns"] > GENERATED // 2, 120, "the synced returns")
    assert sim.post("/_sim/faults", json={"invalid_share": 0.35}).status_code == 200
    for _ in range(3):
        moved = sim.post("/_sim/returns/advance", json={"count": 30, "shop_id": SHOP})
        assert moved.status_code == 200, moved.text
    last: Doc = {}
    stable_since = time.monotonic()
    start, end, polls = datetime.now(UTC) - timedelta(days=31), datetime.now(UTC), 0

    def settled() -> bool:
        nonlocal last, stable_since, polls
        polls += 1  # a window a second longer each time: never an answer the API kept
        body = insights(system, **{"from": start.isoformat(),
                                   "to": (end + timedelta(seconds=polls)).isoformat()})
        body = {k: v for k, v in body.items() if k != "to"}
        if body != last:
            last, stable_since = body, time.monotonic()
        return time.monotonic() - stable_since > 4

    wait_until(settled, 120, "the insights to settle", interval=0.5)
    return last


@pytest.fixture(scope="module")
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    """The dashboard test's browser page (fixture `browser_page`), failing also on errors the
    console reports."""
    shared: Page = request.getfixturevalue("browser_page")
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "favicon" not in message.location.get("url", ""):
            problems.append(message.text)  # e.g. a Content-Security-Policy violation

    shared.on("console", on_console)
    yield shared
    shared.remove_listener("console", on_console)
    assert not problems, f"errors in the console: {problems}"


# ------------------------------------------------------------------- what the page should show


def to_fixed(value: float, places: int) -> str:
    """JavaScript's `value.toFixed(places)`: the float's exact value, halves rounded up."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def duration_text(seconds: float | None) -> str:
    """insights.js's fmtDuration."""
    if seconds is None:
        return "—"
    if seconds < 3600:
        return f"{to_fixed(seconds / 60, 0)} min"
    if seconds < 48 * 3600:
        return f"{to_fixed(seconds / 3600, 1)} h"
    return f"{to_fixed(seconds / 86400, 1)} d"


def ranking(top: Doc, currency: str) -> list[Doc]:
    return next((c["items"] for c in top["by_amount"] if c["currency"] == currency), [])


Shown = tuple[list[str], list[list[Any]], list[list[str]]]  # labels, datasets' values, rows


def expected(body: Doc, currency: str) -> dict[str, Shown]:
    """Per chart: its labels, its datasets' values, and its table's rows, from the API."""
    days = body["opened_per_day"]
    statuses = [s for s in STATUS_ORDER if any(d["by_status"].get(s) for d in days)]
    weeks: list[Doc] = next(
        (c["weeks"] for c in body["refunds_per_week"] if c["currency"] == currency), [])
    decision, refund = body["durations"]["to_decision"], body["durations"]["to_refund"]
    share = body["anomalies"]
    shares = [("Anomaly flagged", share["anomaly"]),
              ("Had a rejected event", share["rejected_event"]), ("Either", share["either"])]

    def percent(n: int) -> float:
        return (100 * n) / share["returns"] if share["returns"] else 0

    def hours(value: float | None) -> float | None:
        return None if value is None else value / 3600

    def ranked(items: list[Doc], money: bool) -> Shown:
        values = [float(i["amount"]) if money else i["returns"] for i in items]
        texts = [f"{i['amount']} {currency}" if money else str(i["returns"]) for i in items]
        return ([i["label"] for i in items], [values],
                [[i["label"], text] for i, text in zip(items, texts, strict=True)])

    return {
        "opened": ([d["day"] for d in days],
                   [[d["by_status"].get(s, 0) for d in days] for s in statuses],
                   [[d["day"], *(str(d["by_status"].get(s, 0)) for s in statuses), str(d["total"])]
                    for d in days]),
        "refunds": ([w["week"] for w in weeks], [[float(w["amount"]) for w in weeks]],
                    [[w["week"], f"{w['amount']} {currency}", str(w["returns"])] for w in weeks]),
        "durations": (["Request → decision", "Request → refund"],
                      [[hours(decision["median_s"]), hours(refund["median_s"])],
                       [hours(decision["p90_s"]), hours(refund["p90_s"])]],
                      [[what, duration_text(d["median_s"]), duration_text(d["p90_s"]),
                        str(d["returns"])]
                       for what, d in (("the seller's decision", decision),
                                       ("the refund", refund))]),
        "reasons-count": ranked(body["top_reasons"]["by_count"], money=False),
        "reasons-amount": ranked(ranking(body["top_reasons"], currency), money=True),
        "skus-count": ranked(body["top_skus"]["by_count"], money=False),
        "skus-amount": ranked(ranking(body["top_skus"], currency), money=True),
        "anomalies": ([label for label, _ in shares], [[percent(n) for _, n in shares]],
                      [[label, str(n), f"{to_fixed(percent(n), 1)}%"] for label, n in shares]),
    }


# ------------------------------------------------------------------- what the page shows

SHOWN = """() => Object.fromEntries([...document.querySelectorAll("#insights [data-chart]")]
  .map((figure) => {
    const chart = Chart.getChart(figure.querySelector("canvas"));
    const table = figure.querySelector("table[data-table]");
    return [figure.dataset.chart, {
      drawn: Boolean(chart && chart.chartArea && chart.chartArea.width > 50),
      labels: chart ? chart.data.labels : null,
      data: chart ? chart.data.datasets.map((d) => d.data) : null,
      rows: [...table.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent)),
    }];
  }))"""


def check_charts(page: Page, body: Doc, currency: str) -> set[str]:
    """Every chart drawn with the API's numbers in this currency; the charts with any."""
    shown = page.evaluate(SHOWN)
    assert sorted(shown) == sorted(CHARTS)
    with_data = set()
    for key, (labels, data, rows) in expected(body, currency).items():
        chart = shown[key]
        assert chart["drawn"], f"chart {key} was not drawn"
        assert chart["labels"] == labels, key
        assert chart["data"] == [[pytest.approx(v) if v is not None else None for v in values]
                                 for values in data], key
        assert chart["rows"] == (rows or [["No data"]]), key
        if any(v for values in data for v in values):
            with_data.add(key)
    return with_data


def test_every_insights_chart_shows_the_apis_numbers(seeded: Doc, system: Stack,
                                                     page: Page) -> None:
    page.goto(f"{system.query_url}/?token={TOKEN}&shop={SHOP}#insights")
    view = page.locator("#insights")
    expect(view).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(page.locator("main.content")).to_be_hidden()
    page.select_option("#insights-tz", "Asia/Kuala_Lumpur")  # days from 00:00 there (UTC+8)
    expect(view).to_have_attribute("data-query", re.compile("tz=Asia%2FKuala_Lumpur"))
    expect(view).to_have_attribute("data-state", "ready", timeout=30_000)
    query = dict(parse_qsl(view.get_attribute("data-query") or ""))
    assert query["from"].endswith("T16:00:00.000Z")  # midnight in Kuala Lumpur
    assert (query["shop_id"], query["tz"]) == (SHOP, "Asia/Kuala_Lumpur")
    body = insights(system, **{k: v for k, v in query.items() if k != "shop_id"})
    assert body["returns"] > 0
    assert body["anomalies"]["either"] > 0

    facts = dict(zip(page.locator("#insights-summary dt").all_text_contents(),
                     page.locator("#insights-summary dd").all_text_contents(), strict=True))
    assert facts == {
        "Returns requested": str(body["returns"]),
        "Refunded": " · ".join(f"{c['total']} {c['currency']}" for c in body["refunds_per_week"])
        or "none",
        "Median time to decision": duration_text(body["durations"]["to_decision"]["median_s"]),
        "With an anomaly or a rejected event": f"{to_fixed(100 * body['anomalies']['share'], 1)}%",
    }

    currencies = page.locator("#insights-currency option").evaluate_all(
        "options => options.map(o => o.value)")
    assert set(currencies) == {c["currency"] for c in body["refunds_per_week"]}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "insights.png"), full_page=True)
    with_data: set[str] = set()
    for currency in currencies:
        page.select_option("#insights-currency", currency)
        with_data |= check_charts(page, body, currency)
    assert with_data == set(CHARTS)  # the simulator's data gives every chart something to show


def test_a_chart_shows_its_table_on_demand_and_back_leads_to_the_list(
    seeded: Doc, system: Stack, page: Page,
) -> None:
    page.goto(f"{system.query_url}/?token={TOKEN}&shop={SHOP}#insights")
    expect(page.locator("#insights")).to_have_attribute("data-state", "ready", timeout=30_000)
    figure = page.locator('[data-chart="reasons-count"]')
    table = figure.locator("table")
    expect(table).to_have_class("chart-table sr-only")  # read by screen readers, not shown
    figure.get_by_role("button", name="Table").click()
    expect(table).to_be_visible()
    expect(figure.locator(".chart-box")).to_be_hidden()
    assert figure.get_by_role("button", name="Table").get_attribute("aria-pressed") == "true"
    page.click("#insights .back")
    expect(page.locator("#insights")).to_be_hidden()
    expect(page.locator("main.content")).to_be_visible()
    # back on the dashboard's opening view, "Needs action"; its other list still has the rows
    expect(page.locator("#needs-action")).to_be_visible()
    page.click("#list-returns")
    expect(page.locator("#returns-body tr").first).to_be_visible(timeout=15_000)
