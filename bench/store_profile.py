"""Where the store's time goes: PostgreSQL's statements under the bare loop and the state machine.

    python -m bench.store_profile [--returns 20000] [--events 100000] [--run bare sm]

Fresh local servers (as `bench.common.servers`, durable), with PostgreSQL restarted to load
`pg_stat_statements`; the events of `bench.state_machine_throughput` produced; then, for each
of `--run`, its rate, the CPU seconds each process spent (`bench.cpu`), and PostgreSQL's
statements by total execution time (calls, total and mean ms, and the ms spent planning them:
devinfra plans each execution), reset between runs. Last, each collection table's rows and
average stored and text size of its documents (FerretDB keeps a type schema beside the
values). Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.common import Servers
from bench.cpu import CpuMeter
from bench.state_machine_throughput import (
    end_offsets,
    events_for,
    produce,
    time_bare_loop,
    time_state_machine,
)
from devinfra import Infra
from devinfra.postgres import FERRET_DB, PG_USER
from runtime.topology import ensure_topics

TOP_STATEMENTS = 8
STATEMENTS = """
SELECT calls, round(total_exec_time)::bigint, round(mean_exec_time::numeric, 3),
       round(total_plan_time)::bigint,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 110)
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT %s
"""
TABLES = """
SELECT schemaname, relname FROM pg_stat_user_tables
WHERE schemaname = %s AND relname NOT LIKE '\\_%%'
"""


def _sql(infra: Infra, query: str | sql.Composed, params: tuple[Any, ...] = (),
         database: str = FERRET_DB) -> list[tuple[Any, ...]]:
    with psycopg.connect(host="127.0.0.1", port=infra.postgres.port, user=PG_USER,
                         dbname=database, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def _statements(infra: Infra) -> None:
    for calls, total_ms, mean_ms, plan_ms, text in _sql(infra, STATEMENTS, (TOP_STATEMENTS,)):
        print(f"  {calls:>9,} calls {total_ms:>9,} ms {mean_ms:>8} ms/call "
              f"(+{plan_ms:,} ms planning)  {text}")
    _sql(infra, "SELECT pg_stat_statements_reset()")


async def _run(infra: Infra, args: argparse.Namespace, database: str) -> None:
    srv = Servers(infra.kafka_bootstrap, infra.mongodb_url, local=True, data_dir=infra.data_dir)
    await ensure_topics(srv.kafka_bootstrap)
    await produce(srv.kafka_bootstrap,
                  events_for(f"bench-{uuid.uuid4().hex[:6]}", args.returns, args.events))
    end = await end_offsets(srv.kafka_bootstrap)
    _sql(infra, "SELECT pg_stat_statements_reset()")
    for which in args.run:
        async with CpuMeter() as cpu:
            if which == "bare":
                seconds = await time_bare_loop(srv, database, end)
            else:
                seconds = (await time_state_machine(srv, database, end)).total_s
        print(f"\n{which}: {args.events / seconds:,.0f} events/s ({seconds:.1f} s); "
              f"CPU seconds: {cpu.summary()}")
        _statements(infra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--returns", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--run", nargs="+", choices=["bare", "sm"], default=["bare", "sm"])
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="returns-bench-profile-"))
    data_dir.chmod(0o755)  # PostgreSQL runs as the postgres user
    database = "profile"
    try:
        with Infra(data_dir, durable=True) as infra:
            _sql(infra, "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
                 database="postgres")
            infra.stop_postgres()
            infra.start_postgres()
            _sql(infra, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            # every statement is planned per execution (plan_cache_mode): count that too
            _sql(infra, "ALTER SYSTEM SET pg_stat_statements.track_planning = on")
            _sql(infra, "SELECT pg_reload_conf()")
            asyncio.run(_run(infra, args, database))
            print("\ntable: rows, average stored bytes, average text bytes of a document")
            for schema, table in _sql(infra, TABLES, (database,)):
                sizes = sql.SQL("SELECT count(*), avg(pg_column_size(_jsonb))::int, "
                                "avg(octet_length(_jsonb::text))::int FROM {}").format(
                    sql.Identifier(schema, table))
                print(f"  {table}: {_sql(infra, sizes)[0]}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
