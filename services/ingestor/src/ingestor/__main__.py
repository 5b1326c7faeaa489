"""`python -m ingestor`: serve webhooks and consume sync commands (one process, one broker)."""

from __future__ import annotations

import uvicorn

from ingestor.app import create_service
from ingestor.settings import settings_or_exit
from runtime.logs import configure_logging


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level)
    app = create_service(settings)
    uvicorn.run(app, host=settings.ingestor_host, port=settings.ingestor_port,
                log_config=None, proxy_headers=False)


if __name__ == "__main__":
    main()
