"""The seller's dashboard in a real browser (Debian's Chromium driven by Playwright) against the
running system: the three services and the TikTok Shop simulator of the session `stack`.

Returns reach the dashboard's shop through signed webhooks (histories with a duplicate and an
anomaly) and, when the shop is one the session ingestor may sync, through the Sync Returns
button from the simulator. Screenshots: test-artifacts/dashboard.png (the list),
test-artifacts/dashboard-detail.png (a return's detail open).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.integration.conftest import TOKEN, TOKEN_LABEL, Stack
from tests.integration.services import wait_until
from tests.integration.sync_support import request_sync, wait_for_job
from tests.integration.test_end_to_end import (
    T0,
    post_webhook,
    wait_for_status,
    webhook_202309,
    webhook_legacy,
)

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DASHBOARD_SYNC_SHOP = "dashboard"  # its name in the stack's SYNC_SHOPS
ACTIONS_SYNC_SHOP = "dashboard-actions"  # the shop the seller acts on
SIM_RETURNS = 40
T = 100_000  # seconds after the webhook helpers' T0 (test_end_to_end)


def api_get(stack: Stack, path: str, **params: Any) -> Any:
    response = httpx.get(f"{stack.query_url}{path}", params=params, headers=stack.auth, timeout=10)
    response.raise_for_status()
    return response.json()


def seed_webhooks(stack: Stack, shop: str) -> dict[str, str]:
    """Returns with telling histories; their final status by return id."""
    deliveries = [
        webhook_202309(shop, "dash-1", "RETURN_OR_REFUND_REQUEST_PENDING", T),
        webhook_202309(shop, "dash-1", "REFUND_OR_RETURN_REQUEST_REJECT", T + 100),
        webhook_legacy(shop, "dash-2", 100, T),  # COMPLETE, then an impossible re-opening
        webhook_legacy(shop, "dash-2", 1, T + 100),
        webhook_202309(shop, "dash-3", "AWAITING_BUYER_SHIP", T),
        webhook_202309(shop, "dash-3", "BUYER_SHIPPED_ITEM", T + 100),
        webhook_legacy(shop, "dash-4", 1, T + 50),
        webhook_202309(shop, "dash-5", "RETURN_OR_REFUND_REQUEST_COMPLETE", T + 60),
        webhook_202309(shop, "dash-6", "RETURN_OR_REFUND_REQUEST_CANCEL", T + 70),
    ]
    deliveries.insert(1, deliveries[0])  # a redelivery: counted as a duplicate
    for payload in deliveries:
        assert post_webhook(stack, payload).status_code == 200
    expected = {
        "dash-1": "AFTERSALE_REJECT_APPLICATION",
        "dash-2": "COMPLETE",
        "dash-3": "AFTERSALE_BUYER_SHIPPED",
        "dash-4": "AFTERSALE_APPLYING",
        "dash-5": "COMPLETE",
        "dash-6": "CANCEL_SUCCESS",
    }
    for return_id, status in expected.items():
        wait_for_status(stack, shop, return_id, status)
    wait_until(
        lambda: api_get(stack, f"/api/v1/returns/{shop}/dash-2")["anomaly"] is True,
        60,
        "the anomaly of dash-2",
    )
    return expected


def wait_for_settled_counts(stack: Stack, shop: str, at_least: int) -> dict[str, int]:
    """The shop's counts once they stop changing (the state machine has caught up)."""
    last: dict[str, int] = {}
    stable_since = time.monotonic()

    def settled() -> bool:
        nonlocal last, stable_since
        counts: dict[str, int] = api_get(stack, "/api/v1/returns/counts", shop_id=shop)["counts"]
        if counts != last:
            last, stable_since = counts, time.monotonic()
        return counts["ALL"] >= at_least and time.monotonic() - stable_since > 3

    wait_until(settled, 90, f"the counts of {shop} to settle", interval=0.5)
    return last


@pytest.fixture(scope="module")
def browser_page() -> Iterator[Page]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            context.close()
            browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def test_the_dashboard_shows_the_sellers_returns(stack: Stack, browser_page: Page) -> None:
    page = browser_page
    shop = stack.shop(DASHBOARD_SYNC_SHOP)
    seeded = seed_webhooks(stack, shop)
    generated = httpx.post(
        f"{stack.sim_url}/_sim/returns/generate",
        json={"shop_id": shop, "count": SIM_RETURNS, "api_version": "202309"},
    )
    assert generated.status_code == 200, generated.text

    page.goto(f"{stack.query_url}/?token={TOKEN}&shop={shop}")
    expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=15_000)
    assert "token=" not in page.url  # the token left the address bar
    page.click("#list-returns")  # the dashboard opens on "Needs action"
    expect(page.locator("body")).to_have_attribute("data-list", "returns")
    expect(page.locator("#shop")).to_have_value(shop)

    # -- Sync Returns: fetch the simulator's returns through the button
    page.click("#sync-button")
    status = page.locator("#sync-status")
    expect(status).to_have_attribute("data-state", re.compile("succeeded|failed"), timeout=90_000)
    expect(status).to_have_attribute("data-state", "succeeded")
    expect(status).to_contain_text("Sync finished")
    expect(page.locator("#last-sync")).to_contain_text("Last successful sync")

    # A synced return the state machine cannot apply is rejected, not listed: expect some.
    counts = wait_for_settled_counts(stack, shop, len(seeded) + 1)

    # -- every tab, in the contract's order, shows the API's count
    meta = api_get(stack, "/api/v1/meta/tabs")
    tabs = page.locator("#tabs [data-tab]")
    expect(tabs).to_have_count(len(meta["tabs"]))
    assert [t["key"] for t in meta["tabs"]][:2] == ["ALL", "AFTERSALE_APPLYING"]
    for index, tab in enumerate(meta["tabs"]):
        button = tabs.nth(index)
        expect(button).to_have_attribute("data-tab", tab["key"])
        expect(button).to_contain_text(tab["label"])
        expect(button).to_have_attribute("data-count", str(counts[tab["key"]]), timeout=15_000)

    # -- the list of a tab holds that tab's returns
    rows = page.locator("#returns-body tr")
    page.click('[data-tab="AFTERSALE_APPLYING"]')
    expect(page.locator('[data-tab="AFTERSALE_APPLYING"]')).to_have_attribute(
        "aria-selected", "true"
    )
    # (the rows of the tab before may hold as many rows: wait for the other statuses to go)
    expect(page.locator('#returns-body tr:not([data-status="AFTERSALE_APPLYING"])')
           ).to_have_count(0)
    expect(rows).to_have_count(min(counts["AFTERSALE_APPLYING"], 25))
    statuses = rows.evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert set(statuses) == {"AFTERSALE_APPLYING"}
    page.click('[data-tab="COMPLETE"]')
    expect(page.locator('#returns-body tr:not([data-status="COMPLETE"])')).to_have_count(0)
    expect(rows).to_have_count(min(counts["COMPLETE"], 25))
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)")) == {"COMPLETE"}

    # -- search an order id (from the All tab)
    page.click('[data-tab="ALL"]')
    expect(rows).to_have_count(min(counts["ALL"], 25))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
    page.fill("#search", "o-dash-1")
    page.press("#search", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-return-id", "dash-1")
    expect(rows.first).to_contain_text("o-dash-1")

    # -- the detail: its timeline with each entry's outcome, and the duplicate count
    rows.first.click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(detail).to_have_attribute("data-return-id", "dash-1")
    history = api_get(stack, f"/api/v1/returns/{shop}/dash-1")["history"]
    entries = page.locator("#timeline li")
    expect(entries).to_have_count(len(history))
    outcomes = entries.evaluate_all("items => items.map(i => i.dataset.outcome)")
    assert outcomes == [h["outcome"] for h in history] == ["applied", "applied"]
    expect(entries.nth(1)).to_contain_text("Aftersale reject application")
    expect(page.locator("#duplicates")).to_have_text("1 duplicate delivery")

    # the anomaly: its rejected entry is marked, and the detail carries the badge
    page.fill("#search", "dash-2")
    page.press("#search", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge-anomaly")).to_be_visible()
    rows.first.click()
    expect(detail).to_have_attribute("data-return-id", "dash-2")
    expect(page.locator("#detail-title .badge-anomaly")).to_be_visible()
    expect(page.locator('#timeline li[data-outcome="rejected"]')).to_have_count(1)

    # -- a second screenshot: the list with a detail open
    page.fill("#search", "")
    page.press("#search", "Enter")
    expect(rows).to_have_count(min(counts["ALL"], 25))
    shown = rows.first.get_attribute("data-return-id")
    assert shown
    page.locator(f'#returns-body tr[data-return-id="{shown}"]').click()
    expect(detail).to_have_attribute("data-return-id", shown)
    shown_history = api_get(stack, f"/api/v1/returns/{shop}/{shown}")["history"]
    expect(page.locator("#timeline li")).to_have_count(len(shown_history))
    page.screenshot(path=str(ARTIFACTS / "dashboard-detail.png"))

    # -- it refreshes by itself: a new return appears without a reload
    newest = int(time.time()) + 3600 - T0  # after every simulated return: on the first page
    assert post_webhook(stack, webhook_legacy(shop, "dash-7", 1, newest)).status_code == 200
    expect(page.locator('#returns-body tr[data-return-id="dash-7"]')).to_have_count(
        1, timeout=30_000
    )
    # ... and the All tab's count with it, to the API's (which has counted dash-7 by now; it
    # may count more: the state machine can still be applying a late batch of the sync)
    all_tab = page.locator('[data-tab="ALL"]')

    def tab_shows_the_new_count() -> bool:
        total = api_get(stack, "/api/v1/returns/counts", shop_id=shop)["counts"]["ALL"]
        return total > counts["ALL"] and all_tab.get_attribute("data-count") == str(total)

    wait_until(tab_shows_the_new_count, 30, "the All tab to show the API's new count",
               interval=0.5)


def test_without_a_token_the_dashboard_asks_for_one(stack: Stack, browser_page: Page) -> None:
    page = browser_page
    page.goto(f"{stack.query_url}/")
    page.evaluate("() => sessionStorage.clear()")
    page.goto(f"{stack.query_url}/")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token-input", "not-a-token")
    page.press("#token-input", "Enter")
    expect(page.locator("#login-message")).to_contain_text("not accepted")
    page.fill("#token-input", TOKEN)
    page.press("#token-input", "Enter")
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-loaded", "true", timeout=15_000)


def test_the_csv_export_downloads_the_current_filter(stack: Stack, browser_page: Page) -> None:
    page = browser_page
    shop = f"csv-{uuid.uuid4().hex[:8]}"
    assert post_webhook(stack, webhook_legacy(shop, "csv-1", 1, T)).status_code == 200
    wait_for_status(stack, shop, "csv-1", "AFTERSALE_APPLYING")
    page.goto(f"{stack.query_url}/?token={TOKEN}&shop={shop}")
    page.click("#list-returns")
    expect(page.locator("#returns-body tr")).to_have_count(1, timeout=15_000)
    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    assert download.suggested_filename.startswith(f"returns-{shop}-")
    text = Path(download.path()).read_text()
    lines = text.strip().splitlines()
    assert lines[0].startswith("order_id,return_id,reverse_type,status")
    assert len(lines) == 2
    assert lines[1].startswith("o-csv-1,csv-1,REFUND_ONLY,AFTERSALE_APPLYING")


def test_the_seller_approves_and_rejects_from_needs_action(
    stack: Stack, browser_page: Page
) -> None:
    page = browser_page
    shop = stack.shop(ACTIONS_SYNC_SHOP)
    generated = httpx.post(f"{stack.sim_url}/_sim/returns/generate",
                           json={"shop_id": shop, "count": SIM_RETURNS, "api_version": "202309"})
    assert generated.status_code == 200, generated.text
    job = wait_for_job(stack, request_sync(stack, shop))
    assert job["status"] == "succeeded", job
    wait_for_settled_counts(stack, shop, SIM_RETURNS // 2)
    waiting = api_get(stack, "/api/v1/returns/needs-action", shop_id=shop)["items"]
    assert len(waiting) >= 2

    page.goto(f"{stack.query_url}/")
    page.evaluate("() => sessionStorage.clear()")  # a first visit: no list chosen before
    page.goto(f"{stack.query_url}/?token={TOKEN}&shop={shop}")
    expect(page.locator("body")).to_have_attribute("data-list", "needs-action")
    expect(page.locator("#needs-action")).to_have_attribute("data-loaded", "true", timeout=15_000)
    rows = page.locator("#action-body tr")
    expect(rows).to_have_count(len(waiting))
    expect(page.locator("#needs-action-count")).to_have_attribute("data-count", str(len(waiting)))
    shown = rows.evaluate_all("rows => rows.map(r => [r.dataset.returnId, +r.dataset.deadline])")
    assert [r for r, _ in shown] == [i["return_id"] for i in waiting]  # soonest deadline first
    assert [d for _, d in shown] == sorted(d for _, d in shown)
    marks = page.locator("#action-body .countdown").evaluate_all(
        "nodes => nodes.map(n => [+n.dataset.deadline, n.dataset.urgent, n.textContent])")
    now = time.time()
    for deadline, urgent, text in marks:
        assert urgent == ("true" if deadline - now < 86_400 else "false"), (deadline, urgent)
        assert text.endswith("left") or text.startswith("overdue")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "needs-action.png"))

    approved, rejected = waiting[0], waiting[1]
    detail = page.locator("#detail")

    # -- approve the most urgent one
    page.locator(f'#action-body tr[data-return-id="{approved["return_id"]}"]').click()
    expect(detail).to_have_attribute("data-return-id", approved["return_id"])
    page.click("#approve-button")
    expect(page.locator("#decision-status")).to_have_attribute("data-state", "accepted",
                                                               timeout=30_000)
    moved_on(page, approved)

    # -- reject the next one with one of TikTok's reasons
    page.locator(f'#action-body tr[data-return-id="{rejected["return_id"]}"]').click()
    expect(detail).to_have_attribute("data-return-id", rejected["return_id"])
    expect(page.locator("#reject-reason")).to_have_attribute("data-loaded", "true",
                                                             timeout=15_000)
    reason = page.locator("#reject-reason option").nth(1)
    reason_name = reason.get_attribute("value")
    assert reason_name
    page.select_option("#reject-reason", reason_name)
    page.fill("#reject-comment", "Seen in the parcel photos")
    page.click("#reject-button")
    expect(page.locator("#decision-status")).to_have_attribute("data-state", "accepted",
                                                               timeout=30_000)
    moved_on(page, rejected)
    logged = page.locator('#decisions li[data-decision="reject"]')
    expect(logged).to_contain_text(reason_name)
    expect(logged).to_contain_text("Seen in the parcel photos")
    page.screenshot(path=str(ARTIFACTS / "decision-detail.png"))
    for item in (approved, rejected):
        decided = api_get(stack, f"/api/v1/returns/{shop}/{item['return_id']}")
        assert decided["status"] != item["status"]
        assert [d["status"] for d in decided["decisions"]] == ["accepted"]


def moved_on(page: Page, item: dict[str, Any]) -> None:
    """The return left Needs action and its detail shows TikTok's new status (the webhook)."""
    expect(page.locator(f'#action-body tr[data-return-id="{item["return_id"]}"]')).to_have_count(
        0, timeout=30_000)
    expect(page.locator("#detail-body .status").first).not_to_have_attribute(
        "data-status", item["status"], timeout=30_000)
    expect(page.locator('#decisions li[data-decision-status="accepted"]')).to_have_count(1)
    expect(page.locator("#decisions li").first).to_contain_text(f"by {TOKEN_LABEL}")
