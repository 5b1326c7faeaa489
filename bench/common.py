"""Shared plumbing of the benchmarks: servers to measure on, and percentiles."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
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
    data_dir: Path  # the servers' data when local; a scratch dir (e.g. for logs) either way


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """KAFKA_BOOTSTRAP_SERVERS + MONGODB_URL when both are set, else fresh local servers
    (Kafka 4.1 KRaft + FerretDB on PostgreSQL 15, durable as under `make run`) in a new
    temporary dir, stopped and removed on exit."""
    data_dir = Path(tempfile.mkdtemp(prefix="returns-bench-"))
    data_dir.chmod(0o755)  # PostgreSQL runs as the postgres user
    try:
        kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URL")
        if kafka and mongo:
            yield Servers(kafka, mongo, local=False, data_dir=data_dir)
            return
        with Infra(data_dir, durable=True) as infra:
            yield Servers(infra.kafka_bootstrap, infra.mongodb_url, local=True, data_dir=data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(median, 99th percentile) of `samples` in seconds, as milliseconds (nearest rank)."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000
