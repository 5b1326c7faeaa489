"""The processes under measurement: the three services, and the bare webhook endpoint.

Each runs as `python -m <module>` in its own process group with its log in a file, configured
only through its environment, which always carries every secret a service may require.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import httpx

from devinfra.proc import free_port

APP_KEY = "bench-app-key"
APP_SECRET = "bench-app-secret"
ACCESS_TOKEN = "bench-access-token"
API_TOKEN = "bench-token"
SHOP_TOKEN_KEY = "YmVuY2gtc2hvcC10b2tlbi1rZXktMzItYnl0ZXMhISE="  # 32 bytes, Fernet
OAUTH_STATE_SECRET = "bench-oauth-state-secret"
STOP_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 120.0  # the query API creates its indexes on start-up: slow on a big store


@dataclass
class Service:
    module: str
    env: dict[str, str]
    log_path: Path
    ready_path: str | None = None  # polled on `port` until it answers 200
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Service:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, env={**os.environ, **self.env},
                stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        if self.ready_path is not None:
            await self._wait_ready()
        return self

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.returncode is not None:
                    break
                try:
                    if (await client.get(self.ready_path or "/")).status_code == HTTPStatus.OK:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise RuntimeError(f"{self.module} did not get ready: see {self.log_path}")

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


@dataclass(frozen=True)
class Env:
    kafka_bootstrap: str
    mongodb_url: str
    database: str
    log_dir: Path

    def common(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DATABASE": self.database,
            "TIKTOK_APP_KEY": APP_KEY,
            "TIKTOK_APP_SECRET": APP_SECRET,
            "TIKTOK_ACCESS_TOKEN": ACCESS_TOKEN,
            "QUERY_API_TOKENS": json.dumps({API_TOKEN: ["*"]}),
            "SHOP_TOKEN_KEYS": SHOP_TOKEN_KEY,
            "OAUTH_STATE_SECRET": OAUTH_STATE_SECRET,
            "LOG_LEVEL": "WARNING",
        }

    def state_machine(self, group: str) -> Service:
        service = Service("state_machine", {}, self.log_dir / "state_machine.log", "/metrics")
        service.env = {**self.common(), "STATE_MACHINE_GROUP_ID": group,
                       "STATE_MACHINE_METRICS_PORT": str(service.port)}
        return service

    def query_api(self) -> Service:
        service = Service("query_api", {}, self.log_dir / "query_api.log", "/readyz")
        service.env = {**self.common(), "QUERY_API_PORT": str(service.port)}
        return service

    def ingestor(self) -> Service:
        service = Service("ingestor", {}, self.log_dir / "ingestor.log", "/readyz")
        service.env = {**self.common(), "INGESTOR_PORT": str(service.port),
                       "SYNC_RECONCILE_MINUTES": "0", "WEBHOOK_ENRICHMENT": "false"}
        return service

    def bare_endpoint(self) -> Service:
        service = Service("bench.bare_ingest", {}, self.log_dir / "bare_ingest.log", "/readyz")
        service.env = {**self.common(), "BARE_PORT": str(service.port)}
        return service
