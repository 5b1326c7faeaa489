"""The local servers: the fixtures yield a working Kafka and FerretDB; FerretDB's PostgreSQL is
index-backed; every server stops promptly."""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from psycopg import sql
from pymongo import MongoClient

from devinfra import (
    FerretDBServer,
    Infra,
    PostgresServer,
    ServerStartError,
    ferretdb_indexes,
    install,
)
from devinfra.postgres import FERRET_DB
from tests.integration.events import new_topic

pytestmark = pytest.mark.integration


async def test_kafka_roundtrip(kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "infra-smoke")

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        msg = await consumer.getone()
        assert (msg.key, msg.value) == (b"k1", b"hello")
        await consumer.commit()
    finally:
        await consumer.stop()


def test_mongo_roundtrip(mongodb_url: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    try:
        coll = client["infra_smoke"][f"c_{uuid.uuid4().hex[:8]}"]
        coll.insert_one({"_id": "r1", "status": "REQUESTED", "amount": {"value": "12.50"}})
        doc = coll.find_one({"_id": "r1"})
        assert doc is not None
        assert doc["status"] == "REQUESTED"
        coll.update_one({"_id": "r1"}, {"$set": {"status": "APPROVED"}})
        assert coll.count_documents({"status": "APPROVED"}) == 1
    finally:
        client.close()


# --------------------------------------------------------------------------- own servers


def _temp_data_dir() -> Path:
    # Not pytest's tmp_path: its root is 0700 and PostgreSQL runs as the postgres user.
    path = Path(tempfile.mkdtemp(prefix="returns-infra-test-"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def ferretdb_on_postgres() -> Iterator[tuple[PostgresServer, FerretDBServer]]:
    """A PostgreSQL and a FerretDB of our own, to look at what FerretDB does in PostgreSQL."""
    data_dir = _temp_data_dir()
    paths = install()
    postgres = PostgresServer(data_dir / "postgres", paths, durable=False)
    ferretdb = FerretDBServer(
        data_dir / "ferretdb", paths, postgresql_url=postgres.url, port=None
    )
    try:
        postgres.start()
        ferretdb.start()
        yield postgres, ferretdb
    finally:
        ferretdb.stop()
        postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _collection_table(postgres: PostgresServer, database: str, collection: str) -> str:
    """The PostgreSQL table FerretDB keeps ``database.collection`` in (schema = database)."""
    with psycopg.connect(**_conninfo(postgres)) as conn:
        row = conn.execute(
            sql.SQL("SELECT _jsonb->>'table' FROM {} WHERE _jsonb->>'_id' = %s").format(
                sql.Identifier(database, "_ferretdb_database_metadata")
            ),
            (collection,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def _conninfo(postgres: PostgresServer) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": postgres.port, "user": "postgres", "dbname": FERRET_DB}


def _indexes(postgres: PostgresServer, schema: str, table: str) -> list[str]:
    with psycopg.connect(**_conninfo(postgres)) as conn:
        rows = conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
                            "AND tablename = %s ORDER BY indexname", (schema, table)).fetchall()
    return [row[0] for row in rows]


def _placeholders(postgres: PostgresServer, schema: str) -> list[str]:
    """The empty indexes keeping declared indexes' names, on the schema's names table."""
    return [d for d in _indexes(postgres, schema, ferretdb_indexes.NAMES_TABLE)
            if d.endswith("WHERE false")]


def _gin_fields(indexdefs: list[str]) -> set[str]:
    gin = re.compile(r"USING gin \(\(\(_jsonb -> '([^']+)'::text\)\) jsonb_path_ops\)")
    return {m.group(1) for d in indexdefs if (m := gin.search(d))}


def test_a_declared_index_becomes_gin_indexes_on_its_equality_keys_and_a_name_off_its_table(
    ferretdb_on_postgres: tuple[PostgresServer, FerretDBServer],
) -> None:
    postgres, ferretdb = ferretdb_on_postgres
    client: MongoClient[dict[str, Any]] = MongoClient(ferretdb.url)
    try:
        events = client["idx-fields"]["events"]
        events.insert_one({"_id": "e1", "return_key": "s:r", "shop_id": "s", "update_time": 1})
        declared = [([("return_key", 1), ("update_time", 1), ("rank", 1)], "return_order"),
                    ([("shop_id", 1), ("details.request_time", 1)], "shop_requested")]
        for keys, name in declared * 2:  # the second time, as at every start: nothing changes
            events.create_index(keys, name=name)
        table = _collection_table(postgres, "idx-fields", "events")
        indexdefs = _indexes(postgres, "idx-fields", table)
        # equality keys only: update_time and rank are sort keys, details.request_time nested
        assert _gin_fields(indexdefs) == {"_id", "return_key", "shop_id"}
        btrees = [d for d in indexdefs if "USING btree" in d]
        assert len(btrees) == 1, indexdefs
        assert "CREATE UNIQUE INDEX" in btrees[0]  # FerretDB's own, on _id
        # the declared btrees' names, kept by empty indexes on another table of the schema
        assert len(_placeholders(postgres, "idx-fields")) == 2
        # as on MongoDB: the declared names are listed, found through the GIN index, droppable
        assert {i["name"] for i in events.list_indexes()} == {"_id_", "return_order",
                                                              "shop_requested"}
        assert [d["_id"] for d in events.find({"return_key": "s:r"})] == ["e1"]
        events.drop_index("shop_requested")
        assert len(_placeholders(postgres, "idx-fields")) == 1
        assert _indexes(postgres, "idx-fields", table) == indexdefs
        # a dropped collection takes its names along: created again, it declares them again
        events.drop()
        assert _placeholders(postgres, "idx-fields") == []
        events.insert_one({"_id": "e2", "return_key": "s:r"})
        for keys, name in declared:
            events.create_index(keys, name=name)
        assert len(_placeholders(postgres, "idx-fields")) == 2
        assert [d["_id"] for d in events.find({"return_key": "s:r"})] == ["e2"]
    finally:
        client.close()
    assert not _gin_fields(_indexes(postgres, "idx-fields", "_ferretdb_database_metadata"))


def test_ferretdbs_prepared_find_by_id_is_a_bitmap_index_scan_on_the_gin_index(
    ferretdb_on_postgres: tuple[PostgresServer, FerretDBServer],
) -> None:
    postgres, ferretdb = ferretdb_on_postgres
    client: MongoClient[dict[str, Any]] = MongoClient(ferretdb.url)
    try:
        client["idx_plan"]["returns"].insert_many(
            {"_id": f"r{i}", "shop_id": f"s{i % 10}", "status": "AFTERSALE_APPLYING"}
            for i in range(3000)
        )
    finally:
        client.close()
    table = _collection_table(postgres, "idx_plan", "returns")
    # FerretDB's shape for a top-level equality, as a prepared statement with parameters; the
    # sixth execution on is where PostgreSQL may switch to a generic plan
    prepare = sql.SQL("PREPARE by_field(text, jsonb) AS SELECT _jsonb FROM {} "
                      "WHERE _jsonb->$1 @> $2").format(sql.Identifier("idx_plan", table))
    with psycopg.connect(**_conninfo(postgres)) as conn:
        conn.execute(prepare)
        for i in range(6):
            conn.execute(f"EXECUTE by_field('_id', '\"r{i}\"')").fetchall()
        plan = "\n".join(
            row[0] for row in conn.execute("EXPLAIN EXECUTE by_field('_id', '\"r7\"')")
        )
    assert f"Bitmap Index Scan on {table}__id_gin" in plan, plan


def test_the_tables_and_indexes_of_an_existing_data_dir_are_translated_at_start(
    ferretdb_on_postgres: tuple[PostgresServer, FerretDBServer],
) -> None:
    postgres, ferretdb = ferretdb_on_postgres
    with psycopg.connect(**_conninfo(postgres), autocommit=True) as conn:  # FerretDB as it was
        for trigger in (ferretdb_indexes.TABLE_TRIGGER, ferretdb_indexes.INDEX_TRIGGER,
                        ferretdb_indexes.DROP_TRIGGER):
            conn.execute(sql.SQL("ALTER EVENT TRIGGER {} DISABLE").format(sql.Identifier(trigger)))
    client: MongoClient[dict[str, Any]] = MongoClient(ferretdb.url)
    try:
        client["idx_existing"]["sync_jobs"].insert_one({"_id": "j1", "shop_id": "s"})
        client["idx_existing"]["sync_jobs"].create_index(
            [("shop_id", 1), ("status", 1), ("created_at", -1)], name="shop_status_created")
    finally:
        client.close()
    table = _collection_table(postgres, "idx_existing", "sync_jobs")
    with psycopg.connect(**_conninfo(postgres), autocommit=True) as conn:
        # a placeholder as an earlier devinfra kept it: on the collection's table itself
        conn.execute(sql.SQL("CREATE INDEX {} ON {} (_jsonb) WHERE false").format(
            sql.Identifier(f"{table}_old_idx"), sql.Identifier("idx_existing", table)))
    before = _indexes(postgres, "idx_existing", table)
    assert not _gin_fields(before)
    assert sum("USING btree" in d and "WHERE false" not in d for d in before) == 2
    ferretdb.stop()  # a restart, as of `make run` on an existing data dir
    postgres.stop()
    postgres.start()
    ferretdb.start()
    after = _indexes(postgres, "idx_existing", table)
    assert _gin_fields(after) == {"_id", "shop_id", "status"}
    assert [d for d in after if "USING btree" in d] == [  # FerretDB's unique _id only
        d for d in before if "CREATE UNIQUE INDEX" in d]
    assert sorted(d.split()[2] for d in _placeholders(postgres, "idx_existing")) == sorted(
        [f"{table}_old_idx", *(d.split()[2] for d in before
                               if "USING btree" in d and "UNIQUE" not in d
                               and "WHERE false" not in d)])


def test_the_index_check_fails_in_one_line_without_custom_plans_or_the_trigger() -> None:
    ferretdb_indexes.check("force_custom_plan|t")  # the three triggers: counted in SQL
    for broken in ("auto|t", "force_custom_plan|f"):
        with pytest.raises(ServerStartError) as failure:
            ferretdb_indexes.check(broken)
        assert "\n" not in str(failure.value)


def _checked(postgres: PostgresServer) -> str:
    """The start check's query, as devinfra's psql prints it (``mode|t``)."""
    with psycopg.connect(**_conninfo(postgres)) as conn:
        row = conn.execute(ferretdb_indexes.CHECK_SQL).fetchone()
    assert row is not None
    return f"{row[0]}|{'t' if row[1] else 'f'}"


@pytest.mark.parametrize("trigger", [ferretdb_indexes.TABLE_TRIGGER,
                                     ferretdb_indexes.INDEX_TRIGGER,
                                     ferretdb_indexes.DROP_TRIGGER])
def test_the_start_check_notices_each_trigger_disabled(
    ferretdb_on_postgres: tuple[PostgresServer, FerretDBServer], trigger: str,
) -> None:
    postgres, _ = ferretdb_on_postgres
    ferretdb_indexes.check(_checked(postgres))  # as installed
    alter = sql.SQL("ALTER EVENT TRIGGER {} {}")
    with psycopg.connect(**_conninfo(postgres), autocommit=True) as conn:
        conn.execute(alter.format(sql.Identifier(trigger), sql.SQL("DISABLE")))
        try:
            with pytest.raises(ServerStartError, match=trigger):
                ferretdb_indexes.check(_checked(postgres))
        finally:
            conn.execute(alter.format(sql.Identifier(trigger), sql.SQL("ENABLE")))


def test_every_server_exits_within_10s_of_sigterm() -> None:
    data_dir = _temp_data_dir()
    infra = Infra(data_dir, durable=False)
    try:
        infra.start()
        client: MongoClient[dict[str, Any]] = MongoClient(infra.mongodb_url)
        client["sigterm"]["c"].insert_one({"_id": 1})  # a client connected to FerretDB
        servers = {"kafka": infra.kafka, "postgres": infra.postgres, "ferretdb": infra.ferretdb}
        processes = {name: psutil.Process(server.pid) for name, server in servers.items()
                     if server.pid is not None}  # fmt: skip
        t0 = time.monotonic()
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        exited: dict[str, float] = {}
        while len(exited) < len(processes) and time.monotonic() - t0 < 30:
            for name, process in processes.items():
                if name not in exited and process.status() == psutil.STATUS_ZOMBIE:
                    exited[name] = time.monotonic() - t0
            time.sleep(0.05)
        client.close()
        print("\nexit after SIGTERM: " + ", ".join(f"{n} {s:.1f}s" for n, s in exited.items()))
        assert exited.keys() == processes.keys()
        assert max(exited.values()) < 10, exited
    finally:
        infra.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
