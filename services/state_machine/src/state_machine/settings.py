from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CACHE_RETURNS = 50_000


class Settings(BaseSettings):
    """State machine configuration, from environment variables."""

    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = "tiktok_returns"
    state_machine_group_id: str = "returns-state-machine"
    # The returns collection this process writes; empty: the active one named in `meta`.
    state_machine_collection: str = ""
    state_machine_max_batch: int = 500
    # Returns kept in memory after their write, so the next event of one needs no read (the
    # `state_machine_cache_total` metric counts hits and misses): size it to the returns that
    # are still moving. Each costs a few kB of memory.
    state_machine_cache_returns: int = Field(default=DEFAULT_CACHE_RETURNS, ge=1)
    # No batch for this long while records wait: the consumer is replaced (see app.Watchdog).
    state_machine_stall_seconds: float = 60.0
    state_machine_metrics_port: int = 8002
    state_machine_metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
