"""`python -m ingestor`: serve webhooks (and, once added, consume sync commands) with uvicorn."""

from __future__ import annotations

import uvicorn

from ingestor.app import create_app
from ingestor.kafka import KafkaBus
from ingestor.logging_setup import configure_logging
from ingestor.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    bus = KafkaBus(settings)
    # Subscribers on the same broker (the sync-command consumer of `ingestor.sync`) are
    # registered here, on `bus.broker`, before the app starts it.
    app = create_app(settings, bus)
    uvicorn.run(app, host=settings.ingestor_host, port=settings.ingestor_port,
                log_config=None, proxy_headers=False)


if __name__ == "__main__":
    main()
