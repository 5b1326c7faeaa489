"""TikTok's deadlines on the real servers: "Needs action" (soonest deadline first), the
deadline a 202309 webhook's return is enriched with, the per-shop metric, and the signed webhook
that tells the seller's own systems once when a return enters its last 24 h. Returns reach the
read model by Sync Return of a simulated shop (and one by a webhook)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest

from tests.integration.conftest import DEADLINE_SECRET, HookReceiver, Stack
from tests.integration.services import wait_until
from tests.integration.sync_support import Sim, request_sync, wait_for_job
from tests.integration.test_decisions import Pool, api, detail, listed, synced_pool
from tests.integration.test_end_to_end import post_webhook

pytestmark = pytest.mark.integration

DAY = 86_400
SHOP_NAME = "deadlines"  # in the stack's SYNC_SHOPS


@pytest.fixture(scope="module")
def pool(stack: Stack) -> Pool:
    return synced_pool(stack, SHOP_NAME, "202309")


def test_needs_action_lists_returns_waiting_on_the_seller_soonest_deadline_first(
    stack: Stack, pool: Pool
) -> None:
    page = api(stack, "GET", "/api/v1/returns/needs-action", params={"shop_id": pool.shop})
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert items
    deadlines = [min(a["deadline"] for a in i["details"]["next_actions"]) for i in items]
    assert deadlines == sorted(deadlines)
    waiting = {i["return_id"] for i in listed(stack, pool.shop)
               if i["details"].get("next_actions")}
    assert {i["return_id"] for i in items} == waiting
    soon = api(stack, "GET", "/api/v1/returns/needs-action",
               params={"shop_id": pool.shop, "due_before": deadlines[0] + 1}).json()["items"]
    assert items[0]["return_id"] in {i["return_id"] for i in soon}
    assert all(min(a["deadline"] for a in i["details"]["next_actions"]) == deadlines[0]
               for i in soon)
    paged = api(stack, "GET", "/api/v1/returns/needs-action",
                params={"shop_id": pool.shop, "limit": 1}).json()
    second = api(stack, "GET", "/api/v1/returns/needs-action",
                 params={"shop_id": pool.shop, "limit": 1, "cursor": paged["next_cursor"]})
    assert [i["return_id"] for i in paged["items"] + second.json()["items"]] == [
        i["return_id"] for i in items[:2]]


def test_deadlines_are_counted_per_shop_and_announced_once_signed(
    stack: Stack, pool: Pool, deadline_hooks: HookReceiver
) -> None:
    shop = pool.shop
    # a return whose deadline falls within 24 h: generated until the simulator holds one
    for _ in range(10):
        made = httpx.post(f"{stack.sim_url}/_sim/returns/generate",
                          json={"shop_id": shop, "count": 20, "api_version": "202309"}).json()
        assert made["generated"] == 20
        job = wait_for_job(stack, request_sync(stack, shop))
        assert job["status"] == "succeeded"
        soon = [i for i in listed(stack, shop) if any(
            a["deadline"] - time.time() < DAY for a in i["details"].get("next_actions") or ())]
        if soon:
            break
    else:
        raise AssertionError("no return within 24 h of its deadline")
    key = f"{shop}:{soon[0]['return_id']}"

    def announced() -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in deadline_hooks.received
                if json.loads(b)["alert_id"].startswith(key + ":")]

    wait_until(lambda: bool(announced()), 30, "the deadline webhook")
    headers, body = announced()[0]
    expected = hmac.new(DEADLINE_SECRET.encode(), headers["x-returns-timestamp"].encode()
                        + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-returns-signature"] == expected
    payload = json.loads(body)
    assert payload["type"] == "return.deadline_within_24h"
    assert payload["return_id"] == soon[0]["return_id"]
    assert 0 < payload["seconds_left"] <= DAY
    assert payload["deadline"] == min(a["deadline"] for a in soon[0]["details"]["next_actions"])
    time.sleep(5)  # two more scans: no second announcement
    assert len(announced()) == 1

    metrics = httpx.get(f"{stack.ingestor_url}/metrics").text
    line = next(li for li in metrics.splitlines() if li.startswith("ingestor_returns_deadline{")
                and f'shop_id="{shop}"' in li and 'window="within_24h"' in li)
    assert float(line.rsplit(" ", 1)[1]) >= 1


def test_a_202309_webhook_is_enriched_with_the_deadline_tiktok_gives(
    stack: Stack, pool: Pool
) -> None:
    sim = Sim(stack)
    known = {i["return_id"] for i in listed(stack, pool.shop)}
    sim.generate(SHOP_NAME, 20)  # not synced: the webhook is the first the system hears
    record = next(r for r in sim.listing(SHOP_NAME)
                  if r["return_id"] not in known and r.get("seller_next_action_response"))
    webhook = {"type": 12, "tts_notification_id": uuid.uuid4().hex, "shop_id": pool.shop,
               "timestamp": int(time.time()),
               "data": {k: record[k] for k in ("order_id", "return_id", "return_type",
                                               "return_status", "create_time", "update_time")}
               | {"return_role": "BUYER"}}
    assert post_webhook(stack, webhook).status_code == 200

    def enriched() -> bool:
        response = api(stack, "GET", f"/api/v1/returns/{pool.shop}/{record['return_id']}")
        return response.status_code == 200 and bool(
            response.json()["details"].get("next_actions"))

    wait_until(enriched, 60, "the webhook's return to carry TikTok's deadline")
    shown = detail(stack, pool.shop, record["return_id"])
    assert shown["details"]["next_actions"] == record["seller_next_action_response"]
    assert len(shown["history"]) == 1  # the webhook and its snapshot: one change
    assert shown["duplicate_count"] == 1
