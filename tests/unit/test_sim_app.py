"""The simulator's HTTP behaviour: TikTok-like refusals, admin endpoints, webhook delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ingestor.tiktok_signing import sign_request
from tiktok_sim.app import SimState, create_app
from tiktok_sim.protocol import (
    ERR_INVALID_ACCESS_TOKEN,
    ERR_INVALID_APP_KEY,
    ERR_INVALID_SHOP_CIPHER,
    ERR_INVALID_SIGNATURE,
    ERR_TIMESTAMP_EXPIRED,
    ERR_WRONG_API_VERSION,
    LEGACY_SEARCH_PATH,
    V202309_SEARCH_PATH,
    shop_cipher_for,
)
from tiktok_sim.settings import SimSettings, parse_shops

SHOP = "7494560109732840000"
SECRET = "dev-app-secret"


def http(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")


async def search_202309(
    client: httpx.AsyncClient, body: dict[str, Any], *, secret: str = SECRET,
    token: str = "dev-access-token", app_key: str = "dev-app-key",
    timestamp: int | None = None, cipher: str = shop_cipher_for(SHOP), page_token: str = "",
) -> dict[str, Any]:
    query = {"app_key": app_key, "timestamp": str(timestamp or int(time.time())),
             "shop_cipher": cipher, "page_size": "50", "sort_field": "update_time",
             "sort_order": "ASC"}
    if page_token:
        query["page_token"] = page_token
    raw = json.dumps(body).encode()
    query["sign"] = sign_request(secret, V202309_SEARCH_PATH, query, raw)
    response = await client.post(V202309_SEARCH_PATH, params=query, content=raw,
                                 headers={"x-tts-access-token": token})
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret": "wrong"}, ERR_INVALID_SIGNATURE),
        ({"token": "stolen"}, ERR_INVALID_ACCESS_TOKEN),
        ({"app_key": "other-app"}, ERR_INVALID_APP_KEY),
        ({"timestamp": 1_600_000_000}, ERR_TIMESTAMP_EXPIRED),
        ({"cipher": "garbage"}, ERR_INVALID_SHOP_CIPHER),
    ],
)
async def test_bad_requests_are_refused_with_http_200_and_a_code(
    kwargs: dict[str, Any], code: int
) -> None:
    app = create_app(SimSettings(shops=f"{SHOP}:202309:5"))
    async with http(app) as client:
        answer = await search_202309(client, {}, **kwargs)
    assert answer["code"] == code
    assert answer["message"]
    assert "data" not in answer
    stats = app.state.sim.stats.as_dict()
    assert stats["refusals"] == {str(code): 1}


async def test_a_signed_request_is_served_and_counted() -> None:
    app = create_app(SimSettings(shops=f"{SHOP}:202309:5"))
    async with http(app) as client:
        answer = await search_202309(client, {})
        stats = (await client.get("/_sim/stats")).json()
    assert answer["code"] == 0
    assert len(answer["data"]["return_orders"]) == 5
    assert answer["data"]["total_count"] == 5
    assert answer["data"]["next_page_token"] == ""
    assert stats["requests"] == {"202309_search": 1}
    assert stats["refusals_total"] == 0
    assert stats["records_served"] == 5


async def test_a_shop_is_only_served_by_its_api_generation() -> None:
    app = create_app(SimSettings(shops=f"{SHOP}:legacy:5"))
    async with http(app) as client:
        answer = await search_202309(client, {})
    assert answer["code"] == ERR_WRONG_API_VERSION


async def test_keyset_paging_does_not_skip_a_return_updated_mid_paging() -> None:
    app = create_app(SimSettings(shops=f"{SHOP}:202309:120"))
    state: SimState = app.state.sim
    async with http(app) as client:
        first = await search_202309(client, {})
        seen = [r["return_id"] for r in first["data"]["return_orders"]]
        # a return of the first page moves to the end while the client pages on: with offset
        # paging every later return would shift down one place and one would be skipped
        first_page = [state.store.get(SHOP, return_id) for return_id in seen]
        assert any(r is not None and state.driver.advance_return(r) for r in first_page)
        token = first["data"]["next_page_token"]
        while token:
            page = await search_202309(client, {}, page_token=token)
            seen += [r["return_id"] for r in page["data"]["return_orders"]]
            token = page["data"]["next_page_token"]
    assert set(seen) == {r.return_id for r in state.store.returns(SHOP)}


async def test_legacy_search_checks_the_query_access_token_and_pages_by_offset() -> None:
    app = create_app(SimSettings(shops=f"{SHOP}:legacy:150"))
    async with http(app) as client:
        async def page(offset: int, token: str = "dev-access-token") -> dict[str, Any]:
            query = {"app_key": "dev-app-key", "timestamp": str(int(time.time())),
                     "shop_id": SHOP, "access_token": token}
            query["sign"] = sign_request(SECRET, LEGACY_SEARCH_PATH, query, None)
            body = {"offset": offset, "size": 100, "sort_by": 1, "sort_type": 0}
            answer: dict[str, Any] = (await client.post(
                LEGACY_SEARCH_PATH, params=query, json=body)).json()
            return answer

        first, second = await page(0), await page(100)
        refused = await page(0, token="nope")
    assert first["code"] == 0
    assert first["data"]["more"] is True
    assert second["data"]["more"] is False
    assert len(second["data"]["reverse_list"]) == 50
    assert refused["code"] == ERR_INVALID_ACCESS_TOKEN


async def test_faults_are_patched_field_by_field_and_reset() -> None:
    app = create_app(SimSettings())
    async with http(app) as client:
        patched = (await client.post("/_sim/faults", json={"http_429_every": 7})).json()
        patched = (await client.post("/_sim/faults", json={"delay_ms": 5})).json()
        bad = await client.post("/_sim/faults", json={"no_such_fault": 1})
        reset = (await client.delete("/_sim/faults")).json()
    assert patched["http_429_every"] == 7
    assert patched["delay_ms"] == 5
    assert bad.status_code == 422
    assert reset["http_429_every"] == 0
    assert reset["delay_ms"] == 0


async def test_generate_refuses_to_switch_a_shops_api_generation() -> None:
    app = create_app(SimSettings())
    async with http(app) as client:
        made = await client.post("/_sim/returns/generate",
                                 json={"shop_id": SHOP, "count": 25, "api_version": "legacy"})
        clash = await client.post("/_sim/returns/generate",
                                  json={"shop_id": SHOP, "count": 1, "api_version": "202309"})
        shops = (await client.get("/_sim/shops")).json()
    assert made.json()["generated"] == 25
    assert clash.status_code == 409
    assert shops[0]["shop_id"] == SHOP
    assert shops[0]["returns"] == 25


def test_shop_seeds_are_parsed_and_malformed_ones_refused() -> None:
    seeds = parse_shops("a:legacy:3, b:202309:0")
    assert [(s.shop_id, s.api_version, s.count) for s in seeds] == [
        ("a", "legacy", 3), ("b", "202309", 0)]
    with pytest.raises(ValueError, match="shop_id"):
        parse_shops("a:v2:3")


async def test_advance_pushes_webhooks_signed_with_app_key_and_raw_body() -> None:
    received: list[tuple[bytes, str]] = []
    receiver = FastAPI()

    @receiver.post("/webhooks/tiktok")
    async def hook(request: Request) -> dict[str, str]:
        received.append((await request.body(), request.headers["authorization"]))
        return {}

    settings = SimSettings(shops=f"{SHOP}:202309:50", webhook_url="http://ingestor/webhooks/tiktok",
                           webhook_rate=10_000, duplicate_share=1.0)
    app = create_app(settings, webhook_transport=httpx.ASGITransport(app=receiver))
    async with http(app) as client:
        result = (await client.post("/_sim/returns/advance", json={"count": 4})).json()
        stats = (await client.get("/_sim/stats")).json()
    moved = len(result["transitions"])
    assert moved == 4
    assert result["webhooks_delivered"] == 8 == len(received)
    for body, signature in received:
        expected = hmac.new(SECRET.encode(), b"dev-app-key" + body, hashlib.sha256).hexdigest()
        assert signature == expected
        assert json.loads(body)["type"] == 12
    assert stats["webhooks"]["sent"] == 8
    assert stats["webhooks"]["duplicate"] == 4
    assert stats["transitions"] == 4


async def test_a_refused_webhook_is_delivered_again() -> None:
    calls: list[bytes] = []
    receiver = FastAPI()

    @receiver.post("/hook")
    async def hook(request: Request) -> JSONResponse:
        calls.append(await request.body())
        return JSONResponse({}, status_code=503 if len(calls) == 1 else 200)

    settings = SimSettings(shops=f"{SHOP}:legacy:20", webhook_url="http://ingestor/hook",
                           webhook_rate=10_000)
    app = create_app(settings, webhook_transport=httpx.ASGITransport(app=receiver))
    async with http(app) as client:
        result = (await client.post("/_sim/returns/advance", json={"count": 1})).json()
    assert result["webhooks_delivered"] == 1
    assert len(calls) == 2
    assert calls[0] == calls[1]
    assert json.loads(calls[0])["type"] == 2
