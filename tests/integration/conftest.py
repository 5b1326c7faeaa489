"""The three services as real processes against the session's real Kafka and FerretDB."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.services import ServiceProcess, free_port, http_ok, wait_until

APP_KEY = "it-app-key"
APP_SECRET = "it-app-secret"
TOKEN = "it-ops-token"


@dataclass
class Stack:
    ingestor_url: str
    query_url: str
    database: str
    env: dict[str, str]
    processes: dict[str, ServiceProcess]
    log_dir: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def state_machine(self, name: str, **env: str) -> ServiceProcess:
        """Another state-machine process (own log), e.g. for crash or scale-out tests."""
        return ServiceProcess(
            "state_machine",
            {**self.env, "STATE_MACHINE_METRICS_PORT": str(free_port()), **env},
            self.log_dir / f"{name}.log",
        )


def base_env(kafka_bootstrap: str, mongodb_url: str, database: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": database,
        "TIKTOK_APP_KEY": APP_KEY,
        "TIKTOK_APP_SECRET": APP_SECRET,
        "QUERY_API_TOKENS": f'{{"{TOKEN}": ["*"]}}',
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def stack(
    kafka_bootstrap: str, mongodb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    log_dir = tmp_path_factory.mktemp("service-logs")
    ingestor_port, query_port = free_port(), free_port()
    env = base_env(kafka_bootstrap, mongodb_url, database)
    processes = {
        "state_machine": ServiceProcess(
            "state_machine",
            {
                **env,
                "STATE_MACHINE_METRICS_PORT": str(free_port()),
                "STATE_MACHINE_GROUP_ID": f"sm-{database}",
            },
            log_dir / "state_machine.log",
        ),
        "query_api": ServiceProcess(
            "query_api", {**env, "QUERY_API_PORT": str(query_port)}, log_dir / "query_api.log"
        ),
        "ingestor": ServiceProcess(
            "ingestor", {**env, "INGESTOR_PORT": str(ingestor_port)}, log_dir / "ingestor.log"
        ),
    }
    result = Stack(
        f"http://127.0.0.1:{ingestor_port}",
        f"http://127.0.0.1:{query_port}",
        database,
        env,
        processes,
        log_dir,
    )
    try:
        for process in processes.values():
            process.start()
        wait_until(lambda: http_ok(f"{result.query_url}/readyz"), 60, "query API ready")
        wait_until(lambda: http_ok(f"{result.ingestor_url}/readyz"), 60, "ingestor ready")
        yield result
    finally:
        for name, process in processes.items():
            process.stop()
            print(f"--- {name} log tail ---\n{process.log_tail(15)}")
