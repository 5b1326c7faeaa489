"""Sync Return on real servers: the query API asks, the ingestor pulls from the TikTok Shop
simulator (a real `python -m tiktok_sim` process), the state machine applies, the API shows.

Every test uses its own shop of the session ingestor's TIKTOK_SHOPS (conftest.SYNC_SHOPS).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from tests.integration.conftest import (
    LIMITED_SHOP,
    LIMITED_TOKEN,
    Stack,
)
from tests.integration.services import http_ok, wait_until
from tests.integration.sync_support import (
    FINISHED,
    Sim,
    api_counts,
    assert_each_change_applied_once,
    canonical,
    get_job,
    histories,
    post_webhook,
    request_sync,
    return_detail,
    wait_for_job,
    wait_until_matches_sim,
)

pytestmark = pytest.mark.integration


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
