"""Kafka topics: one name constant per topic, and how each is configured."""

from __future__ import annotations

from dataclasses import dataclass, field

EVENTS_TOPIC = "tiktok.returns.events.v1"
SYNC_COMMANDS_TOPIC = "tiktok.returns.sync-commands.v1"
REJECTED_TOPIC = "tiktok.returns.rejected.v1"
DECISIONS_TOPIC = "tiktok.returns.decisions.v1"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}

TOPICS: tuple[TopicSpec, ...] = (
    # Key = shop id + return id; kept forever so the read model can be rebuilt by replay.
    TopicSpec(EVENTS_TOPIC, 12, FOREVER),
    # Key = shop id, so one shop's syncs are handled in order by one consumer.
    TopicSpec(SYNC_COMMANDS_TOPIC, 6, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
    TopicSpec(REJECTED_TOPIC, 3, FOREVER),
    # Key = shop id + return id, so one return's decisions are carried out in order.
    TopicSpec(DECISIONS_TOPIC, 6, {"retention.ms": str(7 * 24 * 3600 * 1000)}),
)
