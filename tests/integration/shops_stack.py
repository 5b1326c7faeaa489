"""A system of its own for the shops tests: the TikTok simulator (authorization page, token
endpoints), an ingestor (callback, refresher, syncs), a query API and a state machine, as real
processes on the session's Kafka and FerretDB, each stack with its own database and groups.

Its ingestor's refresher can be switched off; the simulator's token lives are set at run time
(`ShopsStack.token_life`). Helpers connect shops through the whole OAuth flow and run syncs.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contracts.messages import ReturnEvent
from devinfra.proc import free_port
from ingestor.tiktok_client import TikTokClientConfig, TikTokShopClient
from tests.conftest import TEST_OAUTH_STATE_SECRET, TEST_SHOP_TOKEN_KEY
from tests.integration.services import (
    ServiceProcess,
    http_ok,
    listed_returns,
    wait_until,
)

APP_KEY = "shops-app-key"
APP_SECRET = "shops-app-secret"
ADMIN_TOKEN = "shops-admin-token"
LIMITED_TOKEN = "shops-limited-token"
SIM_STATIC_TOKEN = "shops-static-access-token"
# Everything that must never show in a log, a metric or an answer of our services.
SECRET_MARKERS = ("sim-at-", "sim-rt-", "sim-ac-", APP_SECRET, SIM_STATIC_TOKEN,
                  TEST_SHOP_TOKEN_KEY, TEST_OAUTH_STATE_SECRET)
FINISHED = ("succeeded", "failed")


@dataclass
class ShopsStack:
    sim_url: str
    query_url: str
    ingestor_url: str
    database: str
    log_dir: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def legacy_shop(self, name: str) -> str:
        return f"{name}-{self.database}"

    def listing(self, shop_id: str) -> dict[str, tuple[str, int]]:
        """What TikTok's legacy search shows of a shop now: return id -> (status, update time)."""
        config = TikTokClientConfig(
            base_url=self.sim_url, app_key=APP_KEY, app_secret=APP_SECRET,
            access_token=SIM_STATIC_TOKEN, shop_id=shop_id, api_version="legacy",
            requests_per_second=100)

        async def fetch() -> dict[str, tuple[str, int]]:
            async with TikTokShopClient(config) as client:
                return {e.return_id: (e.status.value, e.update_time)
                        async for page in client.iter_returns() for e in page.results
                        if isinstance(e, ReturnEvent)}

        return asyncio.run(fetch())

    def shown(self, shop_id: str) -> dict[str, tuple[str, int]]:
        """What the query API shows of a shop: return id -> (status, update time)."""
        return {i["return_id"]: (i["status"], i["update_time"])
                for i in listed_returns(self.query_url, self.admin, shop_id)}

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    # ------------------------------------------------------------------ simulator

    def sim(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.sim_url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def token_life(self, access_s: float, refresh_s: float = 3600) -> None:
        self.sim("POST", "/_sim/auth/config",
                 {"access_token_life_s": access_s, "refresh_token_life_s": refresh_s})

    def generate(self, shop_id: str, count: int, api_version: str = "202309") -> None:
        self.sim("POST", "/_sim/returns/generate",
                 {"shop_id": shop_id, "count": count, "api_version": api_version})
        time.sleep(3)  # the simulator dates some last steps up to a few seconds after now

    def auth_counts(self) -> dict[str, Any]:
        result: dict[str, Any] = self.sim("GET", "/_sim/auth")
        return result

    # ------------------------------------------------------------------ query API

    def connect(self, *shop_ids: str) -> httpx.Response:
        """The seller's whole journey: Connect, TikTok's page, the callback, the Shops page."""
        self.sim("POST", "/_sim/auth/grant", {"shops": list(shop_ids)})
        with httpx.Client(follow_redirects=True, timeout=30) as client:
            return client.get(f"{self.query_url}/api/v1/shops/connect", headers=self.admin)

    def shops(self, token: str = ADMIN_TOKEN) -> dict[str, dict[str, Any]]:
        response = httpx.get(f"{self.query_url}/api/v1/shops", timeout=30,
                             headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        return {shop["shop_id"]: shop for shop in response.json()}

    def request_sync(self, shop_id: str) -> httpx.Response:
        return httpx.post(f"{self.query_url}/api/v1/sync", headers=self.admin, timeout=30,
                          json={"shop_id": shop_id})

    def job(self, command_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.query_url}/api/v1/sync/{command_id}", headers=self.admin,
                             timeout=30)
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        return job

    def sync(self, shop_id: str, timeout: float = 180) -> dict[str, Any]:
        response = self.request_sync(shop_id)
        assert response.status_code == 202, response.text
        return self.wait_for_job(response.json()["command_id"], timeout)

    def wait_for_job(self, command_id: str, timeout: float = 180) -> dict[str, Any]:
        job: dict[str, Any] = {}

        def finished() -> bool:
            job.update(self.job(command_id))
            return job["status"] in FINISHED

        wait_until(finished, timeout, f"sync job {command_id}", interval=0.5)
        return job

    def count(self, shop_id: str) -> int:
        response = httpx.get(f"{self.query_url}/api/v1/returns/counts", headers=self.admin,
                             params={"shop_id": shop_id}, timeout=30)
        response.raise_for_status()
        return int(response.json()["counts"]["ALL"])

    def logs(self) -> dict[str, str]:
        return {p.name: p.read_text(errors="replace") for p in self.log_dir.glob("*.log")}


def start_stack(kafka_bootstrap: str, mongodb_url: str, log_dir: Path, *,
                refresher: bool = True, state_machine: bool = False,
                legacy_shops: tuple[str, ...] = (), **ingestor_env: str) -> ShopsStack:
    """`legacy_shops`: development shops of TIKTOK_SHOPS (legacy API, the simulator's static
    token), named with the stack's database as suffix (`ShopsStack.legacy_shop`)."""
    database = f"shops_{uuid.uuid4().hex[:8]}"
    sim_port, query_port, ingestor_port = free_port(), free_port(), free_port()
    stack = ShopsStack(f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{query_port}",
                       f"http://127.0.0.1:{ingestor_port}", database, log_dir)
    common = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "MONGODB_URL": mongodb_url,
        "MONGODB_DATABASE": database, "OAUTH_STATE_SECRET": TEST_OAUTH_STATE_SECRET,
        "LOG_LEVEL": "INFO",
    }
    stack.processes["tiktok_sim"] = ServiceProcess("tiktok_sim", {
        "SIM_PORT": str(sim_port), "SIM_APP_KEY": APP_KEY, "SIM_APP_SECRET": APP_SECRET,
        "SIM_ACCESS_TOKEN": SIM_STATIC_TOKEN,
        "SIM_AUTH_REDIRECT_URL": f"{stack.ingestor_url}/oauth/tiktok/callback",
    }, log_dir / "tiktok_sim.sim-log")  # TikTok's side: its access log shows what it was sent
    stack.processes["query_api"] = ServiceProcess("query_api", {
        **common, "QUERY_API_PORT": str(query_port),
        "QUERY_API_TOKENS": json.dumps({ADMIN_TOKEN: ["*"], LIMITED_TOKEN: ["nobody-yet"]}),
        "TIKTOK_AUTHORIZE_URL": f"{stack.sim_url}/oauth/authorize",
    }, log_dir / "query_api.log")
    stack.processes["ingestor"] = ServiceProcess("ingestor", {
        **common, "INGESTOR_PORT": str(ingestor_port), "TIKTOK_APP_KEY": APP_KEY,
        "TIKTOK_APP_SECRET": APP_SECRET, "SHOP_TOKEN_KEYS": TEST_SHOP_TOKEN_KEY,
        "TIKTOK_API_BASE_URL": stack.sim_url, "TIKTOK_AUTH_BASE_URL": stack.sim_url,
        "SHOPS_PAGE_URL": f"{stack.query_url}/shops", "TIKTOK_REQUESTS_PER_SECOND": "50",
        "SYNC_GROUP_ID": f"sync-{database}", "TOKEN_REFRESHER": str(refresher).lower(),
        "TOKEN_REFRESH_CHECK_SECONDS": "0.5", "TOKEN_REFRESH_LEASE_SECONDS": "5",
        "TIKTOK_ACCESS_TOKEN": SIM_STATIC_TOKEN,
        "TIKTOK_SHOPS": json.dumps([{"shop_id": f"{name}-{database}", "api_version": "legacy"}
                                    for name in legacy_shops]),
        **ingestor_env,
    }, log_dir / "ingestor.log")
    if state_machine:
        stack.processes["state_machine"] = ServiceProcess("state_machine", {
            **common, "STATE_MACHINE_METRICS_PORT": str(free_port()),
            "STATE_MACHINE_GROUP_ID": f"sm-{database}",
        }, log_dir / "state_machine.log")
    try:
        for process in stack.processes.values():
            process.start()
        wait_until(lambda: http_ok(f"{stack.sim_url}/_sim/health"), 60, "simulator")
        wait_until(lambda: http_ok(f"{stack.query_url}/readyz"), 60, "query API")
        wait_until(lambda: http_ok(f"{stack.ingestor_url}/readyz"), 60, "ingestor")
    except BaseException:
        stack.stop()
        raise
    return stack
