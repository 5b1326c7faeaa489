"""Configuration of the ingestor, read from environment variables (never log the secret).

Fail-closed: the TikTok app key and secret have no default (a default secret would let anyone
sign webhooks), so the ingestor refuses to start without them (`settings_or_exit`).
"""

from __future__ import annotations

from typing import Literal

from cryptography.fernet import Fernet
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runtime.startup import load_or_exit

SERVICE = "ingestor"

MIB = 1024 * 1024


class ShopConfig(BaseModel):
    """One entry of `TIKTOK_SHOPS`: a shop the ingestor may pull returns of."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shop_id: str = Field(min_length=1, max_length=128)
    api_version: Literal["legacy", "202309"] = "202309"
    shop_cipher: str | None = None  # required by the 202309 API
    access_token: SecretStr | None = None  # TIKTOK_ACCESS_TOKEN when absent

    @model_validator(mode="after")
    def _cipher_for_202309(self) -> ShopConfig:
        if self.api_version == "202309" and not self.shop_cipher:
            raise ValueError(f"shop {self.shop_id}: shop_cipher is required for the 202309 API")
        return self


class Settings(BaseSettings):
    """Environment variables: the field name in upper case (e.g. `KAFKA_BOOTSTRAP_SERVERS`)."""

    # An empty variable counts as unset (TIKTOK_APP_SECRET= is no secret).
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore",
                                      env_ignore_empty=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Upper bound of one publish, from the call until the broker's acknowledgement (acks=all).
    # A webhook whose event is not acknowledged in time is answered 503 so TikTok retries it.
    kafka_delivery_timeout_s: float = Field(default=10.0, gt=0)
    # First connection attempt at startup; afterwards the app keeps retrying in the background.
    kafka_connect_timeout_s: float = Field(default=10.0, gt=0)
    # Required: webhook signatures and API signing.
    tiktok_app_key: str = Field(min_length=1)
    tiktok_app_secret: SecretStr = Field(min_length=1)
    ingestor_host: str = "127.0.0.1"
    ingestor_port: int = Field(default=8001, ge=1, le=65535)
    webhook_max_body_bytes: int = Field(default=1 * MIB, gt=0)
    log_level: str = "INFO"

    # --- Sync Return (pulling returns from the TikTok Shop API) -------------------------------
    # Base URL of the TikTok Shop Open API; "" = none configured (every sync fails, saying so).
    tiktok_api_base_url: str = ""
    # JSON list: [{"shop_id": "...", "api_version": "legacy"|"202309", "shop_cipher": "...",
    #              "access_token": "..."}]; a shop without access_token uses TIKTOK_ACCESS_TOKEN.
    tiktok_shops: list[ShopConfig] = Field(default_factory=list, repr=False)
    # None: a shop without its own token cannot be synced (its sync fails, saying so).
    tiktok_access_token: SecretStr | None = None
    tiktok_requests_per_second: float = Field(default=10.0, gt=0)
    # Publish a sync command for every configured shop at start and then every N minutes (0: off).
    sync_reconcile_minutes: float = Field(default=0, ge=0)
    # A sync without `since` starts this long before the shop's checkpoint (clock skew, late
    # writes at TikTok): the overlap is fetched again and deduplicated downstream.
    sync_overlap_seconds: int = Field(default=300, ge=0)
    # Consumer group of the sync-command subscriber.
    sync_group_id: str = "returns-ingestor-sync"
    # Lease on a shop's checkpoint while a sync runs (renewed every third of it): a crashed
    # process's lease expires after this long and the redelivered command runs again.
    sync_lease_seconds: float = Field(default=30.0, gt=0)
    # How long a command waits for another process's sync of the same shop before failing
    # (it waits in its shop's queue only: other shops' syncs go on).
    sync_lease_wait_seconds: float = Field(default=600.0, ge=0)
    # Syncs of different shops at once (one shop's commands always run one after another).
    sync_concurrency: int = Field(default=4, ge=1)
    # A queued or running job whose worker gave no heartbeat this long is taken over.
    sync_job_stale_seconds: float = Field(default=180.0, gt=0)
    # Background fetch of a return after a webhook (a legacy one carries no amounts or items,
    # neither generation's carries TikTok's deadlines).
    webhook_enrichment: bool = True
    # --- Seller decisions and deadlines ------------------------------------------------------
    decisions_group_id: str = "returns-ingestor-decisions"
    # Bearer token of the query API's calls to /internal/* (reject reasons); unset: disabled.
    internal_api_token: SecretStr | None = None
    # The seller's own systems: told once (HMAC-SHA256 signed) when a return enters its last
    # 24 h before TikTok's deadline. Unset URL: off.
    deadline_webhook_url: str = ""
    deadline_webhook_secret: SecretStr | None = None
    deadline_scan_seconds: float = Field(default=60.0, gt=0)
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = "tiktok_returns"
    mongodb_timeout_ms: int = Field(default=5000, ge=100)

    # --- Shops and their tokens (ingestor.shops) ----------------------------------------------
    # Required. Fernet keys, comma separated: the first encrypts, each decrypts (README: rotate).
    shop_token_keys: SecretStr = Field(min_length=1)
    # Required. Shared with the query API, which signs the authorization redirect's `state`.
    oauth_state_secret: SecretStr = Field(min_length=1)
    oauth_state_max_age_seconds: float = Field(default=900, gt=0)
    # TikTok's auth base (token get and refresh).
    tiktok_auth_base_url: str = "https://auth.tiktok-shops.com"
    # Where the callback sends the seller once the shops are stored (the dashboard's Shops
    # page, e.g. http://127.0.0.1:8000/shops); empty: the callback answers JSON.
    shops_page_url: str = ""
    # Background renewal of access tokens (at about half their life, with jitter).
    token_refresher: bool = True
    token_refresh_check_seconds: float = Field(default=60.0, gt=0)
    token_refresh_lease_seconds: float = Field(default=30.0, gt=0)

    @field_validator("shop_token_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError("no key")
        for key in keys:
            try:
                Fernet(key)
            except ValueError:  # never echo the key
                raise ValueError("each key must be 32 url-safe base64-encoded bytes "
                                 "(Fernet.generate_key())") from None
        return value

    def shop(self, shop_id: str) -> ShopConfig | None:
        return next((s for s in self.tiktok_shops if s.shop_id == shop_id), None)

    def access_token_for(self, shop: ShopConfig) -> str | None:
        """The shop's own token, else TIKTOK_ACCESS_TOKEN; None when there is neither."""
        token = shop.access_token or self.tiktok_access_token
        return token.get_secret_value() if token is not None else None


def settings_or_exit() -> Settings:
    """The settings, or one line on stderr and exit status 2 (never a traceback, no secret)."""
    return load_or_exit(Settings, SERVICE)
