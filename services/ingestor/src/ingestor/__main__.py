"""`python -m ingestor`: serve webhooks and consume sync commands (one process, one broker)."""

from __future__ import annotations

import gc

import uvicorn

from ingestor.app import create_service
from ingestor.settings import settings_or_exit
from runtime.logs import configure_logging

# Python's cyclic GC collects its youngest generation every 700 net allocations by default, and
# a webhook allocates hundreds (four pydantic models, the request's and the response's objects),
# while refcounting already frees nearly all of them. With collections 140 times rarer, webhooks
# accepted at concurrency 16 against the bare endpoint went from 0.62-0.66 to 0.66-0.72
# (six runs each, `python -m bench.report --sizes 500 --webhook-seconds 5 --webhook-rate 50
# --accept-seconds 20`).
GC_THRESHOLDS = (100_000, 50, 50)


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level)
    app = create_service(settings)
    gc.set_threshold(*GC_THRESHOLDS)
    uvicorn.run(app, host=settings.ingestor_host, port=settings.ingestor_port,
                log_config=None, proxy_headers=False)


if __name__ == "__main__":
    main()
