"""Carrying out seller decisions: the consumer of DECISIONS_TOPIC.

A `DecisionCommand` (from the query API, keyed by return, so one return's decisions go in order)
is carried out once:

1. its record is marked `sent` before TikTok is called (`DecisionStore.receive`); a command whose
   decision is already accepted, refused or failed (a redelivery) is acknowledged, not sent;
2. TikTok is called with the decision id as its idempotency key: a command redelivered after a
   crash between the call and the outcome reaches TikTok again as the same decision;
3. the outcome is recorded: accepted, refused with TikTok's message and code, or failed (the
   shop cannot be reached from here). The return's status changes only when TikTok says so.

Only infrastructure failures are retried (`runtime.retry`): MongoDB, and TikTok being
unreachable or throttling past the client's own retries. A record that is not a valid command
goes to the rejected topic with its reason. The offset is committed after the outcome.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from contracts.decisions import FINISHED_DECISIONS, DecisionCommand, DecisionStatus
from contracts.topics import DECISIONS_TOPIC
from ingestor.kafka import KafkaBus, PublishError, raw_value
from ingestor.rejections import undecodable_command
from ingestor.settings import Settings
from ingestor.sync.clients import ShopClients
from ingestor.tiktok_client import TikTokApiError
from ingestor.tiktok_decisions import send_decision
from runtime.decision_store import DecisionStore
from runtime.mongo import mongo_client
from runtime.retry import until_done

log = structlog.get_logger("ingestor.decisions")

Document = dict[str, Any]
ACCEPTED_MESSAGE = "accepted by TikTok; the status changes when TikTok reports it"


def _unreachable(exc: BaseException) -> bool:
    """TikTok could not be reached, or throttled us past the client's own retries."""
    return isinstance(exc, TikTokApiError) and exc.retryable


@dataclass
class DecisionService:
    settings: Settings
    bus: KafkaBus
    clients: ShopClients
    registry: CollectorRegistry
    mongo: AsyncMongoClient[Document] | None = None
    store: DecisionStore = field(init=False)
    results: Counter = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def __post_init__(self) -> None:
        if self.mongo is None:
            self.mongo = mongo_client(self.settings.mongodb_url,
                                      self.settings.mongodb_timeout_ms)
        self.store = DecisionStore(self.mongo, self.settings.mongodb_database)
        self.results = Counter("ingestor_decisions", "Seller decisions carried out, by result",
                               ["result"], registry=self.registry)
        for result in (*sorted(FINISHED_DECISIONS), "skipped"):  # every series from the start
            self.results.labels(result=str(result))

    # ------------------------------------------------------------------ lifecycle (create_app)

    async def start(self) -> None:
        self._stop.clear()

    async def stop(self) -> None:
        self._stop.set()  # a retry under way gives up; its command is not acknowledged

    async def close(self) -> None:
        if self.mongo is not None:
            await self.mongo.close()

    # ------------------------------------------------------------------ the consumer

    def register(self, broker: KafkaBroker) -> None:
        @broker.subscriber(
            DECISIONS_TOPIC,
            group_id=self.settings.decisions_group_id,
            ack_policy=AckPolicy.MANUAL,
            decoder=raw_value,
            auto_offset_reset="earliest",
            title="seller decisions",
            description="Approve or reject a return at TikTok; key = shop_id:return_id",
        )
        async def on_decision(body: bytes | None, msg: KafkaMessage) -> None:
            record = msg.raw_message
            await self.on_record(body, getattr(record, "partition", None),
                                 getattr(record, "offset", None))
            await msg.ack()

    async def on_record(self, value: bytes | None, partition: int | None,
                        offset: int | None) -> None:
        try:
            command = DecisionCommand.model_validate_json(value or b"")
        except ValidationError as exc:
            rejection = undecodable_command(
                value, str(exc.errors(include_url=False)[:3]), partition, offset,
                datetime.now(UTC), topic=DECISIONS_TOPIC, kind="decision command")
            log.error("decision_command_undecodable", partition=partition, offset=offset)
            await until_done("publish rejection", lambda: self.bus.publish_rejection(rejection),
                             retry_on=PublishError, stop=self._stop)
            return
        await self.handle(command)

    async def handle(self, command: DecisionCommand) -> DecisionStatus | None:
        """Carry out one command to its recorded outcome; None when it was done before."""
        bound = log.bind(decision_id=str(command.decision_id), shop_id=command.shop_id,
                         return_id=command.return_id, decision=command.decision.value)
        record = await until_done("decision receive", lambda: self.store.receive(command),
                                  retry_on=PyMongoError, stop=self._stop)
        if record is None:
            bound.info("decision_already_done")
            self.results.labels(result="skipped").inc()
            return None
        status, message, code = await self._send(command)
        await until_done("decision outcome",
                         lambda: self.store.finish(command.decision_id, status, message, code),
                         retry_on=PyMongoError, stop=self._stop)
        self.results.labels(result=status.value).inc()
        bound.info("decision_done", status=status.value, code=code, message=message,
                   attempts=record.attempts)
        return status

    async def _send(self, command: DecisionCommand
                    ) -> tuple[DecisionStatus, str | None, int | None]:
        problem = await self.clients.problem(command.shop_id)
        if problem is not None:
            return DecisionStatus.FAILED, problem, None
        client = await self.clients.client(command.shop_id)
        try:
            await until_done("decision send", lambda: send_decision(client, command),
                             retry_on=_unreachable, stop=self._stop)
        except TikTokApiError as exc:
            return DecisionStatus.REFUSED, exc.message or exc.reason, exc.code
        except ValueError as exc:  # the command does not fit the table (cannot come from the API)
            return DecisionStatus.FAILED, str(exc), None
        return DecisionStatus.ACCEPTED, ACCEPTED_MESSAGE, None
