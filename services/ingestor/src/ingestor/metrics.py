"""Prometheus metrics of the ingestor: webhooks, sync jobs, webhook enrichment (one registry
per app, so apps can coexist)."""

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


class SyncResult(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a redelivered command whose job had already finished


class EnrichResult(StrEnum):
    PUBLISHED = "published"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    FAILED = "failed"


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

        self.sync_jobs = Counter(
            "ingestor_sync_jobs", "Sync jobs by result", ["result"], registry=self.registry)
        for sync_result in SyncResult:
            self.sync_jobs.labels(result=sync_result.value)
        self.sync_published = Counter(
            "ingestor_sync_published",
            "Messages published by sync jobs, by topic",
            ["topic"],
            registry=self.registry,
        )
        self.sync_pages = Counter(
            "ingestor_sync_pages", "Pages fetched from TikTok by sync jobs", registry=self.registry)
        self.sync_seconds = Histogram(
            "ingestor_sync_seconds", "Duration of sync jobs (run only)", registry=self.registry,
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
        )
        self.enrichments = Counter(
            "ingestor_webhook_enrichments",
            "Background fetches of a return after a webhook, by result",
            ["result"],
            registry=self.registry,
        )
        for enrich_result in EnrichResult:
            self.enrichments.labels(result=enrich_result.value)
        self.reconcile_commands = Counter(
            "ingestor_reconcile_commands",
            "Sync commands published by the periodic reconciler",
            registry=self.registry,
        )

    def count(self, result: WebhookResult) -> None:
        self.webhooks.labels(result=result.value).inc()
