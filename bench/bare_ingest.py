"""The least a webhook endpoint can do, as the reference for the ingestor's webhooks/s.

    BARE_PORT=8011 KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python -m bench.bare_ingest

`POST /webhooks/tiktok` parses the body as JSON and publishes it, as it came, to the events
topic with acks=all (FastStream, the broker settings of the ingestor), answering 200 once Kafka
acknowledged it. No signature, no validation, no mapping. Never run it beside a state machine:
what it publishes is not a return event.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request, Response
from faststream.kafka import KafkaBroker

from contracts.topics import EVENTS_TOPIC
from runtime.topology import ensure_topics


def create_app(bootstrap: str) -> FastAPI:
    broker = KafkaBroker(bootstrap, client_id="bench-bare", acks="all", enable_idempotence=True)
    events = broker.publisher(EVENTS_TOPIC)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(bootstrap)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/webhooks/tiktok")
    async def webhook(request: Request) -> Response:
        raw = await request.body()
        payload = json.loads(raw)
        key = f"{payload['shop_id']}:{payload['data']['return_id']}".encode()
        await events.publish(raw, key=key)
        return Response(b'{"status":"accepted"}', media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main() -> None:
    app = create_app(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("BARE_PORT", "8011")),
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
