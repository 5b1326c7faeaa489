"""Helpers of the Sync Return tests on real servers: the TikTok Shop simulator's admin
side, and asking the query API for syncs, jobs, counts and returns until they match."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from contracts.statuses import LEGACY_STATUS_CODES, V202309_STATUS_NAMES
from ingestor.tiktok_client import TikTokClientConfig, TikTokShopClient
from tests.integration.conftest import (
    APP_KEY,
    APP_SECRET,
    SIM_ACCESS_TOKEN,
    SYNC_SHOPS,
    Stack,
)
from tests.integration.services import listed_returns, wait_until

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
