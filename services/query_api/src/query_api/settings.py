"""Configuration of the query API, read from the environment (or a `.env` file).

Fail-closed: QUERY_API_TOKENS has no default, so the API refuses to start without at least one
token (`settings_or_exit`) rather than serve a deployment nobody configured.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from query_api.auth import TokenGrant, grant_of
from runtime.startup import load_or_exit

SERVICE = "query_api"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Environment variable names are the field names in upper case, e.g. `MONGODB_URL`."""

    # An empty variable counts as unset.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True,
                                      env_ignore_empty=True)

    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = "tiktok_returns"
    mongodb_timeout_ms: int = Field(
        default=5000, ge=100, description="server selection / connect timeout"
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"  # for sync commands
    # JSON: token -> its grant {"shops": [...], "role": "read"|"act", "label": "..."}, or the
    # shop ids it may read ("*" for all; read-only). Required, at least one token.
    query_api_tokens: dict[str, TokenGrant | list[str]] = Field(min_length=1, repr=False)
    # Reject reasons come from TikTok through the ingestor (which holds TikTok's credentials).
    ingestor_url: str = "http://127.0.0.1:8001"
    internal_api_token: SecretStr | None = Field(default=None, repr=False)
    reject_reasons_cache_seconds: float = Field(default=3600.0, ge=0)
    query_api_host: str = "127.0.0.1"
    query_api_port: int = Field(default=8000, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    # Required. Signs the `state` of the authorization redirect; the ingestor, which serves the
    # callback, holds the same secret (OAUTH_STATE_SECRET).
    oauth_state_secret: SecretStr = Field(min_length=1, repr=False)
    # TikTok's authorization page of the app (partner settings; with its service id).
    tiktok_authorize_url: str = "https://services.tiktokshop.com/open/authorize"
    # A queued or running sync job whose ingestor gave no heartbeat this long has lost its
    # worker: it is failed instead of refusing the shop's next sync (429) for good.
    sync_job_stale_seconds: float = Field(default=180.0, gt=0)
    active_collection_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="how long the meta document naming the returns collection is cached",
    )

    def token_grants(self) -> dict[str, TokenGrant]:
        """QUERY_API_TOKENS, every entry as a grant with its label."""
        return {token: grant_of(token, value) for token, value in self.query_api_tokens.items()}


def settings_or_exit() -> Settings:
    """The settings, or one line on stderr and exit status 2 (never a traceback, no secret)."""
    return load_or_exit(Settings, SERVICE)
