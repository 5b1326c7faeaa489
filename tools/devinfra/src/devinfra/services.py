"""What `make run` starts on top of the servers: the three services, the simulator, their
configuration, and the development credentials it passes them unless the user set their own."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from devinfra.infra import Infra
from devinfra.proc import pick_port

DEV_TOKEN = "dev-token"
DEV_SHOPS = (("7494560109732840000", "202309"), ("7494560109732840001", "legacy"))
# The services refuse to start without these (fail-closed); `make run` is for development.
DEV_CREDENTIALS = {
    "TIKTOK_APP_KEY": "dev-app-key",
    "TIKTOK_APP_SECRET": "dev-app-secret",
    "TIKTOK_ACCESS_TOKEN": "dev-access-token",
    # The dev token may act (approve and reject returns), so `make run` can act.
    "QUERY_API_TOKENS": json.dumps({DEV_TOKEN: {"shops": ["*"], "role": "act",
                                                "label": "development"}}),
    # The query API's calls to the ingestor (reject reasons).
    "INTERNAL_API_TOKEN": "dev-internal-token",
    # Fernet key of the shops' tokens at rest (base64 of 32 bytes), and the secret that signs
    # the authorization redirect's state (the query API signs, the ingestor checks).
    "SHOP_TOKEN_KEYS": "ZGV2LXNob3AtdG9rZW4ta2V5LWZvci1tYWtlLXJ1biE=",
    "OAUTH_STATE_SECRET": "dev-oauth-state-secret",
}


@dataclass(frozen=True)
class Credentials:
    values: dict[str, str]  # every name of DEV_CREDENTIALS
    defaulted: tuple[str, ...]  # the names not set in the environment

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Credentials:
        return cls(
            values={name: environ.get(name) or dev for name, dev in DEV_CREDENTIALS.items()},
            defaulted=tuple(name for name in DEV_CREDENTIALS if not environ.get(name)),
        )

    def announcement(self) -> str | None:
        """One line naming the development defaults in use (never a secret's value)."""
        if not self.defaulted:
            return None
        token = f" (bearer token {DEV_TOKEN})" if "QUERY_API_TOKENS" in self.defaulted else ""
        return (
            f"using development credentials: {', '.join(self.defaulted)} are the dev "
            f"defaults{token}; set them in the environment to use your own"
        )


@dataclass(frozen=True)
class Service:
    name: str
    module: str
    env: dict[str, str]
    ready_url: str


def env_port(variable: str, default: int, taken: list[int]) -> int:
    """The port ``variable`` names (else ``default``) if free, else a free one; not in ``taken``."""
    port = pick_port(int(os.environ.get(variable, default)), exclude=taken)
    taken.append(port)
    return port


def layers(infra: Infra, credentials: Credentials, taken: list[int]) -> list[list[Service]]:
    """What to start on the servers, in layers: each is started after the one before it and
    stopped before it (the simulator, a stand-in for TikTok, outlives the ingestor, so a
    sync running at shutdown can finish). Ports from the environment when free, else free."""
    query_port = env_port("QUERY_API_PORT", 8000, taken)
    ingestor_port = env_port("INGESTOR_PORT", 8001, taken)
    metrics_port = env_port("STATE_MACHINE_METRICS_PORT", 8002, taken)
    creds = credentials.values
    common = {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, "MONGODB_URL": infra.mongodb_url}
    ingestor_env = {
        **common,
        "INGESTOR_PORT": str(ingestor_port),
        "TIKTOK_APP_KEY": creds["TIKTOK_APP_KEY"],
        "TIKTOK_APP_SECRET": creds["TIKTOK_APP_SECRET"],
        "TIKTOK_ACCESS_TOKEN": creds["TIKTOK_ACCESS_TOKEN"],
        "INTERNAL_API_TOKEN": creds["INTERNAL_API_TOKEN"],
        "SHOP_TOKEN_KEYS": creds["SHOP_TOKEN_KEYS"],
        "OAUTH_STATE_SECRET": creds["OAUTH_STATE_SECRET"],
        "SHOPS_PAGE_URL": f"http://127.0.0.1:{query_port}/shops",
    }
    query_env = {"QUERY_API_PORT": str(query_port), "QUERY_API_TOKENS": creds["QUERY_API_TOKENS"],
                 "INTERNAL_API_TOKEN": creds["INTERNAL_API_TOKEN"],
                 "INGESTOR_URL": f"http://127.0.0.1:{ingestor_port}",
                 "OAUTH_STATE_SECRET": creds["OAUTH_STATE_SECRET"]}
    simulator: list[Service] = []
    if not os.environ.get("TIKTOK_API_BASE_URL"):
        sim_port = env_port("SIM_PORT", 8090, taken)
        ingestor_env |= {
            "TIKTOK_API_BASE_URL": f"http://127.0.0.1:{sim_port}",
            "TIKTOK_SHOPS": json.dumps([
                {"shop_id": shop, "api_version": version, "shop_cipher": f"cipher-{shop}"}
                for shop, version in DEV_SHOPS
            ]),
            "SYNC_RECONCILE_MINUTES": os.environ.get("SYNC_RECONCILE_MINUTES", "1"),
            "TIKTOK_AUTH_BASE_URL": f"http://127.0.0.1:{sim_port}",
        }
        query_env["TIKTOK_AUTHORIZE_URL"] = f"http://127.0.0.1:{sim_port}/oauth/authorize"
        simulator.append(Service("tiktok_sim", "tiktok_sim", {
            "SIM_PORT": str(sim_port),
            # the simulated TikTok app is the one the ingestor is configured with
            "SIM_APP_KEY": creds["TIKTOK_APP_KEY"],
            "SIM_APP_SECRET": creds["TIKTOK_APP_SECRET"],
            "SIM_ACCESS_TOKEN": creds["TIKTOK_ACCESS_TOKEN"],
            "SIM_SHOPS": ",".join(f"{shop}:{version}:200" for shop, version in DEV_SHOPS),
            "SIM_WEBHOOK_URL": f"http://127.0.0.1:{ingestor_port}/webhooks/tiktok",
            "SIM_AUTH_REDIRECT_URL": f"http://127.0.0.1:{ingestor_port}/oauth/tiktok/callback",
            "SIM_DRIVE": "true",
            "SIM_DUPLICATE_SHARE": "0.05",
            "SIM_OUT_OF_ORDER_SHARE": "0.05",
            "SIM_INVALID_SHARE": "0.02",
        }, f"http://127.0.0.1:{sim_port}/_sim/health"))  # fmt: skip
    services = [
        Service("state_machine", "state_machine",
                {**common, "STATE_MACHINE_METRICS_PORT": str(metrics_port)},
                f"http://127.0.0.1:{metrics_port}/metrics"),
        Service("query_api", "query_api", {**common, **query_env},
                f"http://127.0.0.1:{query_port}/readyz"),
        Service("ingestor", "ingestor", ingestor_env, f"http://127.0.0.1:{ingestor_port}/readyz"),
    ]  # fmt: skip
    return [layer for layer in (simulator, services) if layer]
