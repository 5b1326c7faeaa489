"""Prometheus metrics: a request latency histogram per route, in a registry per app."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "unmatched"  # keeps label cardinality bounded for unknown paths


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def request_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "query_api_request_duration_seconds",
        "HTTP request latency by route template, method and status code",
        labelnames=("method", "route", "status"),
        registry=registry,
    )


class MetricsMiddleware:
    """Pure ASGI middleware timing each HTTP request; labels it with the matched route template."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None)
            self.histogram.labels(
                method=scope.get("method", ""),
                route=path if isinstance(path, str) else UNMATCHED_ROUTE,
                status=str(status),
            ).observe(time.perf_counter() - start)
