"""Top-level fixtures: Kafka + MongoDB-compatible endpoints for integration tests.

If both ``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URL`` are set, those servers are used
(outage simulation is then unavailable and such tests skip). Otherwise a local Kafka
(KRaft) + PostgreSQL + FerretDB stack is started via :mod:`devinfra` in a temporary dir,
once per session, only when a test requests one of these fixtures.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from devinfra import Infra

# Test-only values of the secrets every ingestor and query API requires for shops (issue 16):
# Settings built in tests and the services they start (which inherit the environment) get
# them; a test of the refusal without them removes them first.
TEST_SHOP_TOKEN_KEY = "dGVzdC1vbmx5LXNob3AtdG9rZW4ta2V5LTMyLWJ5dGU="  # Fernet: 32 bytes
TEST_OAUTH_STATE_SECRET = "test-only-oauth-state-secret"
os.environ.setdefault("SHOP_TOKEN_KEYS", TEST_SHOP_TOKEN_KEY)
os.environ.setdefault("OAUTH_STATE_SECRET", TEST_OAUTH_STATE_SECRET)


class InfraHandle(Protocol):
    """What integration tests get from the ``infra`` fixture."""

    @property
    def kafka_bootstrap(self) -> str: ...
    @property
    def mongodb_url(self) -> str: ...
    @property
    def local(self) -> bool: ...

    # Outage simulation: restart on the same port and data dir. Blocking; in async tests
    # use ``await asyncio.to_thread(infra.stop_kafka)``. ``kill=True`` = SIGKILL (crash).
    def stop_kafka(self, *, kill: bool = False) -> None: ...
    def start_kafka(self) -> None: ...
    def stop_mongo(self, *, kill: bool = False) -> None: ...
    def start_mongo(self) -> None: ...


class ExternalInfra:
    """Servers given through the environment; outages cannot be simulated."""

    local = False

    def __init__(self, kafka_bootstrap: str, mongodb_url: str) -> None:
        self.kafka_bootstrap = kafka_bootstrap
        self.mongodb_url = mongodb_url

    def _no_outage(self) -> None:
        pytest.skip("outage simulation needs the local devinfra servers")

    def stop_kafka(self, *, kill: bool = False) -> None:
        self._no_outage()

    def start_kafka(self) -> None:
        self._no_outage()

    def stop_mongo(self, *, kill: bool = False) -> None:
        self._no_outage()

    def start_mongo(self) -> None:
        self._no_outage()


class LocalInfra:
    """Adapter over :class:`devinfra.Infra`."""

    local = True

    def __init__(self, data_dir: Path) -> None:
        self._infra = Infra(data_dir, durable=False)

    @property
    def kafka_bootstrap(self) -> str:
        return self._infra.kafka_bootstrap

    @property
    def mongodb_url(self) -> str:
        return self._infra.mongodb_url

    def start(self) -> None:
        self._infra.start()

    def stop(self) -> None:
        self._infra.stop()

    def stop_kafka(self, *, kill: bool = False) -> None:
        self._infra.stop_kafka(kill=kill)

    def start_kafka(self) -> None:
        self._infra.start_kafka()

    def stop_mongo(self, *, kill: bool = False) -> None:
        self._infra.stop_mongo(kill=kill)

    def start_mongo(self) -> None:
        self._infra.start_mongo()


@pytest.fixture(scope="session")
def infra() -> Iterator[InfraHandle]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    mongo = os.environ.get("MONGODB_URL")
    if kafka and mongo:
        yield ExternalInfra(kafka, mongo)
        return
    # Not pytest's tmp_path: its root is 0700 and PostgreSQL runs as the postgres user.
    data_dir = Path(tempfile.mkdtemp(prefix="returns-infra-"))
    data_dir.chmod(0o755)
    local = LocalInfra(data_dir)
    try:
        local.start()
        yield local
    finally:
        local.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: InfraHandle) -> str:
    return infra.kafka_bootstrap


@pytest.fixture(scope="session")
def mongodb_url(infra: InfraHandle) -> str:
    return infra.mongodb_url
