"""Acting on returns on the real servers: the query API, Kafka, the ingestor, the simulated
TikTok (which checks every decision and pushes the webhook that moves the return on) and the
state machine. Returns reach the read model by a Sync Return of a simulated shop."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts.decisions import DecisionCommand
from contracts.statuses import ReturnStatus, ReverseType
from contracts.topics import DECISIONS_TOPIC
from tests.integration.conftest import (
    LIMITED_TOKEN,
    READ_TOKEN,
    TOKEN_LABEL,
    Stack,
)
from tests.integration.services import wait_until
from tests.integration.sync_support import request_sync, wait_for_job
from tiktok_sim.seller_actions import REJECT_REASONS

pytestmark = pytest.mark.integration

SIM_RETURNS = 60
DAY = 86_400


def api(stack: Stack, method: str, path: str, token: str | None = None, **kwargs: Any
        ) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else dict(stack.auth)
    headers |= kwargs.pop("headers", {})
    return httpx.request(method, f"{stack.query_url}{path}", headers=headers, timeout=30,
                         **kwargs)


def decide(stack: Stack, shop: str, return_id: str, body: dict[str, Any], *,
           key: str | None = None, token: str | None = None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return api(stack, "POST", f"/api/v1/returns/{shop}/{return_id}/decisions", token,
               json=body, headers=headers)


def detail(stack: Stack, shop: str, return_id: str) -> dict[str, Any]:
    response = api(stack, "GET", f"/api/v1/returns/{shop}/{return_id}")
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def wait_for_decision(stack: Stack, decision_id: str, *statuses: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(api(stack, "GET", f"/api/v1/decisions/{decision_id}").json())
        return bool(found.get("status") in statuses)

    wait_until(done, 60, f"decision {decision_id} to be {' or '.join(statuses)}")
    return found


def approved(stack: Stack, shop: str, item: dict[str, Any]) -> dict[str, Any]:
    """Approve a return and wait until TikTok accepted the decision."""
    response = decide(stack, shop, item["return_id"], {"decision": "approve"})
    assert response.status_code == 202, response.text
    done = wait_for_decision(stack, response.json()["decision_id"], "accepted", "refused",
                             "failed")
    assert done["status"] == "accepted", done
    return done


def wait_for_move(stack: Stack, shop: str, return_id: str, away_from: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def moved() -> bool:
        found.clear()
        found.update(detail(stack, shop, return_id))
        return bool(found["status"] != away_from)

    wait_until(moved, 60, f"{shop}/{return_id} to move on from {away_from}")
    return found


def sim_calls(stack: Stack, shop: str, return_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.sim_url}/_sim/decisions",
                         params={"shop_id": shop, "return_id": return_id})
    response.raise_for_status()
    calls: list[dict[str, Any]] = response.json()
    return calls


def listed(stack: Stack, shop: str, **params: Any) -> list[dict[str, Any]]:
    response = api(stack, "GET", "/api/v1/returns", params={"shop_id": shop, "limit": 200,
                                                            **params})
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


class Pool:
    """The synced returns of a shop that offer a decision, handed out one per test."""

    def __init__(self, stack: Stack, shop: str) -> None:
        self.stack, self.shop = stack, shop
        self.taken: set[str] = set()

    def take(self, status: str = "AFTERSALE_APPLYING", reverse_type: str | None = None
             ) -> dict[str, Any]:
        for item in listed(self.stack, self.shop, status=status):
            if item["return_id"] in self.taken or not item["allowed_decisions"]:
                continue
            if reverse_type is None or item["reverse_type"] == reverse_type:
                self.taken.add(item["return_id"])
                return item
        raise AssertionError(f"no {status} {reverse_type or ''} return left in {self.shop}")


def synced_pool(stack: Stack, name: str, version: str) -> Pool:
    shop = stack.shop(name)
    generated = httpx.post(f"{stack.sim_url}/_sim/returns/generate",
                           json={"shop_id": shop, "count": SIM_RETURNS, "api_version": version})
    assert generated.status_code == 200, generated.text
    job = wait_for_job(stack, request_sync(stack, shop))
    assert job["status"] == "succeeded", job

    def all_there() -> bool:
        counts = api(stack, "GET", "/api/v1/returns/counts", params={"shop_id": shop}).json()
        return int(counts["counts"]["ALL"]) >= SIM_RETURNS // 2  # some are rejected: invalid

    wait_until(all_there, 90, f"the returns of {shop}")
    time.sleep(2)  # the last records of the sync are folded
    return Pool(stack, shop)


@pytest.fixture(scope="module")
def pool(stack: Stack) -> Pool:
    return synced_pool(stack, "decisions", "202309")


def test_the_same_decision_posted_twice_reaches_tiktok_once_and_the_return_moves_on(
    stack: Stack, pool: Pool
) -> None:
    item = pool.take()
    key = f"click-{uuid.uuid4().hex}"
    # TikTok answers slowly, so the decision is still pending at the third post: else the
    # return may already have moved on (a new status offers no approval: 409, rightly).
    assert httpx.post(f"{stack.sim_url}/_sim/faults", json={"delay_ms": 3000}).is_success
    try:
        first = decide(stack, pool.shop, item["return_id"], {"decision": "approve"}, key=key)
        again = decide(stack, pool.shop, item["return_id"], {"decision": "approve"}, key=key)
        no_key = decide(stack, pool.shop, item["return_id"], {"decision": "approve"})
    finally:
        assert httpx.delete(f"{stack.sim_url}/_sim/faults").is_success
    assert first.status_code == 202, first.text
    assert again.status_code == 202, again.text
    assert no_key.status_code == 202, no_key.text
    decision_id = first.json()["decision_id"]
    assert again.json()["decision_id"] == decision_id  # the same key: the same decision
    assert no_key.json()["decision_id"] == decision_id  # the same decision while it is pending

    done = wait_for_decision(stack, decision_id, "accepted", "refused", "failed")
    assert done["status"] == "accepted", done
    assert done["label"] == TOKEN_LABEL
    expected = "APPROVE_REFUND" if item["reverse_type"] == "REFUND_ONLY" else "APPROVE_RETURN"
    assert done["tiktok_decision"] == expected

    moved = wait_for_move(stack, pool.shop, item["return_id"], "AFTERSALE_APPLYING")
    assert moved["status"] in ("AFTERSALE_SUCCESS", "AFTERSALE_RETURNING")
    assert moved["history"][-1]["actor"].upper() == "SELLER"
    assert not moved["details"]["next_actions"]  # TikTok waits for nothing now
    assert [(d["decision_id"], d["label"], d["status"]) for d in moved["decisions"]] == [
        (decision_id, TOKEN_LABEL, "accepted")]
    calls = sim_calls(stack, pool.shop, item["return_id"])
    assert len(calls) == 1, calls  # one call to TikTok, for three posts
    assert calls[0]["query"]["idempotency_key"] == decision_id

    # after the move, the same key still names the same decision, and nothing is sent again
    later = decide(stack, pool.shop, item["return_id"], {"decision": "approve"}, key=key)
    assert later.status_code == 202
    assert later.json()["decision_id"] == decision_id
    assert len(sim_calls(stack, pool.shop, item["return_id"])) == 1


def test_a_decision_tiktok_refuses_is_recorded_with_tiktoks_reason(
    stack: Stack, pool: Pool
) -> None:
    item = pool.take()
    response = decide(stack, pool.shop, item["return_id"],
                      {"decision": "reject", "reason": "not_one_of_tiktoks_reasons",
                       "comment": "testing a refusal"})
    assert response.status_code == 202, response.text
    decision_id = response.json()["decision_id"]
    done = wait_for_decision(stack, decision_id, "accepted", "refused", "failed")
    assert done["status"] == "refused", done
    assert "Invalid reject reason" in done["message"]
    assert done["code"] is not None
    shown = detail(stack, pool.shop, item["return_id"])
    assert shown["status"] == "AFTERSALE_APPLYING"  # TikTok said no: nothing changed
    assert [(d["status"], d["message"]) for d in shown["decisions"]] == [
        ("refused", done["message"])]

    # a refused decision does not block the next one: a valid rejection goes through
    reasons = api(stack, "GET", f"/api/v1/returns/{pool.shop}/{item['return_id']}/reject-reasons")
    assert reasons.status_code == 200, reasons.text
    reason = reasons.json()["reasons"][0]["name"]
    retry = decide(stack, pool.shop, item["return_id"], {"decision": "reject", "reason": reason})
    assert retry.status_code == 202, retry.text
    assert wait_for_decision(stack, retry.json()["decision_id"], "accepted", "refused",
                             "failed")["status"] == "accepted"
    moved = wait_for_move(stack, pool.shop, item["return_id"], "AFTERSALE_APPLYING")
    assert moved["status"] == "AFTERSALE_REJECT_APPLICATION"


def test_a_decision_that_does_not_fit_the_status_is_409_naming_it(
    stack: Stack, pool: Pool
) -> None:
    done = next(i for i in listed(stack, pool.shop)
                if not i["allowed_decisions"] and i["return_id"] not in pool.taken)
    response = decide(stack, pool.shop, done["return_id"], {"decision": "approve"})
    assert response.status_code == 409, response.text
    assert done["status"] in response.json()["detail"]
    assert sim_calls(stack, pool.shop, done["return_id"]) == []
    missing = decide(stack, pool.shop, "no-such-return", {"decision": "approve"})
    assert missing.status_code == 404
    no_reason = decide(stack, pool.shop, done["return_id"], {"decision": "reject"})
    assert no_reason.status_code == 422


def test_a_read_only_token_cannot_act_and_nothing_reaches_tiktok(
    stack: Stack, pool: Pool
) -> None:
    item = pool.take()
    read_only = decide(stack, pool.shop, item["return_id"], {"decision": "approve"},
                       token=READ_TOKEN)
    assert read_only.status_code == 403, read_only.text
    assert "may read but not act" in read_only.json()["detail"]
    other_shop = decide(stack, pool.shop, item["return_id"], {"decision": "approve"},
                        token=LIMITED_TOKEN)
    assert other_shop.status_code == 403
    assert api(stack, "GET", f"/api/v1/returns/{pool.shop}/{item['return_id']}",
               READ_TOKEN).status_code == 200  # reading is still allowed
    time.sleep(1)
    assert sim_calls(stack, pool.shop, item["return_id"]) == []
    assert detail(stack, pool.shop, item["return_id"])["decisions"] == []


def test_reject_reasons_come_from_tiktok_in_the_sellers_language_and_are_cached(
    stack: Stack, pool: Pool
) -> None:
    item = pool.take()
    path = f"/api/v1/returns/{pool.shop}/{item['return_id']}/reject-reasons"
    name, texts = REJECT_REASONS[ReverseType(item["reverse_type"]),
                                 ReturnStatus(item["status"])][0]  # what TikTok has for it
    german = api(stack, "GET", path, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert german.status_code == 200, german.text
    again = api(stack, "GET", path, headers={"Accept-Language": "de-DE"})
    english = api(stack, "GET", path)
    assert german.json()["locale"] == "de-DE"
    assert german.json()["cached"] is False
    assert again.json()["cached"] is True
    assert again.json()["reasons"] == german.json()["reasons"]
    assert german.json()["reasons"][0] == {"name": name, "text": texts["de-DE"]}
    assert english.json()["locale"] == "en-US"
    assert english.json()["reasons"][0]["text"] == texts["en-US"]
    stats = httpx.get(f"{stack.sim_url}/_sim/stats").json()
    assert stats["requests"]["202309_reject_reasons"] >= 2  # once per locale, not per ask


def test_a_legacy_shop_confirms_through_the_same_interface(stack: Stack) -> None:
    legacy = synced_pool(stack, "decisions-legacy", "legacy")
    item = legacy.take()
    done = approved(stack, legacy.shop, item)
    assert done["tiktok_decision"] is not None  # the table's value, though legacy sends none
    (call,) = sim_calls(stack, legacy.shop, item["return_id"])
    assert call["endpoint"] == "legacy_confirm"
    wait_for_move(stack, legacy.shop, item["return_id"], "AFTERSALE_APPLYING")


def skipped_decisions(stack: Stack) -> float:
    metrics = httpx.get(f"{stack.ingestor_url}/metrics").text
    line = next(li for li in metrics.splitlines()
                if li.startswith('ingestor_decisions_total{result="skipped"}'))
    return float(line.rsplit(" ", 1)[1])


def test_a_redelivered_decision_command_reaches_tiktok_once(stack: Stack, pool: Pool) -> None:
    item = pool.take()
    decision = approved(stack, pool.shop, item)
    before = skipped_decisions(stack)

    # Kafka delivers the same command again (a consumer that died before its commit)
    command = DecisionCommand(
        decision_id=decision["decision_id"], shop_id=pool.shop, return_id=item["return_id"],
        decision="approve", reverse_type=item["reverse_type"], status=item["status"],
        return_update_time=item["update_time"], label=TOKEN_LABEL)

    async def redeliver() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"])
        await producer.start()
        try:
            await producer.send_and_wait(DECISIONS_TOPIC, command.model_dump_json().encode(),
                                         key=command.key.encode())
        finally:
            await producer.stop()

    asyncio.run(redeliver())
    wait_until(lambda: skipped_decisions(stack) > before, 30, "the redelivery to be skipped")
    assert len(sim_calls(stack, pool.shop, item["return_id"])) == 1
    assert api(stack, "GET", f"/api/v1/decisions/{decision['decision_id']}").json()[
        "status"] == "accepted"
