"""The query API's FastAPI app: `create_app` wires the lifespan, the middleware, the error
handlers and the routers (`query_api.routes`, then Sync Return's)."""

from __future__ import annotations

from fastapi import FastAPI

from query_api.errors import add_exception_handlers
from query_api.lifespan import lifespan
from query_api.metrics import MetricsMiddleware, new_registry, request_histogram
from query_api.openapi import document_unreadable_bodies
from query_api.routes import ROUTERS
from query_api.routes.decisions import decisions_router
from query_api.routes.insights import insights_router
from query_api.routes.shops import shops_router
from query_api.routes.sync import sync_router
from query_api.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(
        title="TikTok Shop returns — query API",
        version="1.0.0",
        description="Read side of the returns & refunds backbone: lists, counts, details and "
        "CSV export of the returns written by the state machine, and the events it rejected. "
        "Every `/api/v1` call except `/api/v1/meta/tabs` needs `Authorization: Bearer <token>`; "
        "a token reads the shops it is granted (QUERY_API_TOKENS). The dashboard is at `/`.",
        lifespan=lifespan(settings),
    )
    registry = new_registry()
    app.state.metrics_registry = registry  # read by GET /metrics
    app.state.tokens = settings.token_grants()
    app.add_middleware(MetricsMiddleware, histogram=request_histogram(registry))
    add_exception_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    document_unreadable_bodies(app)
    app.include_router(sync_router(settings))  # Sync Return: /api/v1/sync...
    app.include_router(decisions_router(settings))  # acting on returns, Needs action
    app.include_router(insights_router(settings))  # GET /api/v1/insights
    app.include_router(shops_router(settings))  # Shops: /api/v1/shops..., the /shops page
    return app
