"""About the service rather than the returns: the dashboard's labels, liveness, readiness and
the Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from contracts.statuses import STATUS_TABS, ReverseType
from query_api.deps import Repo
from query_api.models import DashboardMeta, Health, Label, Readiness

READY_PING_TIMEOUT_S = 2.0
REVERSE_TYPE_LABELS = {
    ReverseType.REFUND_ONLY: "Refund only",
    ReverseType.RETURN_AND_REFUND: "Return and refund",
    ReverseType.REQUEST_CANCEL: "Cancellation request",
}

router = APIRouter()


@router.get(
    "/api/v1/meta/tabs",
    response_model=DashboardMeta,
    summary="The status tabs (in display order) and reverse types, with their labels",
)
async def dashboard_meta() -> DashboardMeta:
    return DashboardMeta(
        tabs=[Label(key="ALL", label="All")]
        + [Label(key=status.value, label=label) for status, label in STATUS_TABS],
        reverse_types=[
            Label(key=kind.value, label=label) for kind, label in REVERSE_TYPE_LABELS.items()
        ],
    )


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "MongoDB does not answer"}},
    summary="Readiness: MongoDB answers a ping",
)
async def readyz(repository: Repo, response: Response) -> Readiness:
    try:
        ok = await asyncio.wait_for(repository.ping(), READY_PING_TIMEOUT_S)
    except TimeoutError:
        ok = False
    if not ok:
        response.status_code = 503
    return Readiness(
        status="ok" if ok else "unavailable", mongodb=ok, indexes=repository.indexes_ready
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The app's own registry (`app.state.metrics_registry`, one per app)."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
