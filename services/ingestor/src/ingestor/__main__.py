"""`python -m ingestor`: serve webhooks, consume sync commands and seller decisions, watch
deadlines (one process, one broker)."""

from __future__ import annotations

import uvicorn

from ingestor.app import create_app
from ingestor.deadline_watch import DeadlineWatch
from ingestor.decisions import DecisionService
from ingestor.internal_api import internal_router
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
    decisions = DecisionService(settings, bus, sync.clients, metrics.registry)
    decisions.register(bus.broker)
    deadlines = DeadlineWatch(settings, metrics.registry)
    app = create_app(settings, bus, metrics=metrics, on_legacy_webhook=sync.enrich_later,
                     background=[sync, decisions, deadlines])
    app.include_router(internal_router(settings, sync.clients))
    uvicorn.run(app, host=settings.ingestor_host, port=settings.ingestor_port,
                log_config=None, proxy_headers=False)


if __name__ == "__main__":
    main()
