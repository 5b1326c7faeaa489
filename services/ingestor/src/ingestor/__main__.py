"""`python -m ingestor`: serve webhooks and consume sync commands (one process, one broker)."""

from __future__ import annotations

import uvicorn

from ingestor.app import create_app
from ingestor.kafka import KafkaBus
from ingestor.metrics import IngestorMetrics
from ingestor.settings import settings_or_exit
from ingestor.sync import SyncService
from runtime.logs import configure_logging


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level)
    bus = KafkaBus(settings)
    metrics = IngestorMetrics()
    # Subscribers on the same broker (the sync-command consumer of `ingestor.sync`) are
    # registered here, on `bus.broker`, before the app starts it.
    sync = SyncService(settings, bus, metrics)
    sync.register(bus.broker)
    shops = sync.shops  # connected shops, their tokens and the authorization callback
    assert shops is not None
    app = create_app(settings, bus, metrics=metrics, on_legacy_webhook=sync.enrich_later,
                     background=[shops, sync])
    app.include_router(shops.router())  # TikTok's authorization callback
    uvicorn.run(app, host=settings.ingestor_host, port=settings.ingestor_port,
                log_config=None, proxy_headers=False)


if __name__ == "__main__":
    main()
