"""`python -m query_api`: serve the query API with uvicorn (settings from the environment)."""

from __future__ import annotations

import logging

import structlog
import uvicorn

from query_api.api import create_app
from query_api.settings import Settings


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
    )


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.query_api_host,
        port=settings.query_api_port,
        log_level=settings.log_level.lower(),
    )


if __name__ == "__main__":
    main()
