"""Health, readiness, metrics and the event contract (AsyncAPI) of the ingestor."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.specification import get_asyncapi_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingestor.kafka import KafkaBus
from ingestor.metrics import IngestorMetrics
from runtime.asyncapi import ContractDocument, contract_document

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    kafka: KafkaBus = request.app.state.bus
    if await kafka.ping(2.0):
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "not ready", "detail": "Kafka not connected"},
                        status_code=503)


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    metrics: IngestorMetrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _contract(request: Request) -> ContractDocument:
    # What the broker publishes and consumes (subscribers registered on `bus.broker` before
    # the app was built included), as in contracts/asyncapi/.
    return contract_document(request.app.state.asyncapi.to_specification())


@router.get("/asyncapi", include_in_schema=False)
async def asyncapi_html(request: Request) -> HTMLResponse:
    return HTMLResponse(get_asyncapi_html(_contract(request), try_it_out_path=None))


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi_json(request: Request) -> JSONResponse:
    return JSONResponse(_contract(request).document)
