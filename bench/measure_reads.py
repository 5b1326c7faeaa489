"""Read latency through the query API: the list per status tab (first page and a deep page
reached by its keyset cursor) and the per-status counts, each as median and 99th percentile."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bench.common import percentiles
from contracts.statuses import STATUS_TABS

LIMIT = 50
DEEP_PAGE = 20
ALL = "ALL"
TABS: tuple[str, ...] = (ALL, *(status.value for status, _label in STATUS_TABS))


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    samples: int

    @classmethod
    def of(cls, samples: list[float]) -> Latency:
        p50, p99 = percentiles(samples)
        return cls(p50, p99, len(samples))


@dataclass(frozen=True)
class TabLatency:
    tab: str
    returns: int  # in the tab, as the counts route says
    first_page: Latency
    deep_page: Latency | None  # None: the tab has fewer than DEEP_PAGE pages


@dataclass(frozen=True)
class Reads:
    tabs: list[TabLatency]
    counts: Latency

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _timed_get(client: httpx.AsyncClient, path: str, params: dict[str, Any],
                     requests: int) -> list[float]:
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.get(path, params=params)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    return samples


async def _deep_cursor(client: httpx.AsyncClient, params: dict[str, Any]) -> str | None:
    """The cursor of page DEEP_PAGE, walking the pages once; None when there are fewer."""
    cursor: str | None = None
    for _page in range(1, DEEP_PAGE):
        body = (await client.get("/api/v1/returns", params={
            **params, **({"cursor": cursor} if cursor else {})})).raise_for_status().json()
        cursor = body["next_cursor"]
        if cursor is None:
            return None
    return cursor


async def measure_reads(client: httpx.AsyncClient, shop: str, requests: int) -> Reads:
    """`client` has the query API's base URL and a bearer token granted `shop`."""
    counts_params = {"shop_id": shop}
    counts = (await client.get("/api/v1/returns/counts", params=counts_params)
              ).raise_for_status().json()["counts"]
    tabs = []
    for tab in TABS:
        params: dict[str, Any] = {"shop_id": shop, "limit": LIMIT}
        if tab != ALL:
            params["status"] = tab
        first = await _timed_get(client, "/api/v1/returns", params, requests)
        cursor = await _deep_cursor(client, params)
        deep = None
        if cursor is not None:
            deep = Latency.of(await _timed_get(
                client, "/api/v1/returns", {**params, "cursor": cursor}, requests))
        tabs.append(TabLatency(tab, int(counts.get(tab, 0)), Latency.of(first), deep))
    count_samples = await _timed_get(client, "/api/v1/returns/counts", counts_params, requests)
    return Reads(tabs, Latency.of(count_samples))
