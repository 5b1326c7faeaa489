"""The webhook endpoint against a real Kafka: what TikTok sends ends up on the right topic,
and nothing that should not be published is. A signed webhook refused with 422 is kept on the
rejected topic (and, through the state machine, in the query API's rejections)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from contracts.messages import EventSource, RejectedEvent, RejectionReason, ReturnEvent
from contracts.statuses import ReturnStatus, ReverseType
from contracts.topics import EVENTS_TOPIC, REJECTED_TOPIC
from ingestor.app import create_app
from ingestor.routes.webhooks import WEBHOOK_PATH
from ingestor.settings import Settings
from ingestor.signature import webhook_signature
from tests.integration.conftest import Stack
from tests.integration.services import wait_until

pytestmark = pytest.mark.integration

APP_KEY = "it-app-key"
APP_SECRET = "it-app-secret"
MAX_BODY = 4096
SHOP = "7494560109732840000"


class InfraHandle(Protocol):
    """The part of the `infra` fixture (tests/conftest.py) these tests use."""

    def stop_kafka(self, *, kill: bool = False) -> None: ...
    def start_kafka(self) -> None: ...


def settings_for(bootstrap: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "tiktok_app_key": APP_KEY,
        "tiktok_app_secret": APP_SECRET,
        "webhook_max_body_bytes": MAX_BODY,
        "kafka_delivery_timeout_s": 5.0,
        "kafka_connect_timeout_s": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingestor") as client:
            yield client


@pytest.fixture
async def client(kafka_bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings_for(kafka_bootstrap))) as c:
        yield c


def new_id() -> str:
    return str(uuid.uuid4().int)[:19]


def legacy_hook(return_id: str, status_code: int = 3, update_time: int = 1732679990) -> bytes:
    return json.dumps({
        "type": 2, "shop_id": SHOP, "timestamp": 1732680000,
        "data": {"order_id": "576461413038785752", "reverse_order_id": return_id,
                 "reverse_order_status": status_code, "reverse_event_type": "ORDER_RETURN",
                 "reverse_user": 1, "update_time": update_time},
    }).encode()


def v202309_hook(return_id: str, status: str = "AWAITING_BUYER_SHIP",
                 return_type: str = "RETURN_AND_REFUND", update_time: int = 1732679990,
                 shop_id: str = SHOP) -> bytes:
    return json.dumps({
        "type": 12, "tts_notification_id": "7327112393057371910", "shop_id": shop_id,
        "timestamp": 1732680000,
        "data": {"order_id": "576461413038785752", "return_id": return_id,
                 "return_role": "BUYER", "return_type": return_type,
                 "return_status": status, "create_time": 1732600000,
                 "update_time": update_time},
    }).encode()


async def post(client: httpx.AsyncClient, body: bytes, *, signed: bool = True,
               signature: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Authorization"] = signature
    elif signed:
        headers["Authorization"] = webhook_signature(APP_KEY, APP_SECRET, body)
    return await client.post(WEBHOOK_PATH, content=body, headers=headers)


async def first_record(bootstrap: str, topic: str, matches: Callable[[Any], bool],
                       within_s: float = 30.0) -> Any:
    """The earliest record of `topic` that `matches` (per partition order)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        async with asyncio.timeout(within_s):
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        if matches(record):
                            return record
    finally:
        await consumer.stop()


def keyed(key: str) -> Callable[[Any], bool]:
    return lambda record: record.key == key.encode()


async def test_signed_legacy_webhook_is_published_to_events_topic_keyed_by_return(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    return_id = new_id()
    response = await post(client, legacy_hook(return_id))
    assert response.status_code == 200, response.text
    key = f"{SHOP}:{return_id}"
    assert response.json() == {"status": "accepted",
                               "event_id": f"{key}:AFTERSALE_RETURNING:1732679990"}

    record = await first_record(kafka_bootstrap, EVENTS_TOPIC, keyed(key))
    event = ReturnEvent.model_validate_json(record.value)
    assert event.status is ReturnStatus.AFTERSALE_RETURNING
    assert event.reverse_type is ReverseType.RETURN_AND_REFUND
    assert event.source is EventSource.WEBHOOK_LEGACY
    assert event.actor == "buyer"


async def test_signed_202309_webhook_is_published_to_events_topic_keyed_by_return(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    return_id = new_id()
    response = await post(client, v202309_hook(return_id, "BUYER_SHIPPED_ITEM"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"

    record = await first_record(kafka_bootstrap, EVENTS_TOPIC, keyed(f"{SHOP}:{return_id}"))
    event = ReturnEvent.model_validate_json(record.value)
    assert event.status is ReturnStatus.AFTERSALE_BUYER_SHIPPED
    assert event.source is EventSource.WEBHOOK_202309
    assert event.notification_id == "7327112393057371910"
    assert event.details.request_time == 1732600000


async def test_unsigned_or_badly_signed_webhook_is_refused_and_not_published(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    return_id = new_id()
    unsigned = await post(client, legacy_hook(return_id, status_code=1), signed=False)
    wrong = await post(client, legacy_hook(return_id, status_code=2), signature="0" * 64)
    other_secret = await post(client, legacy_hook(return_id, status_code=4),
                              signature=webhook_signature(APP_KEY, "nope",
                                                          legacy_hook(return_id, 4)))
    assert (unsigned.status_code, wrong.status_code, other_secret.status_code) == (401, 401, 401)

    # Same key, same partition, so order is kept: the first record of this return must be the
    # signed marker posted afterwards, which proves the refused ones were never published.
    marker = await post(client, legacy_hook(return_id, status_code=3))
    assert marker.status_code == 200
    record = await first_record(kafka_bootstrap, EVENTS_TOPIC, keyed(f"{SHOP}:{return_id}"))
    assert ReturnEvent.model_validate_json(record.value).status is ReturnStatus.AFTERSALE_RETURNING


async def test_unknown_status_goes_to_rejected_topic_and_is_answered_200(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    return_id = new_id()
    body = v202309_hook(return_id, status="SOMETHING_TIKTOK_ADDED")
    response = await post(client, body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["reason"] == "unknown_status"

    def is_ours(record: Any) -> bool:
        return record.key == SHOP.encode() and return_id.encode() in record.value

    record = await first_record(kafka_bootstrap, REJECTED_TOPIC, is_ours)
    rejection = RejectedEvent.model_validate_json(record.value)
    assert rejection.reason is RejectionReason.UNKNOWN_STATUS
    assert rejection.stage == "ingestor"
    assert rejection.return_id == return_id
    assert rejection.raw == body.decode()
    assert rejection.rejection_id == response.json()["rejection_id"]


async def test_replacement_goes_to_rejected_topic_as_unsupported_type(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    return_id = new_id()
    body = v202309_hook(return_id, status="REPLACEMENT_REQUEST_PENDING", return_type="REPLACEMENT")
    response = await post(client, body)
    assert response.status_code == 200
    assert response.json()["reason"] == "unsupported_type"

    def is_ours(record: Any) -> bool:
        return record.key == SHOP.encode() and return_id.encode() in record.value

    record = await first_record(kafka_bootstrap, REJECTED_TOPIC, is_ours)
    assert RejectedEvent.model_validate_json(record.value).reason is (
        RejectionReason.UNSUPPORTED_TYPE)


async def test_malformed_calls_get_4xx_and_publish_no_event(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    return_id = new_id()

    too_large = legacy_hook(return_id) + b" " * MAX_BODY
    assert (await post(client, too_large)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the real size counts
        for _ in range(3):
            yield b" " * (MAX_BODY // 2)

    streamed = await client.post(WEBHOOK_PATH, content=chunks(),
                                 headers={"Authorization": "0" * 64})
    assert streamed.status_code == 413

    not_json = b'{"type": 2, "shop_id": '
    response = await post(client, not_json)
    assert (response.status_code, response.json()["detail"]) == (400, "body is not JSON")

    wrong_shape = json.loads(legacy_hook(return_id))
    del wrong_shape["data"]["update_time"]
    response = await post(client, json.dumps(wrong_shape).encode())
    assert response.status_code == 422
    assert "data.update_time" in response.text
    assert [e["field"] for e in response.json()["errors"]] == ["data.update_time"]
    assert response.json()["rejection_id"].startswith("ingestor:")  # kept, see below

    marker = await post(client, legacy_hook(return_id, status_code=5))
    assert marker.status_code == 200
    record = await first_record(kafka_bootstrap, EVENTS_TOPIC, keyed(f"{SHOP}:{return_id}"))
    assert ReturnEvent.model_validate_json(record.value).status is (
        ReturnStatus.AFTERSALE_SELLER_REJECT_RECEIVE)


def rejection_with_id(rejection_id: str) -> Callable[[Any], bool]:
    return lambda record: rejection_id.encode() in record.value


async def test_a_signed_webhook_with_an_impossible_time_gets_422_naming_it_and_is_kept(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    return_id = new_id()
    body = v202309_hook(return_id, update_time=10**19)
    response = await post(client, body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["data.update_time"]
    assert "data.update_time" in response.json()["detail"]
    rejection_id = response.json()["rejection_id"]

    record = await first_record(kafka_bootstrap, REJECTED_TOPIC, rejection_with_id(rejection_id))
    assert record.key == SHOP.encode()
    rejection = RejectedEvent.model_validate_json(record.value)
    assert rejection.rejection_id == rejection_id
    assert rejection.reason is RejectionReason.INVALID_EVENT
    assert rejection.stage == "ingestor"
    assert (rejection.shop_id, rejection.return_id) == (SHOP, return_id)
    assert rejection.raw == body.decode()
    assert "data.update_time" in rejection.detail
    # Nothing reached the events topic: the first event of this return is a later valid one.
    assert (await post(client, v202309_hook(return_id))).status_code == 200
    first = await first_record(kafka_bootstrap, EVENTS_TOPIC, keyed(f"{SHOP}:{return_id}"))
    assert ReturnEvent.model_validate_json(first.value).update_time == 1732679990


async def test_a_retried_invalid_webhook_is_one_rejection(client: httpx.AsyncClient) -> None:
    body = v202309_hook(new_id(), update_time=10**19)
    first, again = await post(client, body), await post(client, body)
    assert first.status_code == again.status_code == 422
    assert first.json()["rejection_id"] == again.json()["rejection_id"]


async def test_an_unsigned_webhook_with_impossible_values_gets_401_and_is_not_kept(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    return_id = new_id()
    unsigned = await post(client, v202309_hook(return_id, update_time=10**19), signed=False)
    forged = await post(client, v202309_hook(return_id, update_time=10**19 + 1),
                        signature="0" * 64)
    assert (unsigned.status_code, forged.status_code) == (401, 401)

    # Same key (the shop), same partition: the first rejection naming this return must be the
    # signed one posted afterwards, which proves the refused ones were never published.
    signed = await post(client, v202309_hook(return_id, update_time=10**19 + 2))
    assert signed.status_code == 422

    def names_return(record: Any) -> bool:
        return record.key == SHOP.encode() and return_id.encode() in record.value

    record = await first_record(kafka_bootstrap, REJECTED_TOPIC, names_return)
    assert RejectedEvent.model_validate_json(record.value).rejection_id == (
        signed.json()["rejection_id"])


def test_a_refused_webhook_is_listed_by_the_query_api(stack: Stack) -> None:
    shop = f"it-boundary-{uuid.uuid4().hex[:8]}"
    body = v202309_hook(new_id(), update_time=10**19, shop_id=shop)
    response = httpx.post(f"{stack.ingestor_url}{WEBHOOK_PATH}", content=body, headers={
        "Authorization": webhook_signature(APP_KEY, APP_SECRET, body),
        "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    rejection_id = response.json()["rejection_id"]
    listed: list[dict[str, Any]] = []

    def recorded() -> bool:
        page = httpx.get(f"{stack.query_url}/api/v1/rejections", headers=stack.auth,
                         params={"shop_id": shop, "reason": "invalid_event"})
        listed[:] = page.json()["items"] if page.status_code == 200 else []
        return any(item["rejection_id"] == rejection_id for item in listed)

    wait_until(recorded, 60, "the rejection in GET /api/v1/rejections")
    (item,) = listed
    assert (item["stage"], item["raw"]) == ("ingestor", body.decode())
    assert "data.update_time" in item["detail"]


async def test_non_return_webhook_is_ignored_with_200_and_counted(
    client: httpx.AsyncClient,
) -> None:
    body = json.dumps({"type": 1, "shop_id": SHOP, "data": {"order_id": "1"}}).encode()
    response = await post(client, body)
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})

    metrics = (await client.get("/metrics")).text
    assert 'ingestor_webhooks_total{result="ignored"} 1.0' in metrics


async def test_health_and_readiness_with_kafka_up(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_kafka_unreachable_answers_503_so_tiktok_retries() -> None:
    settings = settings_for(f"127.0.0.1:{closed_port()}", kafka_connect_timeout_s=2.0)
    async with running(create_app(settings)) as client:
        response = await post(client, legacy_hook(new_id()))
        assert response.status_code == 503, response.text
        assert "retry" in response.json()["detail"]

        rejected = await post(client, v202309_hook(new_id(), status="SOMETHING_NEW"))
        assert rejected.status_code == 503

        # Not 422 until the rejection is kept: TikTok retries an invalid webhook meanwhile.
        invalid = await post(client, v202309_hook(new_id(), update_time=10**19))
        assert invalid.status_code == 503, invalid.text

        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        metrics = (await client.get("/metrics")).text
        assert 'ingestor_webhooks_total{result="unavailable"} 3.0' in metrics


async def eventually_status(client: httpx.AsyncClient, make_body: Callable[[], bytes],
                            status: int, within_s: float = 60.0) -> httpx.Response:
    """Post fresh webhooks until one gets `status` (TikTok's retries, compressed)."""
    async with asyncio.timeout(within_s):
        while True:
            response = await post(client, make_body())
            if response.status_code == status:
                return response
            await asyncio.sleep(0.5)


@pytest.mark.slow
async def test_kafka_outage_while_running_answers_503_then_recovers(
    infra: InfraHandle, kafka_bootstrap: str
) -> None:
    async with running(create_app(settings_for(kafka_bootstrap))) as client:
        assert (await post(client, legacy_hook(new_id()))).status_code == 200
        await asyncio.to_thread(infra.stop_kafka)
        try:
            during = await post(client, legacy_hook(new_id()))
            assert during.status_code == 503, during.text
            assert (await client.get("/readyz")).status_code == 503
        finally:
            await asyncio.to_thread(infra.start_kafka)

        return_id = new_id()
        after = await eventually_status(client, lambda: legacy_hook(return_id), 200)
        assert after.json()["status"] == "accepted"
        assert (await client.get("/readyz")).status_code == 200
    await first_record(kafka_bootstrap, EVENTS_TOPIC, keyed(f"{SHOP}:{return_id}"))


@pytest.mark.slow
async def test_app_started_while_kafka_is_down_connects_once_it_is_up(
    infra: InfraHandle, kafka_bootstrap: str
) -> None:
    await asyncio.to_thread(infra.stop_kafka)
    try:
        async with running(create_app(settings_for(kafka_bootstrap))) as client:
            assert (await post(client, legacy_hook(new_id()))).status_code == 503
            assert (await client.get("/readyz")).status_code == 503
            await asyncio.to_thread(infra.start_kafka)

            return_id = new_id()
            await eventually_status(client, lambda: legacy_hook(return_id), 200)
            assert (await client.get("/readyz")).status_code == 200
    finally:
        if not (await asyncio.to_thread(kafka_reachable, kafka_bootstrap)):
            await asyncio.to_thread(infra.start_kafka)
    await first_record(kafka_bootstrap, EVENTS_TOPIC, keyed(f"{SHOP}:{return_id}"))


def kafka_reachable(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False
