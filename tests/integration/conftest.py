"""The three services as real processes against the session's real Kafka and FerretDB."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from devinfra.proc import free_port
from tests.integration.harness import Doc, Harness
from tests.integration.services import ServiceProcess, http_ok, wait_until

APP_KEY = "it-app-key"
APP_SECRET = "it-app-secret"
TOKEN = "it-ops-token"
LIMITED_TOKEN = "it-limited-token"  # granted only LIMITED_SHOP
LIMITED_SHOP = "it-limited-shop"
READ_TOKEN = "it-read-token"  # every shop, read-only (the old form of a grant: a list of shops)
TOKEN_LABEL = "Ops (integration tests)"  # TOKEN's label, recorded with its decisions
INTERNAL_TOKEN = "it-internal-token"  # the query API's calls to the ingestor
DEADLINE_SECRET = "it-deadline-secret"  # signs the ingestor's deadline webhook
SIM_ACCESS_TOKEN = "it-access-token"
SYNC_LEASE_SECONDS = 6  # short, so a restarted ingestor takes over a dead one's sync quickly
SYNC_JOB_STALE_SECONDS = 8  # likewise: a dead ingestor's job is taken over after this

# Shops the session ingestor may sync from the simulator (name -> api version, access token);
# their ids get the session's database name as suffix (see `Stack.shop`). A token of None means
# the ingestor's default TIKTOK_ACCESS_TOKEN, which the simulator accepts.
SYNC_SHOPS: dict[str, tuple[str, str | None]] = {
    "bulk": ("202309", None),
    "bad-token": ("202309", "it-wrong-access-token"),
    "expired": ("legacy", None),
    "checkpoint": ("legacy", None),
    "killed": ("202309", None),
    "same-change": ("202309", None),
    "enrich": ("legacy", None),
    "gen-legacy": ("legacy", None),
    "gen-202309": ("202309", None),
    "api": ("202309", None),
    "cli": ("legacy", None),
    "dashboard": ("202309", None),
    "decisions": ("202309", None),
    "decisions-legacy": ("legacy", None),
    "dashboard-actions": ("202309", None),
    "deadlines": ("202309", None),
}


@dataclass
class Stack:
    ingestor_url: str
    query_url: str
    database: str
    env: dict[str, str]
    processes: dict[str, ServiceProcess]
    log_dir: Path
    sim_url: str = ""  # the TikTok Shop simulator the ingestor syncs from
    sync_shops: dict[str, str] = field(default_factory=dict)  # SYNC_SHOPS name -> shop id

    def shop(self, name: str) -> str:
        """The id of a shop of SYNC_SHOPS, configured in the session ingestor's TIKTOK_SHOPS."""
        return self.sync_shops[name]

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
        "QUERY_API_TOKENS": json.dumps({
            TOKEN: {"shops": ["*"], "role": "act", "label": TOKEN_LABEL},
            LIMITED_TOKEN: [LIMITED_SHOP], READ_TOKEN: ["*"]}),
        "INTERNAL_API_TOKEN": INTERNAL_TOKEN,
        "LOG_LEVEL": "INFO",
    }


@dataclass
class HookReceiver:
    """The seller's own systems, as far as the ingestor's deadline webhook is concerned."""

    url: str
    received: list[tuple[dict[str, str], bytes]]


@pytest.fixture(scope="session")
def deadline_hooks() -> Iterator[HookReceiver]:
    received: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HookReceiver(f"http://127.0.0.1:{server.server_address[1]}/deadlines", received)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def stack(
    kafka_bootstrap: str, mongodb_url: str, tmp_path_factory: pytest.TempPathFactory,
    deadline_hooks: HookReceiver,
) -> Iterator[Stack]:
    database = f"e2e_{uuid.uuid4().hex[:8]}"
    log_dir = tmp_path_factory.mktemp("service-logs")
    ingestor_port, query_port, sim_port = free_port(), free_port(), free_port()
    env = base_env(kafka_bootstrap, mongodb_url, database)
    sync_shops = {name: f"{name}-{database}" for name in SYNC_SHOPS}
    tiktok_shops = []
    for name, (version, token) in SYNC_SHOPS.items():
        shop: dict[str, str] = {"shop_id": sync_shops[name], "api_version": version,
                                "shop_cipher": f"cipher-{sync_shops[name]}"}
        if token is not None:
            shop["access_token"] = token
        tiktok_shops.append(shop)
    ingestor_env = {
        **env,
        "INGESTOR_PORT": str(ingestor_port),
        "TIKTOK_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "TIKTOK_SHOPS": json.dumps(tiktok_shops),
        "TIKTOK_ACCESS_TOKEN": SIM_ACCESS_TOKEN,
        "TIKTOK_REQUESTS_PER_SECOND": "50",
        "SYNC_LEASE_SECONDS": str(SYNC_LEASE_SECONDS),
        "SYNC_JOB_STALE_SECONDS": str(SYNC_JOB_STALE_SECONDS),
        "SYNC_GROUP_ID": f"sync-{database}",
        "DECISIONS_GROUP_ID": f"decisions-{database}",
        "DEADLINE_WEBHOOK_URL": deadline_hooks.url,
        "DEADLINE_WEBHOOK_SECRET": DEADLINE_SECRET,
        "DEADLINE_SCAN_SECONDS": "2",
        "SYNC_RECONCILE_MINUTES": "0",
    }
    processes = {
        "tiktok_sim": ServiceProcess(
            "tiktok_sim",
            {"SIM_PORT": str(sim_port), "SIM_APP_KEY": APP_KEY, "SIM_APP_SECRET": APP_SECRET,
             "SIM_ACCESS_TOKEN": SIM_ACCESS_TOKEN,
             # decisions move returns on and push their webhooks (nothing else is pushed:
             # the simulator does not drive returns by itself here)
             "SIM_WEBHOOK_URL": f"http://127.0.0.1:{ingestor_port}/webhooks/tiktok",
             "SIM_WEBHOOK_RATE": "1000"},
            log_dir / "tiktok_sim.log",
        ),
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
            "query_api",
            {**env, "QUERY_API_PORT": str(query_port),
             "INGESTOR_URL": f"http://127.0.0.1:{ingestor_port}"},
            log_dir / "query_api.log",
        ),
        "ingestor": ServiceProcess("ingestor", ingestor_env, log_dir / "ingestor.log"),
    }
    result = Stack(
        f"http://127.0.0.1:{ingestor_port}",
        f"http://127.0.0.1:{query_port}",
        database,
        env,
        processes,
        log_dir,
        sim_url=f"http://127.0.0.1:{sim_port}",
        sync_shops=sync_shops,
    )
    try:
        for process in processes.values():
            process.start()
        wait_until(lambda: http_ok(f"{result.query_url}/readyz"), 60, "query API ready")
        wait_until(lambda: http_ok(f"{result.ingestor_url}/readyz"), 60, "ingestor ready")
        wait_until(lambda: http_ok(f"{result.sim_url}/_sim/health"), 60, "TikTok simulator")
        yield result
    finally:
        for name, process in processes.items():
            process.stop()
            print(f"--- {name} log tail ---\n{process.log_tail(15)}")


@pytest.fixture
def harness(kafka_bootstrap: str, mongodb_url: str, tmp_path: Path) -> Iterator[Harness]:
    """State machines (and query APIs) started for one test, stopped after it."""
    h = Harness(kafka_bootstrap, mongodb_url, tmp_path, uuid.uuid4().hex[:8])
    try:
        yield h
    finally:
        for process in h.processes:
            process.stop()
        for process in h.processes:
            print(f"--- {process.log_path.name} ---\n{process.log_tail(25)}")


@pytest.fixture
async def mongo(mongodb_url: str) -> AsyncIterator[AsyncMongoClient[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        yield client
    finally:
        await client.close()
