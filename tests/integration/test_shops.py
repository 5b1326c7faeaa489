"""Connected shops on real servers and the TikTok simulator (issue 16): the whole OAuth flow,
tokens encrypted at rest, renewal before expiry and on an expired answer, a refused renewal,
syncs of several shops at once, and no token in any log, metric or answer.

Stacks of their own (`shops_stack`): one with the background refresher for most tests, and one
without it where a sync must renew tokens on TikTok's "expired" answer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import sync_playwright
from pymongo import MongoClient

from contracts.read_model import SYNC_JOBS_COLLECTION
from contracts.shops import SHOPS_COLLECTION
from tests.conftest import TEST_SHOP_TOKEN_KEY
from tests.integration.services import wait_until
from tests.integration.shops_stack import (
    ADMIN_TOKEN,
    LIMITED_TOKEN,
    SECRET_MARKERS,
    ShopsStack,
    start_stack,
)
from tests.integration.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def log_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shops-logs")


@pytest.fixture(scope="module")
def system(kafka_bootstrap: str, mongodb_url: str, log_root: Path) -> Iterator[ShopsStack]:
    """A stack whose ingestor renews tokens in the background."""
    log_dir = log_root / "refresher-on"
    log_dir.mkdir()
    stack = start_stack(kafka_bootstrap, mongodb_url, log_dir, refresher=True,
                        state_machine=True, legacy_shops=("legacy",))
    try:
        yield stack
    finally:
        stack.stop()


def stored_shop(mongodb_url: str, database: str, shop_id: str) -> dict[str, Any]:
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongodb_url) as client:
        doc = client[database][SHOPS_COLLECTION].find_one({"_id": shop_id})
    assert doc is not None
    return doc


def shops_page_text(stack: ShopsStack, shop: str) -> str:
    """The Shops page's row of a shop, as Chromium renders it."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{stack.query_url}/shops?token={ADMIN_TOKEN}")
            row = page.locator(f'tr[data-shop="{shop}"]')
            row.wait_for(timeout=15_000)
            text = row.inner_text()
            assert not errors, errors
            return text
        finally:
            browser.close()


def shop_id(name: str, stack: ShopsStack) -> str:
    return f"{name}-{stack.database}"


def test_a_shop_is_connected_through_the_whole_authorization_flow(
    system: ShopsStack, mongodb_url: str
) -> None:
    shop = shop_id("oauth", system)
    system.token_life(access_s=3600)
    landed = system.connect(shop)

    # Query API -> TikTok's page -> the ingestor's callback -> the dashboard's Shops page.
    hops = [str(r.url).split("?")[0] for r in landed.history]
    assert hops == [f"{system.query_url}/api/v1/shops/connect",
                    f"{system.sim_url}/oauth/authorize",
                    f"{system.ingestor_url}/oauth/tiktok/callback"], hops
    assert landed.status_code == 200
    assert str(landed.url).startswith(f"{system.query_url}/shops?connected={shop}")
    assert "Connect a shop" in landed.text

    shown = system.shops()[shop]
    assert shown["status"] == "connected"
    assert shown["api_version"] == "202309"
    assert shown["source"] == "oauth"
    assert shown["access_expires_at"] > time.time() + 3000
    assert shown["granted_scopes"]
    assert not {"access_token", "refresh_token", "access_token_enc",
                "refresh_token_enc"} & set(shown)

    # At rest: encrypted with the key, never the token itself.
    doc = stored_shop(mongodb_url, system.database, shop)
    assert doc["cipher"] == f"cipher-{shop}"
    assert "sim-at-" not in str(doc)
    assert "sim-rt-" not in str(doc)
    plain = Fernet(TEST_SHOP_TOKEN_KEY).decrypt(doc["access_token_enc"].encode()).decode()
    assert plain.startswith("sim-at-")


def test_only_a_token_granted_every_shop_may_connect_and_others_see_only_their_shops(
    system: ShopsStack,
) -> None:
    limited = {"Authorization": f"Bearer {LIMITED_TOKEN}"}
    refused = httpx.get(f"{system.query_url}/api/v1/shops/connect", headers=limited)
    assert refused.status_code == 403
    answer = httpx.get(f"{system.query_url}/api/v1/shops/connect?redirect=false",
                       headers=system.admin)
    assert answer.status_code == 200
    assert answer.json()["authorize_url"].startswith(f"{system.sim_url}/oauth/authorize?state=")
    assert system.shops(LIMITED_TOKEN) == {}  # granted only a shop that is not connected
    forged = httpx.get(f"{system.ingestor_url}/oauth/tiktok/callback",
                       params={"code": "sim-ac-forged", "state": "1.abc.00"})
    assert forged.status_code == 400
    assert "signature" in forged.json()["detail"]


def test_the_refresher_renews_tokens_before_they_expire(
    system: ShopsStack, mongodb_url: str
) -> None:
    shop = shop_id("renewed", system)
    system.generate(shop, 200)
    system.token_life(access_s=6)
    system.connect(shop)
    before = system.auth_counts()
    first = stored_shop(mongodb_url, system.database, shop)["token_version"]
    system.sim("POST", "/_sim/faults", {"delay_ms": 1500})  # 4 pages: 6 s, a token's life
    try:
        deadline = time.monotonic() + 20
        jobs = []
        while time.monotonic() < deadline:
            jobs.append(system.sync(shop))
    finally:
        system.sim("DELETE", "/_sim/faults")
    after = system.auth_counts()
    renewed = stored_shop(mongodb_url, system.database, shop)["token_version"] - first
    assert renewed >= 3, renewed
    assert after.get("refreshes", 0) - before.get("refreshes", 0) >= 3
    # Always renewed in time: TikTok never had to say a token expired.
    assert after.get("expired_calls", 0) == before.get("expired_calls", 0)
    assert all(job["status"] == "succeeded" for job in jobs), jobs
    assert jobs[0]["returns_seen"] == 200  # later ones resume from its checkpoint
    assert system.shops()[shop]["status"] == "connected"


def test_a_revoked_refresh_token_makes_the_shop_need_reauthorization(
    system: ShopsStack,
) -> None:
    shop = shop_id("revoked", system)
    system.generate(shop, 20)
    system.token_life(access_s=3)
    system.connect(shop)
    system.sim("POST", "/_sim/auth/revoke", {"shop_id": shop})

    wait_until(lambda: system.shops()[shop]["status"] == "needs_reauthorization", 30,
               "the refused renewal to be recorded")
    shown = system.shops()[shop]
    assert "authorize the app again" in shown["status_reason"]
    said = shops_page_text(system, shop)
    assert "Needs re-authorization" in said
    assert "authorize the app again" in said
    assert "Connect again" in said
    job = system.sync(shop)
    assert job["status"] == "failed"
    assert "needs re-authorization" in job["error"], job["error"]

    # Connecting again puts it back.
    system.token_life(access_s=3600)
    system.connect(shop)
    assert system.shops()[shop]["status"] == "connected"
    assert system.sync(shop)["status"] == "succeeded"


def test_a_sync_runs_across_three_token_expiries_renewing_on_the_expired_answer(
    kafka_bootstrap: str, mongodb_url: str, log_root: Path
) -> None:
    log_dir = log_root / "refresher-off"
    log_dir.mkdir()
    stack = start_stack(kafka_bootstrap, mongodb_url, log_dir, refresher=False)
    try:
        shop = shop_id("expiring", stack)
        stack.generate(shop, 400)  # 8 pages of 50
        stack.token_life(access_s=3)
        stack.connect(shop)
        stack.sim("POST", "/_sim/faults", {"delay_ms": 1500})  # 12 s: four lives of a token
        job = stack.sync(shop)
        counts = stack.auth_counts()
    finally:
        stack.stop()
    assert job["status"] == "succeeded", job
    assert job["returns_seen"] == 400
    assert job["pages"] == 8
    assert counts.get("expired_calls", 0) >= 3, counts
    assert counts.get("refreshes", 0) >= 3, counts


def test_two_shops_sync_at_once(system: ShopsStack) -> None:
    first, second = shop_id("pair-a", system), shop_id("pair-b", system)
    for shop in (first, second):
        system.generate(shop, 150)
    system.token_life(access_s=3600)
    system.connect(first, second)
    system.sim("POST", "/_sim/faults", {"delay_ms": 1000})  # 3 pages each: 3 s alone
    jobs: dict[str, dict[str, Any]] = {}
    try:
        threads = [threading.Thread(target=lambda s=shop: jobs.update({s: system.sync(s)}))
                   for shop in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        system.sim("DELETE", "/_sim/faults")
    a, b = jobs[first], jobs[second]
    assert a["status"] == "succeeded", a
    assert b["status"] == "succeeded", b
    # They overlapped: each started before the other finished.
    assert a["started_at"] < b["finished_at"]
    assert b["started_at"] < a["finished_at"]


def test_a_second_sync_of_a_busy_shop_is_refused_with_retry_after(system: ShopsStack) -> None:
    shop = shop_id("busy", system)
    system.generate(shop, 100)
    system.token_life(access_s=3600)
    system.connect(shop)
    system.sim("POST", "/_sim/faults", {"delay_ms": 1500})
    try:
        first = system.request_sync(shop)
        assert first.status_code == 202
        again = system.request_sync(shop)
        assert again.status_code == 429
        assert int(again.headers["Retry-After"]) > 0
        assert first.json()["command_id"] in again.json()["detail"]
        job = system.wait_for_job(first.json()["command_id"])
    finally:
        system.sim("DELETE", "/_sim/faults")
    assert job["status"] == "succeeded"
    assert system.request_sync(shop).status_code == 202  # free again


def test_a_job_whose_worker_stopped_is_failed_and_no_longer_blocks_the_shop(
    system: ShopsStack, mongodb_url: str
) -> None:
    shop = shop_id("orphan", system)
    system.token_life(access_s=3600)
    system.connect(shop)
    dead = "00000000-0000-4000-8000-00000000dead"
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    orphan: dict[str, Any] = {
        "_id": dead, "shop_id": shop, "status": "running", "owner": "a-dead-process",
        "heartbeat_at": long_ago, "created_at": long_ago, "started_at": long_ago,
        "pages": 3, "returns_seen": 0, "events_published": 0, "rejected": 0}
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, tz_aware=True)
    with client:
        client[system.database][SYNC_JOBS_COLLECTION].insert_one(orphan)
    job = system.sync(shop)
    assert job["status"] == "succeeded"
    stopped = system.job(dead)
    assert stopped["status"] == "failed"
    assert "worker stopped" in stopped["error"]


def test_disconnect_stops_using_the_shop_and_deletes_its_tokens(
    system: ShopsStack, mongodb_url: str
) -> None:
    shop = shop_id("leaving", system)
    system.token_life(access_s=3600)
    system.connect(shop)
    response = httpx.post(f"{system.query_url}/api/v1/shops/{shop}/disconnect",
                          headers=system.admin)
    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"
    doc = stored_shop(mongodb_url, system.database, shop)
    assert "access_token_enc" not in doc
    assert "refresh_token_enc" not in doc
    job = system.sync(shop)
    assert job["status"] == "failed"
    assert "disconnected" in job["error"]


def test_a_legacy_sync_with_returns_updated_while_it_pages_and_the_next_one_miss_none(
    system: ShopsStack,
) -> None:
    shop = system.legacy_shop("legacy")
    system.generate(shop, 500, api_version="legacy")  # 5 pages of 100
    system.sim("POST", "/_sim/faults", {"update_while_paging": 10})  # ~10 % move meanwhile
    try:
        first = system.sync(shop)
    finally:
        system.sim("DELETE", "/_sim/faults")
    assert first["status"] == "succeeded", first
    moved = system.sim("GET", "/_sim/stats")["updated_while_paging"]
    assert moved >= 40, moved
    truth = system.listing(shop)
    assert len(truth) == 500

    # The first sync alone: every return whose update time is inside its window, as it is now.
    inside = {rid: seen for rid, seen in truth.items() if seen[1] < first["until"]}

    missing: dict[str, tuple[str, int] | None] = {}

    def first_complete() -> bool:
        shown = system.shown(shop)
        missing.clear()
        missing.update({rid: shown.get(rid) for rid, seen in inside.items()
                        if shown.get(rid) != seen})
        return not missing  # one that moved past the window before it was read: next sync

    try:
        wait_until(first_complete, 180, "the first sync's returns in the query API", interval=1)
    except TimeoutError:
        sample = {rid: (inside[rid], missing[rid]) for rid in list(missing)[:5]}
        raise AssertionError(f"{len(missing)} returns differ (simulator, API): {sample}; "
                             f"first sync {first}") from None
    # Together with the next sync (from the first one's checkpoint minus the overlap): all.
    second = system.sync(shop)
    assert second["status"] == "succeeded", second
    wait_until(lambda: system.shown(shop) == truth, 180, "the simulator's returns", interval=1)


# Last: it reads what every test above left in the logs.
def test_no_token_or_secret_in_any_log_metric_or_answer(
    system: ShopsStack, log_root: Path
) -> None:
    logs = {str(p.relative_to(log_root)): p.read_text(errors="replace")
            for p in log_root.rglob("*.log")}
    assert len(logs) >= 4, logs.keys()  # query API and ingestor of both stacks
    assert "shops_connected" in "".join(logs.values())
    for name, text in logs.items():
        for marker in SECRET_MARKERS:
            assert marker not in text, f"{marker[:8]}... in {name}"
    answers = [
        httpx.get(f"{system.ingestor_url}/metrics").text,
        httpx.get(f"{system.query_url}/metrics").text,
        httpx.get(f"{system.query_url}/api/v1/shops", headers=system.admin).text,
        httpx.get(f"{system.query_url}/openapi.json").text,
    ]
    for text in answers:
        for marker in SECRET_MARKERS:
            assert marker not in text
    assert ADMIN_TOKEN not in "".join(logs.values())
