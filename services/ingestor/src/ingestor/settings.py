"""Configuration of the ingestor, read from environment variables (never log the secret)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Environment variables: the field name in upper case (e.g. `KAFKA_BOOTSTRAP_SERVERS`)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Upper bound of one publish, from the call until the broker's acknowledgement (acks=all).
    # A webhook whose event is not acknowledged in time is answered 503 so TikTok retries it.
    kafka_delivery_timeout_s: float = Field(default=10.0, gt=0)
    # First connection attempt at startup; afterwards the app keeps retrying in the background.
    kafka_connect_timeout_s: float = Field(default=10.0, gt=0)
    tiktok_app_key: str = "dev-app-key"
    tiktok_app_secret: SecretStr = SecretStr("dev-app-secret")
    ingestor_host: str = "127.0.0.1"
    ingestor_port: int = Field(default=8001, ge=1, le=65535)
    webhook_max_body_bytes: int = Field(default=1 * MIB, gt=0)
    log_level: str = "INFO"
