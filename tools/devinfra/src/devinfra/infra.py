"""Kafka + PostgreSQL + FerretDB under one data dir, started and stopped together."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devinfra.ferretdb import FerretDBServer
from devinfra.install import InstalledPaths, install
from devinfra.kafka import KafkaServer
from devinfra.postgres import PostgresServer

log = logging.getLogger("devinfra")


@dataclass(frozen=True)
class InfraEndpoints:
    kafka_bootstrap: str  # "127.0.0.1:port"
    mongodb_url: str  # "mongodb://127.0.0.1:port/"
    postgresql_url: str  # backend of FerretDB, for debugging


class Infra:
    """Kafka + PostgreSQL + FerretDB under one data dir.

    ``start()`` launches Kafka and PostgreSQL→FerretDB concurrently. The outage helpers
    (``stop_kafka``/``start_kafka``, ``stop_mongo``/``start_mongo``) restart a server on
    the same port and data dir. All methods are blocking; from async code call them via
    ``await asyncio.to_thread(infra.stop_kafka)``.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        kafka_port: int | None = None,
        mongo_port: int | None = None,
        postgres_port: int | None = None,
        durable: bool = True,
        paths: InstalledPaths | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.paths = paths or install()
        self.kafka = KafkaServer(self.data_dir / "kafka", self.paths, port=kafka_port)
        self.postgres = PostgresServer(
            self.data_dir / "postgres", self.paths, port=postgres_port, durable=durable
        )
        self.ferretdb = FerretDBServer(
            self.data_dir / "ferretdb",
            self.paths,
            postgresql_url=self.postgres.url,
            port=mongo_port,
        )

    @property
    def endpoints(self) -> InfraEndpoints:
        return InfraEndpoints(
            kafka_bootstrap=self.kafka.bootstrap,
            mongodb_url=self.ferretdb.url,
            postgresql_url=self.postgres.url,
        )

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def mongodb_url(self) -> str:
        return self.ferretdb.url

    def exited(self) -> list[str]:
        """The servers that do not run (any longer)."""
        servers = {"kafka": self.kafka, "postgres": self.postgres, "ferretdb": self.ferretdb}
        return [name for name, server in servers.items() if not server.running]

    def start(self) -> InfraEndpoints:
        t0 = time.monotonic()
        try:
            self.kafka.start_process()  # JVM boot overlaps with postgres + ferretdb
            self.postgres.start()
            self.ferretdb.start()
            self.kafka.wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("infra up in %.1fs: %s", time.monotonic() - t0, self.endpoints)
        return self.endpoints

    def stop(self) -> None:
        """Stop everything (best effort, never raises for a single server)."""
        for stop in (self.ferretdb.stop, self.kafka.stop, self.postgres.stop):
            try:
                stop()
            except Exception:
                log.exception("error while stopping")

    # outage simulation -----------------------------------------------------------------

    def stop_kafka(self, *, kill: bool = False) -> None:
        self.kafka.stop(kill=kill)

    def start_kafka(self) -> None:
        self.kafka.start()

    def stop_mongo(self, *, kill: bool = False) -> None:
        self.ferretdb.stop(kill=kill)

    def start_mongo(self) -> None:
        self.ferretdb.start()

    def stop_postgres(self, *, kill: bool = False) -> None:
        self.postgres.stop(kill=kill)

    def start_postgres(self) -> None:
        self.postgres.start()

    def __enter__(self) -> Infra:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_infra(
    data_dir: Path,
    *,
    kafka_port: int | None = None,
    mongo_port: int | None = None,
    durable: bool = True,
) -> Iterator[Infra]:
    """Start all three servers, yield the :class:`Infra` (has ``.kafka_bootstrap`` and
    ``.mongodb_url`` plus outage helpers), stop everything on exit or error."""
    infra = Infra(data_dir, kafka_port=kafka_port, mongo_port=mongo_port, durable=durable)
    infra.start()
    try:
        yield infra
    finally:
        infra.stop()
