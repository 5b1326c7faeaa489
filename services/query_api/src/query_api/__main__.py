"""`python -m query_api`: serve the query API with uvicorn (settings from the environment).

Logs are JSON lines (structlog), uvicorn's included; each request is logged once by the
metrics middleware (method, route template, status, duration) instead of uvicorn's access log,
so query strings (which may carry a dashboard token) are never logged.
"""

from __future__ import annotations

import uvicorn

from query_api.api import create_app
from query_api.settings import settings_or_exit
from runtime.logs import configure_logging


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.query_api_host,
        port=settings.query_api_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the JSON handlers configured above
        access_log=False,
    )


if __name__ == "__main__":
    main()
