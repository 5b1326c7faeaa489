"""Prometheus metrics of the webhook endpoint (one registry per app, so apps can coexist)."""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram


class WebhookResult(StrEnum):
    ACCEPTED = "accepted"
    IGNORED = "ignored"
    REJECTED = "rejected"
    UNAUTHORIZED = "unauthorized"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


class IngestorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.webhooks = Counter(
            "ingestor_webhooks",
            "Webhook deliveries by result",
            ["result"],
            registry=self.registry,
        )
        for result in WebhookResult:  # every series exists from the start, at 0
            self.webhooks.labels(result=result.value)
        self.publish_seconds = Histogram(
            "ingestor_publish_seconds",
            "Time from publish to the broker's acknowledgement",
            ["topic"],
            registry=self.registry,
        )

    def count(self, result: WebhookResult) -> None:
        self.webhooks.labels(result=result.value).inc()
