"""Kafka adapter: one FastStream broker for the ingestor, with declarative publishers.

The broker is created here and started by the app's lifespan, so other parts of the ingestor
(e.g. the sync-command consumer) can register subscribers on `KafkaBus.broker` before startup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaError
from faststream.exceptions import FastStreamException
from faststream.kafka import KafkaBroker

from contracts.messages import RejectedEvent, ReturnEvent, SyncCommand
from contracts.topics import EVENTS_TOPIC, REJECTED_TOPIC, SYNC_COMMANDS_TOPIC
from ingestor.settings import Settings
from runtime.topology import ensure_topics

UNKNOWN_SHOP_KEY = "unknown"


def raw_value(message: Any) -> bytes | None:
    """FastStream decoder that leaves a record's bytes alone: the handler decodes them, so a
    record that is not a valid message can be rejected with its reason instead of crashing."""
    value = message.raw_message.value
    return value if isinstance(value, bytes | None) else bytes(value)


class PublishError(RuntimeError):
    """The broker did not acknowledge a message (unreachable, timed out or not connected)."""


def build_broker(settings: Settings) -> KafkaBroker:
    timeout_ms = int(settings.kafka_delivery_timeout_s * 1000)
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id="ingestor",
        acks="all",
        enable_idempotence=True,
        # Bounds metadata waits and batch expiry, so a publish fails instead of hanging.
        request_timeout_ms=timeout_ms,
        logger=logging.getLogger("ingestor.broker"),
    )


class KafkaBus:
    """Publishes return events and rejections, each awaited until the broker acknowledged it."""

    def __init__(self, settings: Settings, broker: KafkaBroker | None = None) -> None:
        self._settings = settings
        self.broker = broker if broker is not None else build_broker(settings)
        self._events = self.broker.publisher(
            EVENTS_TOPIC,
            title="return events",
            description="Return changes from TikTok webhooks and sync; key = shop_id:return_id",
            schema=ReturnEvent,
        )
        self._rejected = self.broker.publisher(
            REJECTED_TOPIC,
            title="rejected events",
            description="Webhooks and synced records the ingestor could not map, and "
                        "undecodable sync commands; key = shop_id or 'unknown'",
            schema=RejectedEvent,
        )
        self._sync_commands = self.broker.publisher(
            SYNC_COMMANDS_TOPIC,
            title="sync commands",
            description="Sync Return requests (the reconciler's); key = shop_id",
            schema=SyncCommand,
        )
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        """Create missing topics, then connect the broker and start its subscribers."""
        await ensure_topics(self._settings.kafka_bootstrap_servers)
        await self.broker.connect()
        # Publishing works from here, and must before the subscribers start: a handler that
        # gets a record while the next subscriber is still starting publishes (a sync, a
        # rejection), and would otherwise be told "not connected".
        self._connected = True
        await self.broker.start()

    async def stop(self) -> None:
        self._connected = False
        await self.broker.stop()

    async def ping(self, within_s: float) -> bool:
        if not self._connected:
            return False
        try:
            return await self.broker.ping(within_s)
        except (KafkaError, FastStreamException, OSError):
            return False

    async def publish_event(self, event: ReturnEvent) -> None:
        key = event.key.encode("utf-8")
        await self._publish(lambda: self._events.publish(event, key=key))

    async def publish_rejection(self, rejection: RejectedEvent) -> None:
        key = (rejection.shop_id or UNKNOWN_SHOP_KEY).encode("utf-8")
        await self._publish(lambda: self._rejected.publish(rejection, key=key))

    async def publish_sync_command(self, command: SyncCommand) -> None:
        key = command.shop_id.encode("utf-8")
        await self._publish(lambda: self._sync_commands.publish(command, key=key))

    async def publish_batch(
        self, events: list[ReturnEvent], rejections: list[RejectedEvent]
    ) -> None:
        """Send every message without waiting, then wait until the broker acknowledged all
        (acks=all): one round trip per batch instead of one per message."""
        if not events and not rejections:
            return

        async def send_all() -> None:
            futures: list[Awaitable[object]] = []
            for event in events:
                futures.append(await self._events.publish(
                    event, key=event.key.encode("utf-8"), no_confirm=True))
            for rejection in rejections:
                key = (rejection.shop_id or UNKNOWN_SHOP_KEY).encode("utf-8")
                futures.append(await self._rejected.publish(rejection, key=key, no_confirm=True))
            await asyncio.gather(*futures)

        await self._publish(send_all)

    async def _publish(self, send: Callable[[], Awaitable[object]]) -> None:
        if not self._connected:
            raise PublishError("not connected to Kafka")
        try:
            async with asyncio.timeout(self._settings.kafka_delivery_timeout_s):
                await send()
        except TimeoutError as exc:
            raise PublishError(
                f"Kafka did not acknowledge within {self._settings.kafka_delivery_timeout_s} s"
            ) from exc
        except (KafkaError, FastStreamException, OSError) as exc:
            raise PublishError(f"Kafka publish failed: {exc!r}") from exc
