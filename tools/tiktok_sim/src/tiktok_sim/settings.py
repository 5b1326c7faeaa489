"""Simulator settings, from environment variables `SIM_*`."""

from __future__ import annotations

from typing import cast

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tiktok_sim.protocol import ApiVersion

SEED_PARTS = 3  # shop_id:api:count


class ShopSeed:
    """One entry of SIM_SHOPS: `shop_id:api_version:count`."""

    def __init__(self, shop_id: str, api_version: ApiVersion, count: int) -> None:
        self.shop_id = shop_id
        self.api_version = api_version
        self.count = count

    def __repr__(self) -> str:
        return f"ShopSeed({self.shop_id!r}, {self.api_version!r}, {self.count})"


class SimSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8090
    app_key: str = "dev-app-key"
    app_secret: str = Field(default="dev-app-secret", repr=False)
    access_token: str = Field(default="dev-access-token", repr=False)
    timestamp_tolerance_s: int = 300
    # Authorization (tiktok_sim.auth): where the authorization page sends the seller back (the
    # app's redirect URL, e.g. the ingestor's /oauth/tiktok/callback), and token lives.
    auth_redirect_url: str = ""
    access_token_life_s: float = Field(default=7 * 86_400, gt=0)
    refresh_token_life_s: float = Field(default=60 * 86_400, gt=0)
    seed: int = 42
    # Shops generated at start-up: "7494560109732840000:202309:500,7494560109732840001:legacy:500"
    shops: str = ""
    # Webhooks: where to push them (None: no webhooks), how fast, and which shares are abnormal.
    webhook_url: str | None = None
    webhook_rate: float = Field(default=20.0, gt=0)
    duplicate_share: float = Field(default=0.0, ge=0, le=1)
    out_of_order_share: float = Field(default=0.0, ge=0, le=1)
    invalid_share: float = Field(default=0.0, ge=0, le=1)
    # Background lifecycle driver.
    drive: bool = False
    tick_seconds: float = Field(default=2.0, gt=0)
    advance_per_tick: int = Field(default=5, ge=0)

    @field_validator("shops")
    @classmethod
    def _shops_parse(cls, value: str) -> str:
        parse_shops(value)
        return value

    def shop_seeds(self) -> list[ShopSeed]:
        return parse_shops(self.shops)


def parse_shops(spec: str) -> list[ShopSeed]:
    seeds: list[ShopSeed] = []
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        parts = entry.split(":")
        well_formed = len(parts) == SEED_PARTS and parts[2].isdigit()
        if not well_formed or parts[1] not in ("legacy", "202309"):
            raise ValueError(f"SIM_SHOPS entry {entry!r} is not shop_id:legacy|202309:count")
        seeds.append(ShopSeed(parts[0], cast(ApiVersion, parts[1]), int(parts[2])))
    return seeds
