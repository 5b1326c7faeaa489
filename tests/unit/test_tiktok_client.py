"""TikTokShopClient against the simulator, in-process (httpx.ASGITransport)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from contracts.messages import ReturnEvent
from ingestor.rejections import Rejected
from ingestor.tiktok_client import (
    RATE_LIMIT_CODES,
    Page,
    TikTokApiError,
    TikTokClientConfig,
    TikTokShopClient,
)
from tiktok_sim.app import SimState, create_app
from tiktok_sim.protocol import (
    ERR_ACCESS_TOKEN_EXPIRED,
    ERR_INVALID_SIGNATURE,
    ERR_RATE_LIMITED,
    ERR_TIMESTAMP_EXPIRED,
    ApiVersion,
    shop_cipher_for,
)
from tiktok_sim.settings import SimSettings
from tiktok_sim.store import generate_returns

SHOP = "7494560109732840000"
VERSIONS: tuple[ApiVersion, ...] = ("legacy", "202309")


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def sim_with(count: int, version: ApiVersion, seed: int = 1,
             now: int | None = None) -> tuple[FastAPI, SimState]:
    """A simulator holding `count` returns of SHOP, each last updated before `now`."""
    app = create_app(SimSettings(seed=seed))
    state: SimState = app.state.sim
    generate_returns(state.store, state.driver.rng, SHOP, count, version,
                     now=int(time.time()) if now is None else now)
    return app, state


def client_for(
    app: FastAPI,
    version: ApiVersion,
    sleep: RecordingSleep | None = None,
    clock: Callable[[], float] = time.time,
    **overrides: Any,
) -> TikTokShopClient:
    config = TikTokClientConfig(
        base_url="http://sim", app_key="dev-app-key", app_secret="dev-app-secret",
        access_token="dev-access-token", shop_id=SHOP, api_version=version,
        shop_cipher=shop_cipher_for(SHOP) if version == "202309" else None,
        requests_per_second=1000.0, backoff_initial_s=0.001, backoff_max_s=0.005,
    )
    return TikTokShopClient(
        dataclasses.replace(config, **overrides),
        transport=httpx.ASGITransport(app=app),
        sleep=sleep or RecordingSleep(),
        clock=clock,
    )


async def collect(client: TikTokShopClient, **window: int | None) -> list[Page]:
    async with client:
        return [page async for page in client.iter_returns(**window)]


def event_ids(pages: list[Page]) -> list[str]:
    return [r.return_id for p in pages for r in p.results if isinstance(r, ReturnEvent)]


# Legacy walks time: each page starts again at the second its predecessor ended in, so the
# 1,000 returns take one page more than offsets would.
@pytest.mark.parametrize(("version", "pages"), [("legacy", 11), ("202309", 20)])
async def test_client_pages_through_1000_returns_seeing_each_exactly_once(
    version: ApiVersion, pages: int
) -> None:
    app, state = sim_with(1000, version)
    result = await collect(client_for(app, version))
    ids = event_ids(result)
    assert len(ids) == 1000
    assert set(ids) == {r.return_id for r in state.store.returns(SHOP)}
    assert len(result) == pages
    assert not [r for p in result for r in p.results if isinstance(r, Rejected)]
    times = [r.update_time for p in result for r in p.results if isinstance(r, ReturnEvent)]
    assert times == sorted(times)
    assert [p.number for p in result] == list(range(1, pages + 1))
    assert all(p.max_update_time == max(times_of(p)) for p in result)


def times_of(page: Page) -> list[int]:
    return [r.update_time for r in page.results if isinstance(r, ReturnEvent)]


@pytest.mark.parametrize("version", VERSIONS)
async def test_window_returns_only_updates_since_inclusive_until_exclusive(
    version: ApiVersion,
) -> None:
    app, state = sim_with(300, version)
    times = sorted(r.update_time for r in state.store.returns(SHOP))
    since, until = times[50], times[250]
    ids = event_ids(await collect(client_for(app, version), since=since, until=until))
    expected = {r.return_id for r in state.store.returns(SHOP) if since <= r.update_time < until}
    # legacy's update_time_to is inclusive at TikTok: the boundary second may also come back
    boundary = {r.return_id for r in state.store.returns(SHOP) if r.update_time == until}
    assert expected <= set(ids) <= expected | (boundary if version == "legacy" else set())
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("version", VERSIONS)
async def test_throttling_and_server_errors_are_retried_and_the_result_is_still_complete(
    version: ApiVersion,
) -> None:
    app, state = sim_with(1000, version)
    state.faults.http_429_every = 3
    state.faults.retry_after_s = 0.25
    state.faults.http_500_once = True
    sleep = RecordingSleep()
    ids = event_ids(await collect(client_for(app, version, sleep=sleep)))
    assert sorted(ids) == sorted(r.return_id for r in state.store.returns(SHOP))
    assert state.stats.refusals["http_500"] == 1
    assert state.stats.refusals["http_429"] >= 3
    assert sleep.calls.count(0.25) == state.stats.refusals["http_429"]  # Retry-After honoured
    assert len(sleep.calls) == state.stats.refusals["http_429"] + 1


async def test_rate_limit_error_code_is_retried() -> None:
    assert ERR_RATE_LIMITED in RATE_LIMIT_CODES
    app, state = sim_with(200, "202309")
    state.faults.rate_limit_code_every = 2
    ids = event_ids(await collect(client_for(app, "202309")))
    assert len(set(ids)) == 200
    assert state.stats.refusals[str(ERR_RATE_LIMITED)] >= 2


@pytest.mark.parametrize("version", VERSIONS)
async def test_wrong_secret_raises_invalid_signature_without_retrying(
    version: ApiVersion,
) -> None:
    app, state = sim_with(10, version)
    with pytest.raises(TikTokApiError) as caught:
        await collect(client_for(app, version, app_secret="not-the-secret"))
    assert caught.value.code == ERR_INVALID_SIGNATURE
    assert not caught.value.retryable
    assert "signature" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)
    assert state.searches == 1


async def test_expired_token_is_not_retried_and_named() -> None:
    app, state = sim_with(10, "legacy")
    state.faults.expire_token = True
    with pytest.raises(TikTokApiError) as caught:
        await collect(client_for(app, "legacy"))
    assert caught.value.code == ERR_ACCESS_TOKEN_EXPIRED
    assert "expired" in caught.value.reason
    assert state.searches == 1


async def test_clock_skew_is_refused_as_stale_timestamp() -> None:
    app, _ = sim_with(10, "202309")
    with pytest.raises(TikTokApiError) as caught:
        await collect(client_for(app, "202309", clock=lambda: time.time() - 3600))
    assert caught.value.code == ERR_TIMESTAMP_EXPIRED


async def test_persistent_server_errors_give_up_after_max_attempts() -> None:
    app, state = sim_with(10, "202309")
    state.faults.http_500_every = 1
    sleep = RecordingSleep()
    with pytest.raises(TikTokApiError) as caught:
        await collect(client_for(app, "202309", sleep=sleep, max_attempts=4))
    assert caught.value.retryable
    assert caught.value.http_status == 500
    assert state.searches == 4
    assert len(sleep.calls) == 3
    assert all(0 <= s <= 0.005 for s in sleep.calls)


async def test_connection_errors_are_retried() -> None:
    app, _ = sim_with(5, "202309")
    inner = httpx.ASGITransport(app=app)
    failures = 2

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal failures
        if failures:
            failures -= 1
            raise httpx.ConnectError("refused", request=request)
        return await inner.handle_async_request(request)

    config = TikTokClientConfig(
        base_url="http://sim", app_key="dev-app-key", app_secret="dev-app-secret",
        access_token="dev-access-token", shop_id=SHOP, api_version="202309",
        shop_cipher=shop_cipher_for(SHOP), backoff_initial_s=0.001,
    )
    sleep = RecordingSleep()
    client = TikTokShopClient(config, transport=httpx.MockTransport(handler), sleep=sleep)
    assert len(event_ids(await collect(client))) == 5
    assert len(sleep.calls) == 2


@pytest.mark.parametrize("version", VERSIONS)
async def test_get_return_finds_one_return_or_none(version: ApiVersion) -> None:
    app, state = sim_with(120, version)
    wanted = state.store.returns(SHOP)[77]
    async with client_for(app, version) as client:
        found = await client.get_return(wanted.return_id)
        missing = await client.get_return("1")
    assert isinstance(found, ReturnEvent)
    assert (found.return_id, found.status, found.update_time) == (
        wanted.return_id, wanted.status, wanted.update_time)
    assert missing is None


async def test_access_token_and_secret_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, state = sim_with(10, "legacy")
    state.faults.http_500_once = True
    with caplog.at_level(logging.DEBUG):
        await collect(client_for(app, "legacy"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "reverse_order/list" in text  # the request was logged...
    assert "dev-access-token" not in text
    assert "dev-app-secret" not in text


def test_202309_config_requires_shop_cipher() -> None:
    with pytest.raises(ValueError, match="shop_cipher"):
        TikTokClientConfig(base_url="http://x", app_key="k", app_secret="s",
                           access_token="t", shop_id=SHOP, api_version="202309")


def test_config_repr_hides_secrets() -> None:
    config = TikTokClientConfig(base_url="http://x", app_key="k", app_secret="s3cr3t",
                                access_token="t0k3n", shop_id=SHOP, api_version="legacy")
    assert "s3cr3t" not in repr(config)
    assert "t0k3n" not in repr(config)
