"""Prometheus metrics: a request latency histogram per route, in a registry per app."""

from __future__ import annotations

import time

import structlog
from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "unmatched"  # keeps label cardinality bounded for unknown paths
QUIET_ROUTES = frozenset({"/metrics", "/healthz", "/readyz", "/static"})  # logged at debug

log = structlog.get_logger("query_api.access")


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
    """Pure ASGI middleware timing each HTTP request; labels it with the matched route template
    and logs it (without its query string, which may hold a token)."""

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
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            path = getattr(route, "path", None)
            template = path if isinstance(path, str) else UNMATCHED_ROUTE
            method = scope.get("method", "")
            self.histogram.labels(method=method, route=template, status=str(status)).observe(
                elapsed
            )
            emit = log.debug if template in QUIET_ROUTES else log.info
            emit(
                "http_request",
                method=method,
                route=template,
                path=scope.get("path", ""),
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
