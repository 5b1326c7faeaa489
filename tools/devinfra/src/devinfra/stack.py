"""`make run`: the whole system on its embedded defaults, until Ctrl-C or SIGTERM.

Kafka, PostgreSQL and FerretDB (data under .data/), then the state machine, the query API and
the ingestor, and the bundled TikTok Shop simulator when no real TikTok API is configured
(TIKTOK_API_BASE_URL unset). Each service logs to .data/logs/<name>.log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devinfra.infra import Infra
from devinfra.proc import pick_port

DEV_TOKEN = "dev-token"
DEV_SHOPS = (("7494560109732840000", "202309"), ("7494560109732840001", "legacy"))


@dataclass
class Service:
    name: str
    module: str
    env: dict[str, str]
    ready_url: str | None
    proc: subprocess.Popen[bytes] | None = None


def _port(variable: str, default: int, taken: list[int]) -> int:
    port = pick_port(int(os.environ.get(variable, default)), exclude=taken)
    taken.append(port)
    return port


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _services(infra: Infra, taken: list[int]) -> list[Service]:
    query_port = _port("QUERY_API_PORT", 8000, taken)
    ingestor_port = _port("INGESTOR_PORT", 8001, taken)
    metrics_port = _port("STATE_MACHINE_METRICS_PORT", 8002, taken)
    common = {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
        "MONGODB_URL": infra.mongodb_url,
        "QUERY_API_TOKENS": os.environ.get("QUERY_API_TOKENS", json.dumps({DEV_TOKEN: ["*"]})),
    }
    ingestor_env = {**common, "INGESTOR_PORT": str(ingestor_port)}
    services = [
        Service("state_machine", "state_machine",
                {**common, "STATE_MACHINE_METRICS_PORT": str(metrics_port)},
                f"http://127.0.0.1:{metrics_port}/metrics"),
        Service("query_api", "query_api", {**common, "QUERY_API_PORT": str(query_port)},
                f"http://127.0.0.1:{query_port}/readyz"),
    ]
    if not os.environ.get("TIKTOK_API_BASE_URL"):
        sim_port = _port("SIM_PORT", 8090, taken)
        ingestor_env |= {
            "TIKTOK_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
            "TIKTOK_SHOPS": json.dumps([
                {"shop_id": shop, "api_version": version, "shop_cipher": f"cipher-{shop}"}
                for shop, version in DEV_SHOPS
            ]),
            "SYNC_RECONCILE_MINUTES": os.environ.get("SYNC_RECONCILE_MINUTES", "1"),
        }
        services.append(Service("tiktok_sim", "tiktok_sim", {
            "SIM_PORT": str(sim_port),
            "SIM_SHOPS": ",".join(f"{shop}:{version}:200" for shop, version in DEV_SHOPS),
            "SIM_WEBHOOK_URL": f"http://127.0.0.1:{ingestor_port}/webhooks/tiktok",
            "SIM_DRIVE": "true",
            "SIM_DUPLICATE_SHARE": "0.05",
            "SIM_OUT_OF_ORDER_SHARE": "0.05",
            "SIM_INVALID_SHARE": "0.02",
        }, f"http://127.0.0.1:{sim_port}/_sim/health"))
    services.insert(2, Service("ingestor", "ingestor", ingestor_env,
                               f"http://127.0.0.1:{ingestor_port}/readyz"))
    return services


def run(data_dir: Path = Path(".data")) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    taken: list[int] = []
    infra = Infra(data_dir, kafka_port=_port("KAFKA_PORT", 9092, taken),
                  mongo_port=_port("MONGO_PORT", 27017, taken), durable=True)
    services: list[Service] = []
    try:
        infra.start()
        services = _services(infra, taken)
        for service in services:
            log = (logs / f"{service.name}.log").open("ab")
            service.proc = subprocess.Popen(
                [sys.executable, "-m", service.module], env={**os.environ, **service.env},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 90
        pending = [s for s in services if s.ready_url]
        while pending and time.monotonic() < deadline and not stop.is_set():
            pending = [s for s in pending if s.ready_url and not _ready(s.ready_url)]
            time.sleep(0.5)
        for service in pending:
            print(f"! {service.name} is not ready yet: see {logs / service.name}.log")
        _print_urls(services, infra, logs, time.monotonic() - started)
        while not stop.wait(1.0):
            for service in services:
                if service.proc is not None and service.proc.poll() is not None:
                    print(f"! {service.name} exited ({service.proc.returncode}); "
                          f"see {logs / service.name}.log")
                    service.proc = None
    finally:
        print("stopping...")
        for service in reversed(services):
            if service.proc is not None and service.proc.poll() is None:
                os.killpg(service.proc.pid, signal.SIGTERM)
        for service in services:
            if service.proc is not None:
                try:
                    service.proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(service.proc.pid, signal.SIGKILL)
        infra.stop()
        print("stopped.")


def _print_urls(services: list[Service], infra: Infra, logs: Path, seconds: float) -> None:
    env = {s.name: s.env for s in services}
    query = f"http://127.0.0.1:{env['query_api']['QUERY_API_PORT']}"
    ingestor = f"http://127.0.0.1:{env['ingestor']['INGESTOR_PORT']}"
    token = DEV_TOKEN if "QUERY_API_TOKENS" not in os.environ else "<your token>"
    lines = [
        f"TikTok returns is up ({seconds:.0f}s). Ctrl-C stops everything.",
        f"  Dashboard        {query}/?token={token}",
        f"  Query API docs   {query}/docs",
        f"  Webhook endpoint {ingestor}/webhooks/tiktok",
        f"  Metrics          {query}/metrics  {ingestor}/metrics  "
        f"http://127.0.0.1:{env['state_machine']['STATE_MACHINE_METRICS_PORT']}/metrics",
        f"  Kafka            {infra.kafka_bootstrap}",
        f"  MongoDB (FerretDB) {infra.mongodb_url}",
        f"  Logs             {logs}/",
    ]
    if "tiktok_sim" in env:
        lines.append(f"  TikTok simulator http://127.0.0.1:{env['tiktok_sim']['SIM_PORT']}/_sim/stats"
                     " (no TIKTOK_API_BASE_URL set: simulated shops "
                     + ", ".join(shop for shop, _ in DEV_SHOPS) + ")")
    print("\n".join(lines), flush=True)
