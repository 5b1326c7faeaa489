"""Shared plumbing of the benchmarks: servers to measure on, and producing events."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devinfra import Infra


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    mongodb_url: str
    local: bool


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """KAFKA_BOOTSTRAP_SERVERS + MONGODB_URL when both are set, else fresh local servers
    (Kafka 4.1 KRaft + FerretDB on PostgreSQL 15, durable as under `make run`)."""
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URL")
    if kafka and mongo:
        yield Servers(kafka, mongo, local=False)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="returns-bench-"))
    data_dir.chmod(0o755)
    with Infra(data_dir, durable=True) as infra:
        yield Servers(infra.kafka_bootstrap, infra.mongodb_url, local=True)
