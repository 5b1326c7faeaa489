"""Configuration of the query API, read from the environment (or a `.env` file)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Environment variable names are the field names in upper case, e.g. `MONGODB_URL`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = "tiktok_returns"
    mongodb_timeout_ms: int = Field(
        default=5000, ge=100, description="server selection / connect timeout"
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"  # for sync commands
    # JSON: token -> shop ids it may read ("*" for all). Empty: every request is refused.
    query_api_tokens: dict[str, list[str]] = Field(default_factory=dict, repr=False)
    query_api_host: str = "127.0.0.1"
    query_api_port: int = Field(default=8000, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    active_collection_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="how long the meta document naming the returns collection is cached",
    )
