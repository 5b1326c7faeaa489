"""What one update of a counts document costs, by how it stores its per-day histogram.

    python -m bench.counts_document [--days 35 365] [--updates 200]

On `bench.common.servers` (fresh local ones unless given), in a database of its own, dropped
after, for a shop of N days with 10 statuses each: one counts document with its histogram as
nested fields (moved on by `$inc`, as up to read model 3 wrote it) and one with it as one text
(`contracts.read_model.days_text`, set whole), each updated as the state machine does (guarded
by its offset), one update at a time. Prints ms per update and per read, and the histogram's
size. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

from pymongo import AsyncMongoClient

from bench.common import servers
from contracts.read_model import DAY_S, days_text

STATUSES = [f"STATUS_{n}" for n in range(10)]
D0 = 1_700_006_400


async def measure(url: str, days: int, updates: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    database = f"bench_counts_{uuid.uuid4().hex[:8]}"
    try:
        histogram = {str(D0 + d * DAY_S): {s: 5 for s in STATUSES} for d in range(days)}
        for form in ("nested", "text"):
            coll = client[database][f"{form}_{days}"]
            stored: Any = histogram if form == "nested" else days_text(histogram)
            await coll.insert_one({"_id": "s:0", "shop_id": "s", "partition": 0, "offset": 0,
                                   "counts": {s: 100 for s in STATUSES}, "days": stored})
            started = time.perf_counter()
            for n in range(updates):
                day, status = str(D0 + (n % days) * DAY_S), STATUSES[n % len(STATUSES)]
                update: dict[str, Any] = {"$set": {"offset": n + 1},
                                          "$inc": {f"counts.{status}": 1}}
                if form == "nested":
                    update["$inc"][f"days.{day}.{status}"] = 1
                else:
                    histogram[day][status] += 1
                    update["$set"]["days"] = days_text(histogram)
                await coll.update_one({"_id": "s:0", "offset": n}, update)
            per_update = (time.perf_counter() - started) / updates * 1000
            started = time.perf_counter()
            for _ in range(updates):
                await coll.find_one({"_id": "s:0"})
            per_read = (time.perf_counter() - started) / updates * 1000
            size = len(json.dumps(stored)) if form == "nested" else len(stored)
            print(f"{days:>4} days, {form:>6}: update {per_update:5.2f} ms, "
                  f"read {per_read:5.2f} ms, histogram {size:,} bytes of JSON", flush=True)
    finally:
        await client.drop_database(database)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, nargs="+", default=[35, 365])
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    with servers() as srv:
        for days in args.days:
            asyncio.run(measure(srv.mongodb_url, days, args.updates))


if __name__ == "__main__":
    main()
