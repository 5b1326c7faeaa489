"""Latency of the returns list, through the query API and directly through PyMongo.

    python -m bench.query_latency [--sizes 10000 100000] [--requests 40]

For a shop with N returns (seeded straight into the read model), time `GET /api/v1/returns`
with a status filter — the first page and a deep page (page 20, reached by its cursor) — over
HTTP against a real `python -m query_api` process, and the same query (same filter, sort and
limit, built by the API's own `query_api.queries`) made directly with PyMongo against the same
store. Prints median and 99th percentile of each, and their ratio: the API's own overhead.
No assertions: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench.common import Servers, percentiles, servers
from contracts.messages import Money, ReturnDetails, ReturnItem, return_key
from contracts.read_model import DEFAULT_RETURNS_COLLECTION, ReturnState
from contracts.statuses import ReturnStatus, ReverseType
from query_api import queries

STATUS = ReturnStatus.AFTERSALE_APPLYING
LIMIT = 50
DEEP_PAGE = 20
TOKEN = "bench-token"
STATUSES = list(ReturnStatus)


def document(shop: str, i: int) -> dict[str, Any]:
    status = STATUSES[i % len(STATUSES)]
    now = datetime.now(UTC)
    state = ReturnState(
        shop_id=shop,
        return_id=f"r{i:07d}",
        order_id=f"o{i:07d}",
        status=status,
        reverse_type=ReverseType.RETURN_AND_REFUND,
        update_time=1_700_000_000 + i // 3,
        details=ReturnDetails(
            refund=Money(amount=Decimal("19.90"), currency="USD"),
            reason="damaged",
            items=(ReturnItem(sku_id="s1", quantity=1),),
        ),
        first_seen_at=now,
        last_seen_at=now,
    )
    return state.model_dump(mode="json") | {"_id": return_key(shop, state.return_id)}


async def seed(mongo: AsyncMongoClient[dict[str, Any]], database: str, shop: str, n: int) -> None:
    collection = mongo[database][DEFAULT_RETURNS_COLLECTION]
    for start in range(0, n, 1000):
        await collection.insert_many(
            [document(shop, i) for i in range(start, min(n, start + 1000))], ordered=False
        )


async def time_api(client: httpx.AsyncClient, params: dict[str, Any], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        response = await client.get("/api/v1/returns", params=params)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
    return samples


async def time_direct(
    mongo: AsyncMongoClient[dict[str, Any]], database: str, params: queries.ListParams, n: int
) -> list[float]:
    collection = mongo[database][DEFAULT_RETURNS_COLLECTION]
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        cursor = collection.find(queries.build_filter(params)).sort(queries.build_sort())
        await cursor.limit(params.limit + 1).to_list()
        samples.append(time.perf_counter() - started)
    return samples


async def run(srv: Servers, size: int, requests: int) -> None:
    database, shop = f"bench_q_{uuid.uuid4().hex[:6]}", f"shop-{size}"
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(srv.mongodb_url)
    started = time.perf_counter()
    await seed(mongo, database, shop, size)
    print(
        f"\n{size:,} returns seeded in {time.perf_counter() - started:.0f}s "
        f"({size // len(STATUSES):,} with status {STATUS})"
    )
    port = 18000 + size % 1000
    env = {
        **os.environ,
        "MONGODB_URL": srv.mongodb_url,
        "MONGODB_DATABASE": database,
        "KAFKA_BOOTSTRAP_SERVERS": srv.kafka_bootstrap,
        "QUERY_API_PORT": str(port),
        "QUERY_API_TOKENS": f'{{"{TOKEN}": ["*"]}}',
        "LOG_LEVEL": "WARNING",
    }
    api = await asyncio.create_subprocess_exec(sys.executable, "-m", "query_api", env=env)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            timeout=120,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as client:
            for _ in range(300):  # index creation on start-up may take a while
                try:
                    if (await client.get("/readyz")).json().get("indexes"):
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
            first = {"shop_id": shop, "status": STATUS.value, "limit": LIMIT}
            page, cursor = 1, None
            while page < DEEP_PAGE:  # walk to the deep page once, to get its cursor
                body = (
                    await client.get(
                        "/api/v1/returns",
                        params={**first, **({"cursor": cursor} if cursor else {})},
                    )
                ).json()
                cursor, page = body["next_cursor"], page + 1
            assert cursor is not None, "not enough returns for the deep page"
            cases = [
                ("first page", first, None),
                (f"page {DEEP_PAGE}", {**first, "cursor": cursor}, queries.decode_cursor(cursor)),
            ]
            print(
                f"  {'query':<12} {'API p50':>9} {'API p99':>9} {'PyMongo p50':>12} "
                f"{'PyMongo p99':>12} {'ratio p50':>10}"
            )
            for name, params, after in cases:
                api_samples = await time_api(client, params, requests)
                direct = await time_direct(
                    mongo,
                    database,
                    queries.ListParams(shop_id=shop, statuses=(STATUS,), limit=LIMIT, after=after),
                    requests,
                )
                (a50, a99), (d50, d99) = percentiles(api_samples), percentiles(direct)
                print(
                    f"  {name:<12} {a50:8.1f}ms {a99:8.1f}ms {d50:11.1f}ms {d99:11.1f}ms "
                    f"{a50 / d50:10.2f}"
                )
    finally:
        api.terminate()
        await api.wait()
        await mongo.drop_database(database)
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with servers() as srv:
        print(f"servers: kafka {srv.kafka_bootstrap}, mongodb {srv.mongodb_url}")
        for size in args.sizes:
            asyncio.run(run(srv, size, args.requests))


if __name__ == "__main__":
    main()
