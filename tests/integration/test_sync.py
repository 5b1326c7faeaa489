"""Sync Return on real servers: the query API asks, the ingestor pulls from the TikTok Shop
simulator (a real `python -m tiktok_sim` process), the state machine applies, the API shows.

Every test uses its own shop of the session ingestor's TIKTOK_SHOPS (conftest.SYNC_SHOPS).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from contracts.statuses import LEGACY_STATUS_CODES, V202309_STATUS_NAMES
from ingestor.tiktok_client import TikTokClientConfig, TikTokShopClient
from tests.integration.conftest import (
    APP_KEY,
    APP_SECRET,
    LIMITED_SHOP,
    LIMITED_TOKEN,
    SIM_ACCESS_TOKEN,
    SYNC_SHOPS,
    Stack,
)
from tests.integration.services import http_ok, listed_returns, wait_until

pytestmark = pytest.mark.integration

FINISHED = ("succeeded", "failed")


# ---------------------------------------------------------------------------------- helpers


class Sim:
    """Admin side of the simulator."""

    def __init__(self, stack: Stack) -> None:
        self.url = stack.sim_url
        self.stack = stack

    def generate(self, shop_name: str, count: int) -> None:
        version = SYNC_SHOPS[shop_name][0]
        response = httpx.post(f"{self.url}/_sim/returns/generate", json={
            "shop_id": self.stack.shop(shop_name), "count": count, "api_version": version})
        response.raise_for_status()
        # The simulator dates the last steps of some returns up to a few seconds after now
        # (generate_returns: max(when, previous + 1)); a sync ending now would not see them.
        newest = max(canonical(r)[2] for r in self.listing(shop_name))
        time.sleep(max(0.0, newest + 1 - time.time()))

    def faults(self, **faults: Any) -> None:
        httpx.post(f"{self.url}/_sim/faults", json=faults).raise_for_status()

    def reset_faults(self) -> None:
        httpx.delete(f"{self.url}/_sim/faults").raise_for_status()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/_sim/stats").json()
        return result

    def status_counts(self, shop_id: str) -> dict[str, int]:
        for shop in httpx.get(f"{self.url}/_sim/shops").json():
            if shop["shop_id"] == shop_id:
                counts: dict[str, int] = shop["statuses"]
                return counts
        raise AssertionError(f"the simulator has no shop {shop_id}")

    def advance(self, shop_id: str, count: int) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.url}/_sim/returns/advance", json={
            "shop_id": shop_id, "count": count, "send_webhooks": False})
        response.raise_for_status()
        transitions: list[dict[str, Any]] = response.json()["transitions"]
        return transitions

    def record(self, shop_id: str, return_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/_sim/returns/{shop_id}/{return_id}")
        response.raise_for_status()
        record: dict[str, Any] = response.json()["record"]
        return record

    def listing(self, shop_name: str) -> list[dict[str, Any]]:
        """Every return of the shop as TikTok's search shows it (raw records, all pages)."""
        version = SYNC_SHOPS[shop_name][0]
        shop_id = self.stack.shop(shop_name)
        config = TikTokClientConfig(
            base_url=self.url, app_key=APP_KEY, app_secret=APP_SECRET,
            access_token=SIM_ACCESS_TOKEN, shop_id=shop_id,
            api_version="legacy" if version == "legacy" else "202309",
            shop_cipher=f"cipher-{shop_id}", requests_per_second=100,
        )

        async def fetch() -> list[dict[str, Any]]:
            async with TikTokShopClient(config) as client:
                return [raw async for page in client.iter_returns() for raw in page.raw]

        return asyncio.run(fetch())


def canonical(record: dict[str, Any]) -> tuple[str, str, int]:
    """(return id, canonical status, update_time) of a raw record of either generation."""
    if "reverse_order_id" in record:
        return (str(record["reverse_order_id"]),
                LEGACY_STATUS_CODES[int(record["reverse_status_value"])].value,
                int(record["reverse_update_time"]))
    return (str(record["return_id"]), V202309_STATUS_NAMES[record["return_status"]].value,
            int(record["update_time"]))


def request_sync(stack: Stack, shop_id: str, **window: int | None) -> str:
    response = httpx.post(f"{stack.query_url}/api/v1/sync", headers=stack.auth,
                          json={"shop_id": shop_id, **window}, timeout=30)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    command_id: str = body["command_id"]
    return command_id


def get_job(stack: Stack, command_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.query_url}/api/v1/sync/{command_id}", headers=stack.auth,
                         timeout=30)
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def wait_for_job(stack: Stack, command_id: str, timeout: float = 120) -> dict[str, Any]:
    job: dict[str, Any] = {}

    def finished() -> bool:
        job.update(get_job(stack, command_id))
        return job["status"] in FINISHED

    wait_until(finished, timeout, f"sync job {command_id} to finish", interval=0.25)
    return job


def api_counts(stack: Stack, shop_id: str) -> dict[str, int]:
    response = httpx.get(f"{stack.query_url}/api/v1/returns/counts",
                         params={"shop_id": shop_id}, headers=stack.auth, timeout=30)
    response.raise_for_status()
    counts: dict[str, int] = response.json()["counts"]
    return counts


def wait_for_count(stack: Stack, shop_id: str, expected: int, timeout: float = 120) -> None:
    wait_until(lambda: api_counts(stack, shop_id)["ALL"] == expected, timeout,
               f"{expected} returns of {shop_id} in the query API", interval=0.5)


def all_returns(stack: Stack, shop_id: str) -> list[dict[str, Any]]:
    return listed_returns(stack.query_url, stack.auth, shop_id)


def return_detail(stack: Stack, shop_id: str, return_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{stack.query_url}/api/v1/returns/{shop_id}/{return_id}",
                         headers=stack.auth, timeout=30)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    detail: dict[str, Any] = response.json()
    return detail


def wait_until_matches_sim(stack: Stack, sim: Sim, shop_name: str, timeout: float = 120) -> \
        list[dict[str, Any]]:
    """Wait until the API shows every return of the simulator in its current status and
    update time; return the API's returns."""
    shop_id = stack.shop(shop_name)
    expected = {canonical(r)[0]: canonical(r)[1:] for r in sim.listing(shop_name)}
    wait_for_count(stack, shop_id, len(expected), timeout)
    items: list[dict[str, Any]] = []

    def matches() -> bool:
        items[:] = all_returns(stack, shop_id)
        got = {i["return_id"]: (i["status"], i["update_time"]) for i in items}
        return got == expected

    wait_until(matches, timeout, f"{shop_id} to match the simulator", interval=1)
    return items


def histories(stack: Stack, items: list[dict[str, Any]], most: int = 30) -> list[list[Any]]:
    """The timelines of (at most `most` of) these returns, from the detail route."""
    headers = stack.auth
    return [
        httpx.get(f"{stack.query_url}/api/v1/returns/{i['shop_id']}/{i['return_id']}",
                  headers=headers, timeout=30).json()["history"]
        for i in items[:most]
    ]


def assert_each_change_applied_once(stack: Stack, items: list[dict[str, Any]],
                                    duplicates: bool) -> None:
    for item in items:
        if not duplicates:
            assert item["duplicate_count"] == 0, item["id"]
        assert item["anomaly"] is False, item["id"]
    for history in histories(stack, items):
        ids = [h["event_id"] for h in history if h["event_id"] is not None]
        assert len(ids) == len(set(ids)), f"duplicate history entries {ids}"


def post_webhook(stack: Stack, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    signature = hmac.new(APP_SECRET.encode(), APP_KEY.encode() + body, hashlib.sha256).hexdigest()
    return httpx.post(f"{stack.ingestor_url}/webhooks/tiktok", content=body,
                      headers={"Authorization": signature, "Content-Type": "application/json"})


@pytest.fixture
def sim(stack: Stack) -> Iterator[Sim]:
    simulator = Sim(stack)
    simulator.reset_faults()
    yield simulator
    simulator.reset_faults()


# ---------------------------------------------------------------------------------- tests


def test_a_thousand_returns_through_throttling_and_a_server_error(
    stack: Stack, sim: Sim
) -> None:
    shop_id = stack.shop("bulk")
    sim.generate("bulk", 1000)
    before = sim.stats()["refusals"]
    sim.faults(http_429_every=5, retry_after_s=1, http_500_once=True)

    started = time.perf_counter()
    command_id = request_sync(stack, shop_id)
    job = wait_for_job(stack, command_id)
    synced_s = time.perf_counter() - started
    assert job["status"] == "succeeded", job
    items = wait_until_matches_sim(stack, sim, "bulk")
    applied_s = time.perf_counter() - started
    print(f"\n1,000-return sync (202309, 50 a page, a 429 every 5th search, one 500): "
          f"POST -> succeeded {synced_s:.2f} s; -> all 1,000 in the API {applied_s:.2f} s; "
          f"pages={job['pages']}")

    refusals = sim.stats()["refusals"]
    assert refusals.get("http_429", 0) > before.get("http_429", 0)
    assert refusals.get("http_500", 0) > before.get("http_500", 0)
    assert job["returns_seen"] == 1000
    assert job["events_published"] == 1000
    assert job["pages"] == 20
    assert job["rejected"] == 0
    assert job["error"] is None
    assert job["since"] == 0
    assert job["until"] is not None
    assert job["finished_at"] is not None
    counts = api_counts(stack, shop_id)
    assert counts["ALL"] == 1000
    assert {s: n for s, n in counts.items() if s != "ALL" and n} == sim.status_counts(shop_id)
    assert_each_change_applied_once(stack, items, duplicates=False)
    # Money kept as decimal strings, items folded per SKU.
    assert all(i["details"]["refund"] and i["details"]["items"] for i in items)


def test_refused_credentials_fail_the_job_with_the_reason(stack: Stack, sim: Sim) -> None:
    # A shop whose access token the simulator does not know.
    sim.generate("bad-token", 10)
    job = wait_for_job(stack, request_sync(stack, stack.shop("bad-token")))
    assert job["status"] == "failed"
    assert "invalid access token" in job["error"], job["error"]
    assert "105001" in job["error"], job["error"]
    assert job["pages"] == 0
    assert job["events_published"] == 0

    # A good token that TikTok now says has expired.
    sim.generate("expired", 10)
    sim.faults(expire_token=True)
    job = wait_for_job(stack, request_sync(stack, stack.shop("expired")))
    assert job["status"] == "failed"
    assert "access token expired" in job["error"], job["error"]
    status = httpx.get(f"{stack.query_url}/api/v1/sync/status", headers=stack.auth,
                       params={"shop_id": stack.shop("expired")}).json()
    assert status["last_success_at"] is None
    assert status["synced_until"] is None

    # A shop the ingestor is not configured for.
    job = wait_for_job(stack, request_sync(stack, f"unconfigured-{stack.database}"))
    assert job["status"] == "failed", job["error"]
    assert "not configured" in job["error"], job["error"]


def test_a_second_sync_fetches_only_what_changed_since_the_first(
    stack: Stack, sim: Sim
) -> None:
    shop_id = stack.shop("checkpoint")
    sim.generate("checkpoint", 300)
    first = wait_for_job(stack, request_sync(stack, shop_id))
    assert first["status"] == "succeeded", first
    assert first["returns_seen"] == 300, first

    moved = sim.advance(shop_id, 25)
    assert moved
    time.sleep(1.5)  # the second sync's `until` (now) lies after the moves
    second = wait_for_job(stack, request_sync(stack, shop_id))
    assert second["status"] == "succeeded", second
    overlap = 300
    assert second["since"] == first["until"] - overlap
    window = range(second["since"], second["until"] + 1)  # the legacy API includes both ends
    listing = sim.listing("checkpoint")
    in_window = [r for r in listing if canonical(r)[2] in window]
    assert second["returns_seen"] == len(in_window)
    assert len(moved) <= second["returns_seen"] < 300
    assert {t["return_id"] for t in moved} <= {canonical(r)[0] for r in in_window}

    items = wait_until_matches_sim(stack, sim, "checkpoint")
    assert_each_change_applied_once(stack, items, duplicates=True)
    status = httpx.get(f"{stack.query_url}/api/v1/sync/status", headers=stack.auth,
                       params={"shop_id": shop_id}).json()
    assert status["synced_until"] == second["until"]
    assert status["last_success_at"] is not None
    assert status["running"] is None


def test_a_webhook_and_a_sync_reporting_the_same_change_are_one_history_entry(
    stack: Stack, sim: Sim
) -> None:
    shop_id = stack.shop("same-change")
    sim.generate("same-change", 1)
    (record,) = sim.listing("same-change")
    webhook = {
        "type": 12, "tts_notification_id": "7300000000000000001", "shop_id": shop_id,
        "timestamp": int(time.time()),
        "data": {"order_id": record["order_id"], "return_id": record["return_id"],
                 "return_role": record["role"], "return_type": record["return_type"],
                 "return_status": record["return_status"], "create_time": record["create_time"],
                 "update_time": record["update_time"]},
    }
    assert post_webhook(stack, webhook).status_code == 200
    wait_until(lambda: return_detail(stack, shop_id, record["return_id"]) is not None, 60,
               "the webhook's return")
    job = wait_for_job(stack, request_sync(stack, shop_id))
    assert job["status"] == "succeeded"
    assert job["events_published"] == 1

    # Three deliveries of one change: the webhook, the snapshot its enrichment fetched (a
    # 202309 webhook carries no deadline) and the sync's copy; two are duplicates.
    def merged() -> bool:
        detail = return_detail(stack, shop_id, record["return_id"])
        return detail is not None and detail["duplicate_count"] == 2

    wait_until(merged, 60, "the enrichment's and the sync's copies to be counted as duplicates")
    detail = return_detail(stack, shop_id, record["return_id"])
    assert detail is not None
    assert len(detail["history"]) == 1
    assert detail["history"][0]["notification_id"] == "7300000000000000001"
    # What the webhook lacked, the sync brought.
    assert detail["details"]["refund"]["amount"] == record["refund_amount"]["refund_total"]


def test_a_legacy_webhook_is_enriched_with_amounts_and_items(stack: Stack, sim: Sim) -> None:
    shop_id = stack.shop("enrich")
    sim.generate("enrich", 1)
    (record,) = sim.listing("enrich")
    webhook = {
        "type": 2, "shop_id": shop_id, "timestamp": int(time.time()),
        "data": {"order_id": record["order_id"], "reverse_order_id": record["reverse_order_id"],
                 "reverse_order_status": record["reverse_status_value"],
                 "reverse_event_type": "ORDER_RETURN" if record["reverse_type"] == 3
                 else "ORDER_REFUND",
                 "reverse_user": 1, "update_time": record["reverse_update_time"]},
    }
    started = time.perf_counter()
    response = post_webhook(stack, webhook)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    assert time.perf_counter() - started < 5

    def enriched() -> bool:
        detail = return_detail(stack, shop_id, record["reverse_order_id"])
        return detail is not None and detail["details"]["refund"] is not None

    wait_until(enriched, 60, "the enrichment's amounts")
    detail = return_detail(stack, shop_id, record["reverse_order_id"])
    assert detail is not None
    assert detail["details"]["refund"]["amount"] == record["refund_total"]
    assert detail["details"]["items"]
    assert len(detail["history"]) == 1
    assert detail["duplicate_count"] == 1
    metrics = httpx.get(f"{stack.ingestor_url}/metrics").text
    assert 'ingestor_webhook_enrichments_total{result="published"}' in metrics


def test_legacy_and_202309_shops_both_sync(stack: Stack, sim: Sim) -> None:
    sim.generate("gen-legacy", 150)
    sim.generate("gen-202309", 150)
    legacy = request_sync(stack, stack.shop("gen-legacy"))
    v202309 = request_sync(stack, stack.shop("gen-202309"))
    for command_id, pages in ((legacy, 2), (v202309, 3)):
        job = wait_for_job(stack, command_id)
        assert job["status"] == "succeeded", job
        assert job["returns_seen"] == 150, job
        assert job["pages"] == pages, job
    for name in ("gen-legacy", "gen-202309"):
        items = wait_until_matches_sim(stack, sim, name)
        assert_each_change_applied_once(stack, items, duplicates=False)
        sources = {h["source"] for history in histories(stack, items) for h in history}
        assert sources == {"sync_legacy" if name == "gen-legacy" else "sync_202309"}


def test_post_then_get_reports_the_finished_job(stack: Stack, sim: Sim) -> None:
    shop_id = stack.shop("api")
    sim.generate("api", 60)
    now = int(time.time())
    command_id = request_sync(stack, shop_id, since=0, until=now + 10)
    # Recorded before the command was published: readable at once.
    assert get_job(stack, command_id)["shop_id"] == shop_id

    job = wait_for_job(stack, command_id)
    assert job["status"] == "succeeded", job
    assert job["command_id"] == command_id
    assert (job["pages"], job["returns_seen"], job["events_published"], job["rejected"]) == \
        (2, 60, 60, 0)
    assert job["since"] == 0
    assert job["until"] == now + 10
    assert job["error"] is None
    created, started, finished = (datetime.fromisoformat(job[k].replace("Z", "+00:00"))
                                  for k in ("created_at", "started_at", "finished_at"))
    assert created <= started <= finished

    status = httpx.get(f"{stack.query_url}/api/v1/sync/status", headers=stack.auth,
                       params={"shop_id": shop_id}).json()
    assert status["shop_id"] == shop_id
    assert status["last_success_at"] is not None
    assert status["synced_until"] is not None
    assert status["synced_until"] <= now + 10
    assert status["running"] is None

    unknown = httpx.get(f"{stack.query_url}/api/v1/sync/00000000-0000-4000-8000-000000000000",
                        headers=stack.auth)
    assert unknown.status_code == 404
    limited = {"Authorization": f"Bearer {LIMITED_TOKEN}"}
    assert httpx.get(f"{stack.query_url}/api/v1/sync/{command_id}",
                     headers=limited).status_code == 403
    assert httpx.post(f"{stack.query_url}/api/v1/sync", headers=limited,
                      json={"shop_id": shop_id}).status_code == 403
    assert httpx.get(f"{stack.query_url}/api/v1/sync/status", headers=limited,
                     params={"shop_id": LIMITED_SHOP}).status_code == 200
    assert httpx.post(f"{stack.query_url}/api/v1/sync", headers=stack.auth,
                      json={"shop_id": shop_id, "since": 10, "until": 5}).status_code == 422


def test_the_cli_publishes_a_command_the_ingestor_runs(stack: Stack, sim: Sim) -> None:
    shop_id = stack.shop("cli")
    sim.generate("cli", 40)
    done = subprocess.run(
        [sys.executable, "-m", "ingestor.sync_cli", "--shop-id", shop_id, "--since", "0"],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.env["KAFKA_BOOTSTRAP_SERVERS"]},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    command_id = done.stdout.strip()

    def recorded() -> bool:
        response = httpx.get(f"{stack.query_url}/api/v1/sync/{command_id}",
                             headers=stack.auth, timeout=30)
        return response.status_code == 200 and response.json()["status"] in FINISHED

    wait_until(recorded, 60, "the CLI's sync job")
    job = get_job(stack, command_id)
    assert job["status"] == "succeeded", job
    assert job["returns_seen"] == 40, job


# Last: it kills and restarts the session's ingestor.
@pytest.mark.slow
def test_a_sync_killed_half_way_runs_again_and_loses_nothing(stack: Stack, sim: Sim) -> None:
    shop_id = stack.shop("killed")
    ingestor = stack.processes["ingestor"]
    sim.generate("killed", 1000)
    sim.faults(delay_ms=300)  # 20 pages: about 6 s
    command_id = request_sync(stack, shop_id)
    wait_until(lambda: get_job(stack, command_id)["pages"] >= 4, 60, "the sync to be half way")
    ingestor.kill()
    half = get_job(stack, command_id)
    assert half["status"] == "running", half
    assert half["pages"] < 20, half
    sim.reset_faults()

    # Its successor gets the unacknowledged command again, waits for the dead process's lease
    # to expire and runs the sync again from the unchanged checkpoint.
    try:
        ingestor.start()
        wait_until(lambda: http_ok(f"{stack.ingestor_url}/readyz"), 60, "ingestor restarted")
        job = wait_for_job(stack, command_id, timeout=180)
    finally:
        if not ingestor.running():
            ingestor.start()
    assert job["status"] == "succeeded", job
    assert job["returns_seen"] == 1000
    assert job["since"] == 0
    items = wait_until_matches_sim(stack, sim, "killed")
    assert len(items) == 1000
    assert_each_change_applied_once(stack, items, duplicates=True)
