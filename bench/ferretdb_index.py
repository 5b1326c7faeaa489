"""Update by _id, insert and the list query through PyMongo on FerretDB, with and without
devinfra's GIN indexes.

Fresh PostgreSQL 15 + FerretDB 1.24 (durable, as under `make run`), one collection of `--docs`
documents shaped like returns (one shop, nine statuses). Times `--updates` of each: an
`update_one` by `_id` of a random document, an `insert_one`, and the list's first page (shop and
status equality, newest update first, 51 documents) with the GIN indexes devinfra's event
triggers created (for `_id`, and for the declared index's shop and status), then again after
dropping them (FerretDB as it was: every filter scans).
Figures only, no assertions.

    .venv/bin/python -m bench.ferretdb_index --docs 20000 --updates 200
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from pymongo import MongoClient
from pymongo.collection import Collection

from devinfra import FerretDBServer, PostgresServer, install
from devinfra.postgres import FERRET_DB, PG_USER

DATABASE, COLLECTION = "bench_index", "returns"
SHOP = "7494560109732840000"
STATUSES = [f"STATUS_{n}" for n in range(9)]


def doc(i: int) -> dict[str, Any]:
    return {"_id": f"{SHOP}:{i:019d}", "shop_id": SHOP, "status": random.choice(STATUSES),
            "update_time": 1_732_600_000 + i, "version": 1,
            "history": [{"status": STATUSES[0], "update_time": i}] * 3}  # fmt: skip


def timed(n: int, operation: Callable[[int], object]) -> list[float]:
    """Milliseconds of each of ``n`` calls."""
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        operation(i)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def measure(coll: Collection[dict[str, Any]], docs: int, updates: int, offset: int) -> str:
    ids = [doc(random.randrange(docs))["_id"] for _ in range(updates)]
    update = timed(updates, lambda i: coll.update_one({"_id": ids[i]}, {"$inc": {"version": 1}}))
    insert = timed(updates, lambda i: coll.insert_one(doc(offset + i)))
    page = timed(updates, lambda i: list(
        coll.find({"shop_id": SHOP, "status": STATUSES[i % len(STATUSES)]})
        .sort([("update_time", -1), ("_id", -1)]).limit(51)
    ))  # fmt: skip
    return " | ".join(f"{name} p50 {statistics.median(ms):6.1f} ms" for name, ms in
                      (("update by _id", update), ("insert", insert), ("list page", page)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="returns-bench-index-"))
    data_dir.chmod(0o755)
    paths = install()
    postgres = PostgresServer(data_dir / "postgres", paths, durable=True)
    ferretdb = FerretDBServer(data_dir / "ferretdb", paths, postgresql_url=postgres.url, port=None)
    try:
        postgres.start()
        ferretdb.start()
        client: MongoClient[dict[str, Any]] = MongoClient(ferretdb.url)
        coll = client[DATABASE][COLLECTION]
        # declared as the app declares its indexes: devinfra gives its equality keys GIN indexes
        coll.create_index([("shop_id", 1), ("status", 1), ("update_time", -1), ("_id", -1)],
                          name="shop_status_updated")
        for start in range(0, args.docs, 1000):
            coll.insert_many(doc(i) for i in range(start, min(start + 1000, args.docs)))
        print(f"{args.docs} documents, {args.updates} updates and inserts each")
        print("with GIN indexes    ", measure(coll, args.docs, args.updates, args.docs))
        with psycopg.connect(host="127.0.0.1", port=postgres.port, user=PG_USER,
                             dbname=FERRET_DB, autocommit=True) as conn:  # fmt: skip
            names = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname LIKE %s",
                (DATABASE, "%\\_gin"),
            ).fetchall()
            for (name,) in names:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(DATABASE, name)))
        print("without (FerretDB's)", measure(coll, args.docs, args.updates, 2 * args.docs))
        client.close()
    finally:
        ferretdb.stop()
        postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
