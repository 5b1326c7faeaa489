"""HTTP entrypoint of the ingestor (wiring only): TikTok webhooks in, Kafka messages out.

`POST /webhooks/tiktok` answers 200 only once the webhook is durably handled: its event (or its
rejection) acknowledged by Kafka, or the notification ignored as not a return. Anything TikTok
should retry later (Kafka unavailable) gets a 503; malformed calls get 4xx. A signed webhook of
the wrong shape or with impossible values gets 422 naming the fields, and only once its body is
on the rejected topic (acknowledged by Kafka; else 503), so nothing TikTok signed is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contracts.messages import EventSource, RejectedEvent, ReturnEvent
from contracts.topics import EVENTS_TOPIC, REJECTED_TOPIC
from ingestor.kafka import KafkaBus, PublishError
from ingestor.metrics import IngestorMetrics, WebhookResult
from ingestor.rejections import webhook_rejection
from ingestor.settings import Settings
from ingestor.signature import verify_webhook
from ingestor.webhooks import (
    Accepted,
    Ignored,
    WebhookShapeError,
    parse_webhook,
    shape_rejection,
)
from runtime.retry import until_done

WEBHOOK_PATH = "/webhooks/tiktok"
SIGNATURE_HEADER = "Authorization"
RECONNECT_MAX_BACKOFF_S = 30.0

log = structlog.get_logger("ingestor")


class BodyTooLarge(Exception):
    pass


class Background(Protocol):
    """Something that runs beside the app (e.g. `ingestor.sync.SyncService`)."""

    async def start(self) -> None: ...  # before the first Kafka connection attempt

    async def stop(self) -> None: ...  # before Kafka stops

    async def close(self) -> None: ...  # after Kafka stopped


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _connect_until_up(
    bus: KafkaBus, settings: Settings, first_attempt_done: asyncio.Event
) -> None:
    """Connect to Kafka, retrying with backoff: the app serves (503s) while Kafka is down.
    `first_attempt_done` is set once the first attempt is over, connected or not."""

    async def attempt() -> None:
        try:
            async with asyncio.timeout(settings.kafka_connect_timeout_s):
                await bus.start()
        except Exception:  # any failure to connect is retried
            first_attempt_done.set()
            with contextlib.suppress(Exception):
                await bus.stop()  # reset a half-started broker before the next attempt
            raise
        first_attempt_done.set()

    await until_done(f"connect to Kafka at {settings.kafka_bootstrap_servers}", attempt,
                     retry_on=Exception, initial_s=1.0, max_s=RECONNECT_MAX_BACKOFF_S)
    log.info("kafka_connected", bootstrap_servers=settings.kafka_bootstrap_servers)


def create_app(
    settings: Settings,
    bus: KafkaBus | None = None,
    *,
    metrics: IngestorMetrics | None = None,
    on_legacy_webhook: Callable[[ReturnEvent], None] | None = None,
    background: Sequence[Background] = (),
) -> FastAPI:
    """The ingestor app. Pass a `bus` whose broker already carries extra subscribers (e.g. the
    sync-command consumer) to have them started and stopped with the app.

    `on_legacy_webhook` is called (synchronously; it must not block) with the event of each
    legacy webhook once Kafka acknowledged it, e.g. to fetch the return's details in the
    background. It cannot change the answer: whatever it raises is logged and ignored.
    """
    kafka = bus if bus is not None else KafkaBus(settings)
    metrics = metrics if metrics is not None else IngestorMetrics()
    app_secret = settings.tiktok_app_secret.get_secret_value()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for service in background:
            await service.start()
        first_attempt_done = asyncio.Event()
        connecting = asyncio.create_task(
            _connect_until_up(kafka, settings, first_attempt_done))
        # Serve once the first attempt is over, connected or not (then retries go on behind).
        await first_attempt_done.wait()
        try:
            yield
        finally:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            for service in background:
                await service.stop()
            await kafka.stop()
            for service in background:
                await service.close()

    app = FastAPI(title="TikTok returns ingestor", lifespan=lifespan)
    app.state.bus = kafka
    app.state.metrics = metrics

    def answer(result: WebhookResult, status_code: int, body: dict[str, Any]) -> JSONResponse:
        metrics.count(result)
        return JSONResponse(body, status_code=status_code)

    async def reject(rejection: RejectedEvent) -> JSONResponse | None:
        """Publish a rejection; None once Kafka acknowledged it, else the 503 to answer."""
        started = time.perf_counter()
        try:
            await kafka.publish_rejection(rejection)
        except PublishError as exc:
            log.error("webhook_publish_failed", rejection_id=rejection.rejection_id,
                      error=str(exc))
            return answer(WebhookResult.UNAVAILABLE, 503, {
                "detail": f"event bus unavailable, retry later: {exc}"})
        metrics.publish_seconds.labels(topic=REJECTED_TOPIC).observe(
            time.perf_counter() - started)
        log.warning("webhook_rejected", reason=rejection.reason.value, detail=rejection.detail,
                    shop_id=rejection.shop_id, return_id=rejection.return_id)
        return None

    @app.post(WEBHOOK_PATH)
    async def tiktok_webhook(request: Request) -> JSONResponse:
        try:
            raw = await _read_body(request, settings.webhook_max_body_bytes)
        except BodyTooLarge:
            log.warning("webhook_too_large", limit=settings.webhook_max_body_bytes)
            return answer(WebhookResult.TOO_LARGE, 413, {
                "detail": f"body larger than {settings.webhook_max_body_bytes} bytes"})

        signature = request.headers.get(SIGNATURE_HEADER)
        if not verify_webhook(settings.tiktok_app_key, app_secret, raw, signature):
            log.warning("webhook_unauthorized", signed=bool(signature))
            return answer(WebhookResult.UNAUTHORIZED, 401, {
                "detail": "missing or invalid signature" if signature else "missing signature"})

        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return answer(WebhookResult.NOT_JSON, 400, {"detail": "body is not JSON"})

        now = datetime.now(UTC)
        try:
            outcome = parse_webhook(payload, observed_at=now)
        except WebhookShapeError as exc:
            log.warning("webhook_invalid", fields=list(exc.fields), error=str(exc))
            invalid = webhook_rejection(shape_rejection(payload, exc), raw, at=now)
            unavailable = await reject(invalid)
            if unavailable is not None:
                return unavailable
            return answer(WebhookResult.INVALID, 422, {
                "detail": f"invalid webhook: {exc}",
                "errors": [{"field": e.field, "message": e.message} for e in exc.errors],
                "rejection_id": invalid.rejection_id,
            })

        if isinstance(outcome, Ignored):
            log.info("webhook_ignored", webhook_type=outcome.webhook_type)
            return answer(WebhookResult.IGNORED, 200, {"status": "ignored"})

        started = time.perf_counter()
        if isinstance(outcome, Accepted):
            event = outcome.event
            try:
                await kafka.publish_event(event)
            except PublishError as exc:
                log.error("webhook_publish_failed", event_id=event.event_id, error=str(exc))
                return answer(WebhookResult.UNAVAILABLE, 503, {
                    "detail": f"event bus unavailable, retry later: {exc}"})
            metrics.publish_seconds.labels(topic=EVENTS_TOPIC).observe(
                time.perf_counter() - started)
            log.info("webhook_accepted", event_id=event.event_id, source=event.source.value)
            if on_legacy_webhook is not None and event.source == EventSource.WEBHOOK_LEGACY:
                try:
                    on_legacy_webhook(event)
                except Exception as exc:  # never affects the answer
                    log.warning("on_legacy_webhook_failed", event_id=event.event_id,
                                error=repr(exc))
            return answer(WebhookResult.ACCEPTED, 200,
                          {"status": "accepted", "event_id": event.event_id})

        rejection = webhook_rejection(outcome, raw, at=now)
        unavailable = await reject(rejection)
        if unavailable is not None:
            return unavailable
        # 200: TikTok must not retry a webhook we will never be able to map.
        return answer(WebhookResult.REJECTED, 200, {
            "status": "rejected", "reason": rejection.reason.value,
            "rejection_id": rejection.rejection_id})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        if await kafka.ping(2.0):
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "detail": "Kafka not connected"},
                            status_code=503)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
