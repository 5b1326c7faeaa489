"""The query API's Kafka producer (FastStream): commands for the ingestor, each awaited until
Kafka acknowledged it (acks=all). Connected in the background at start, and again on demand
after a failure, so the API serves while Kafka is down (publishing routes answer 503)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream.kafka import KafkaBroker
from pydantic import BaseModel

from runtime.topology import ensure_topics

KAFKA_CONNECT_TIMEOUT_S = 10.0
KAFKA_PUBLISH_TIMEOUT_S = 10.0


class KafkaUnavailable(Exception):
    pass


class KafkaPublisher:
    """A FastStream producer, (re)connected on demand."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self._broker: KafkaBroker | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> KafkaBroker:
        async with self._lock:
            if self._broker is not None:
                return self._broker
            broker = KafkaBroker(
                self._bootstrap, client_id="query-api", acks="all", enable_idempotence=True,
                request_timeout_ms=int(KAFKA_PUBLISH_TIMEOUT_S * 1000),
                logger=logging.getLogger("query_api.broker"),
            )
            try:
                async with asyncio.timeout(KAFKA_CONNECT_TIMEOUT_S):
                    await ensure_topics(self._bootstrap)
                    await broker.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await broker.stop()
                raise
            self._broker = broker
            return broker

    async def connect(self) -> None:
        with contextlib.suppress(Exception):
            await self._connected()

    async def publish(self, message: BaseModel, topic: str, key: str) -> None:
        """Publish and wait for Kafka's acknowledgement; `KafkaUnavailable` otherwise."""
        try:
            broker = await self._connected()
            async with asyncio.timeout(KAFKA_PUBLISH_TIMEOUT_S):
                await broker.publish(message, topic, key=key.encode("utf-8"))
        except Exception as exc:
            await self._reset()
            raise KafkaUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _reset(self) -> None:
        async with self._lock:
            broker, self._broker = self._broker, None
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.stop()

    async def close(self) -> None:
        await self._reset()
