"""`POST /webhooks/tiktok`: TikTok's notifications in, events (or rejections) on Kafka.

It answers 200 only once the webhook is durably handled: its event (or its rejection)
acknowledged by Kafka, or the notification ignored as not a return. Anything TikTok should retry
later (Kafka unavailable) gets a 503; malformed calls get 4xx. A signed webhook of the wrong
shape or with impossible values gets 422 naming the fields, and only once its body is on the
rejected topic (acknowledged by Kafka; else 503), so nothing TikTok signed is lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from contracts.messages import RejectedEvent, ReturnEvent
from contracts.topics import EVENTS_TOPIC, REJECTED_TOPIC
from ingestor.kafka import KafkaBus, PublishError
from ingestor.metrics import IngestorMetrics, WebhookResult
from ingestor.rejections import webhook_rejection
from ingestor.settings import Settings
from ingestor.signature import verify_webhook
from ingestor.webhooks import Accepted, Ignored, WebhookShapeError, parse_webhook, shape_rejection

WEBHOOK_PATH = "/webhooks/tiktok"
SIGNATURE_HEADER = "Authorization"

log = structlog.get_logger("ingestor")


class Answer(Exception):
    """The webhook's answer, raised by the step that decides it."""

    def __init__(self, result: WebhookResult, status: int, body: dict[str, Any]) -> None:
        super().__init__(result.value)
        self.result = result
        self.status = status
        self.body = body


class BodyTooLarge(Exception):
    pass


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


class WebhookIntake:
    """The steps of one webhook, each raising the `Answer` that ends it early."""

    def __init__(self, settings: Settings, kafka: KafkaBus, metrics: IngestorMetrics,
                 on_webhook: Callable[[ReturnEvent], None] | None) -> None:
        self.settings = settings
        self.kafka = kafka
        self.metrics = metrics
        self.on_webhook = on_webhook
        self._app_secret = settings.tiktok_app_secret.get_secret_value()

    async def handle(self, request: Request) -> JSONResponse:
        try:
            raw = await self._body(request)
            self._check_signature(raw, request.headers.get(SIGNATURE_HEADER))
            answer = await self._publish(raw, _json(raw), datetime.now(UTC))
        except Answer as early:
            answer = early
        self.metrics.count(answer.result)
        return JSONResponse(answer.body, status_code=answer.status)

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.webhook_max_body_bytes
        try:
            return await _read_body(request, limit)
        except BodyTooLarge:
            log.warning("webhook_too_large", limit=limit)
            raise Answer(WebhookResult.TOO_LARGE, HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         {"detail": f"body larger than {limit} bytes"}) from None

    def _check_signature(self, raw: bytes, signature: str | None) -> None:
        if not verify_webhook(self.settings.tiktok_app_key, self._app_secret, raw, signature):
            log.warning("webhook_unauthorized", signed=bool(signature))
            raise Answer(WebhookResult.UNAUTHORIZED, HTTPStatus.UNAUTHORIZED, {
                "detail": "missing or invalid signature" if signature else "missing signature"})

    async def _publish(self, raw: bytes, payload: Any, now: datetime) -> Answer:
        try:
            outcome = parse_webhook(payload, observed_at=now)
        except WebhookShapeError as exc:
            log.warning("webhook_invalid", fields=list(exc.fields), error=str(exc))
            invalid = webhook_rejection(shape_rejection(payload, exc), raw, at=now)
            await self._reject(invalid)
            return Answer(WebhookResult.INVALID, HTTPStatus.UNPROCESSABLE_ENTITY, {
                "detail": f"invalid webhook: {exc}",
                "errors": [{"field": e.field, "message": e.message} for e in exc.errors],
                "rejection_id": invalid.rejection_id,
            })
        if isinstance(outcome, Ignored):
            log.info("webhook_ignored", webhook_type=outcome.webhook_type)
            return Answer(WebhookResult.IGNORED, HTTPStatus.OK, {"status": "ignored"})
        if isinstance(outcome, Accepted):
            await self._accept(outcome.event)
            return Answer(WebhookResult.ACCEPTED, HTTPStatus.OK,
                          {"status": "accepted", "event_id": outcome.event.event_id})
        rejection = webhook_rejection(outcome, raw, at=now)
        await self._reject(rejection)
        # 200: TikTok must not retry a webhook we will never be able to map.
        return Answer(WebhookResult.REJECTED, HTTPStatus.OK, {
            "status": "rejected", "reason": rejection.reason.value,
            "rejection_id": rejection.rejection_id})

    async def _accept(self, event: ReturnEvent) -> None:
        started = time.perf_counter()
        try:
            await self.kafka.publish_event(event)
        except PublishError as exc:
            log.error("webhook_publish_failed", event_id=event.event_id, error=str(exc))
            raise _unavailable(exc) from exc
        self.metrics.publish_seconds.labels(topic=EVENTS_TOPIC).observe(
            time.perf_counter() - started)
        log.info("webhook_accepted", event_id=event.event_id, source=event.source.value)
        if self.on_webhook is not None:
            try:
                self.on_webhook(event)
            except Exception as exc:  # never affects the answer
                log.warning("on_webhook_failed", event_id=event.event_id, error=repr(exc))

    async def _reject(self, rejection: RejectedEvent) -> None:
        """Publish a rejection; raises the 503 to answer unless Kafka acknowledged it."""
        started = time.perf_counter()
        try:
            await self.kafka.publish_rejection(rejection)
        except PublishError as exc:
            log.error("webhook_publish_failed", rejection_id=rejection.rejection_id,
                      error=str(exc))
            raise _unavailable(exc) from exc
        self.metrics.publish_seconds.labels(topic=REJECTED_TOPIC).observe(
            time.perf_counter() - started)
        log.warning("webhook_rejected", reason=rejection.reason.value, detail=rejection.detail,
                    shop_id=rejection.shop_id, return_id=rejection.return_id)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Answer(WebhookResult.NOT_JSON, HTTPStatus.BAD_REQUEST,
                     {"detail": "body is not JSON"}) from None


def _unavailable(exc: Exception) -> Answer:
    return Answer(WebhookResult.UNAVAILABLE, HTTPStatus.SERVICE_UNAVAILABLE,
                  {"detail": f"event bus unavailable, retry later: {exc}"})


def webhook_router(intake: WebhookIntake) -> APIRouter:
    router = APIRouter()

    @router.post(WEBHOOK_PATH)
    async def tiktok_webhook(request: Request) -> JSONResponse:
        return await intake.handle(request)

    return router
