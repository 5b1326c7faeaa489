"""Contracts shared by the ingestor, the state machine and the query API."""

from contracts.messages import (
    EventSource,
    Money,
    RejectedEvent,
    RejectionReason,
    ReturnDetails,
    ReturnEvent,
    ReturnItem,
    SyncCommand,
    return_key,
)
from contracts.statuses import ReturnStatus, ReverseType
from contracts.topics import EVENTS_TOPIC, REJECTED_TOPIC, SYNC_COMMANDS_TOPIC, TOPICS, TopicSpec

__all__ = [
    "EVENTS_TOPIC",
    "REJECTED_TOPIC",
    "SYNC_COMMANDS_TOPIC",
    "TOPICS",
    "EventSource",
    "Money",
    "RejectedEvent",
    "RejectionReason",
    "ReturnDetails",
    "ReturnEvent",
    "ReturnItem",
    "ReturnStatus",
    "ReverseType",
    "SyncCommand",
    "TopicSpec",
    "return_key",
]
