"""One complete path on real servers: a signed TikTok webhook to the seller's filtered list."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import pytest

from tests.integration.conftest import APP_KEY, APP_SECRET, Stack
from tests.integration.services import wait_until

pytestmark = pytest.mark.integration

T0 = 1_732_600_000  # webhook times count from here (contracts.limits: from 2016)


def post_webhook(stack: Stack, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    signature = hmac.new(APP_SECRET.encode(), APP_KEY.encode() + body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{stack.ingestor_url}/webhooks/tiktok",
        content=body,
        headers={"Authorization": signature, "Content-Type": "application/json"},
    )


def webhook_202309(shop: str, return_id: str, status: str, t: int) -> dict[str, Any]:
    return {
        "type": 12,
        "tts_notification_id": uuid.uuid4().hex,
        "shop_id": shop,
        "timestamp": T0 + t + 5,
        "data": {
            "order_id": f"o-{return_id}",
            "return_id": return_id,
            "return_role": "BUYER",
            "return_type": "RETURN_AND_REFUND",
            "return_status": status,
            "create_time": 1_732_600_000,
            "update_time": T0 + t,
        },
    }


def webhook_legacy(shop: str, return_id: str, code: int, t: int) -> dict[str, Any]:
    return {
        "type": 2,
        "shop_id": shop,
        "timestamp": T0 + t + 5,
        "data": {
            "order_id": f"o-{return_id}",
            "reverse_order_id": return_id,
            "reverse_order_status": code,
            "reverse_event_type": "ORDER_REFUND",
            "reverse_user": 1,
            "update_time": T0 + t,
        },
    }


def get(stack: Stack, path: str, **params: Any) -> Any:
    response = httpx.get(f"{stack.query_url}{path}", params=params, headers=stack.auth)
    response.raise_for_status()
    return response.json()


def wait_for_status(stack: Stack, shop: str, return_id: str, status: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def reached() -> bool:
        response = httpx.get(
            f"{stack.query_url}/api/v1/returns/{shop}/{return_id}", headers=stack.auth
        )
        if response.status_code == 200:
            found.update(response.json())
        return found.get("status") == status

    wait_until(reached, 60, f"{shop}/{return_id} to be {status}")
    return found


def test_webhooks_reach_the_sellers_status_filtered_list(stack: Stack) -> None:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    assert (
        post_webhook(stack, webhook_202309(shop, "r1", "AWAITING_BUYER_SHIP", 1000)).status_code
        == 200
    )
    assert post_webhook(stack, webhook_legacy(shop, "r2", 1, 1000)).status_code == 200
    assert (
        post_webhook(stack, webhook_202309(shop, "r1", "BUYER_SHIPPED_ITEM", 1100)).status_code
        == 200
    )

    wait_for_status(stack, shop, "r1", "AFTERSALE_BUYER_SHIPPED")
    wait_for_status(stack, shop, "r2", "AFTERSALE_APPLYING")

    shipped = get(stack, "/api/v1/returns", shop_id=shop, status="AFTERSALE_BUYER_SHIPPED")
    assert [item["return_id"] for item in shipped["items"]] == ["r1"]
    refund_only = get(stack, "/api/v1/returns", shop_id=shop, reverse_type="REFUND_ONLY")
    assert [item["return_id"] for item in refund_only["items"]] == ["r2"]
    counts = get(stack, "/api/v1/returns/counts", shop_id=shop)["counts"]
    assert counts["ALL"] == 2
    assert counts["AFTERSALE_BUYER_SHIPPED"] == 1
    assert counts["AFTERSALE_APPLYING"] == 1


def test_a_redelivered_webhook_is_one_history_entry_and_a_counted_duplicate(stack: Stack) -> None:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    payload = webhook_202309(shop, "r1", "RETURN_OR_REFUND_REQUEST_PENDING", 2000)
    assert post_webhook(stack, payload).status_code == 200
    assert post_webhook(stack, payload).status_code == 200
    marker = webhook_202309(shop, "r1", "REFUND_OR_RETURN_REQUEST_REJECT", 2100)
    assert post_webhook(stack, marker).status_code == 200

    detail = wait_for_status(stack, shop, "r1", "AFTERSALE_REJECT_APPLICATION")
    assert [h["status"] for h in detail["history"]] == [
        "AFTERSALE_APPLYING",
        "AFTERSALE_REJECT_APPLICATION",
    ]
    assert detail["duplicate_count"] == 1


def test_an_invalid_transition_is_not_applied_and_flags_the_return(stack: Stack) -> None:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    assert post_webhook(stack, webhook_legacy(shop, "r1", 100, 3000)).status_code == 200
    assert post_webhook(stack, webhook_legacy(shop, "r1", 1, 3100)).status_code == 200

    def flagged() -> bool:
        response = httpx.get(f"{stack.query_url}/api/v1/returns/{shop}/r1", headers=stack.auth)
        return response.status_code == 200 and response.json()["anomaly"] is True

    wait_until(flagged, 60, "the anomaly flag")
    detail = get(stack, f"/api/v1/returns/{shop}/r1")
    assert detail["status"] == "COMPLETE"
    assert detail["history"][-1]["outcome"] == "rejected"
