"""HTTP edge of the query API: FastAPI app factory, routes and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, PyMongoError

from contracts.messages import RejectionReason
from contracts.statuses import STATUS_TABS, ReturnStatus, ReverseType
from query_api import export, queries
from query_api.auth import Caller
from query_api.metrics import MetricsMiddleware, new_registry, request_histogram
from query_api.models import (
    DashboardMeta,
    ErrorMessage,
    Health,
    Label,
    Readiness,
    RejectionsPage,
    RejectionView,
    ReturnDetailView,
    ReturnsPage,
    ReturnView,
    StatusCounts,
    ValidationFailure,
)
from query_api.repository import Document, ReturnsRepository
from query_api.settings import Settings
from query_api.shops_api import shops_router
from query_api.sync_api import sync_router

log = structlog.get_logger("query_api")

READY_PING_TIMEOUT_S = 2.0
STATIC_DIR = FilePath(__file__).parent / "static"
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorMessage,
        "description": "invalid cursor, or no shop_id with a token limited to some shops",
    },
    401: {"model": ErrorMessage, "description": "no or unknown bearer token"},
    403: {"model": ErrorMessage, "description": "the token is not granted this shop"},
    422: {
        "model": ValidationFailure,
        "description": "a parameter is invalid; the message names the valid values",
    },
    503: {"model": ErrorMessage, "description": "the database is not reachable"},
}
INDEX_RETRY_MAX_DELAY_S = 30.0
REVERSE_TYPE_LABELS = {
    ReverseType.REFUND_ONLY: "Refund only",
    ReverseType.RETURN_AND_REFUND: "Return and refund",
    ReverseType.REQUEST_CANCEL: "Cancellation request",
}
# The dashboard page: no inline script or style, nothing from another origin.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# Ids and search text: any printable text, compared as a plain value (never an operator). Control
# characters are refused: PostgreSQL (under FerretDB) cannot hold a NUL in a string.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Id = Annotated[str | None, Query(min_length=1, max_length=128, pattern=TEXT_PATTERN)]


async def _ensure_indexes_until_done(repository: ReturnsRepository, stop: asyncio.Event) -> None:
    """Background retry when MongoDB was not reachable at start-up; ends when `stop` is set.

    Stopped by an event rather than by cancellation: with pymongo 4.20 a cancellation delivered
    while it selects a server was seen to be swallowed, leaving this loop (and shutdown) hanging.
    """
    delay = 1.0
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            return
        try:
            await repository.ensure_indexes()
            return
        except PyMongoError as exc:
            log.warning("ensure_indexes_failed", error=str(exc), retry_in_s=delay)
            delay = min(delay * 2, INDEX_RETRY_MAX_DELAY_S)


def get_repository(request: Request) -> ReturnsRepository:
    repository: ReturnsRepository = request.app.state.repository
    return repository


Repo = Annotated[ReturnsRepository, Depends(get_repository)]


@dataclass(frozen=True)
class ReturnFilters:
    """The filters shared by the returns list and its CSV export."""

    shop_id: str | None
    statuses: tuple[ReturnStatus, ...]
    reverse_type: ReverseType | None
    order_id: str | None
    return_id: str | None
    q: str | None
    anomaly: bool | None
    updated_from: int | None
    updated_to: int | None

    def params(self, caller_shop: str | None, **page: Any) -> queries.ListParams:
        return queries.ListParams(
            shop_id=caller_shop,
            statuses=self.statuses,
            reverse_type=self.reverse_type,
            order_id=self.order_id,
            return_id=self.return_id,
            search=self.q,
            anomaly=self.anomaly,
            updated_from=self.updated_from,
            updated_to=self.updated_to,
            **page,
        )


def return_filters(
    shop_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            pattern=TEXT_PATTERN,
            description="the shop (required unless the token is granted every shop)",
        ),
    ] = None,
    status: Annotated[
        list[ReturnStatus] | None,
        Query(description="repeatable: any of these statuses (all when absent)"),
    ] = None,
    reverse_type: ReverseType | None = None,
    order_id: Id = None,
    return_id: Id = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=128,
            pattern=TEXT_PATTERN,
            description="search: returns whose order id OR return id is exactly this",
        ),
    ] = None,
    anomaly: Annotated[
        bool | None,
        Query(description="only returns with (true) or without (false) an anomaly"),
    ] = None,
    updated_from: Annotated[
        int | None, Query(ge=0, le=2**53, description="update_time >= this (unix seconds)")
    ] = None,
    updated_to: Annotated[
        int | None, Query(ge=0, le=2**53, description="update_time < this (unix seconds)")
    ] = None,
) -> ReturnFilters:
    return ReturnFilters(
        shop_id=shop_id,
        statuses=tuple(status or ()),
        reverse_type=reverse_type,
        order_id=order_id,
        return_id=return_id,
        q=(q.strip() or None) if q is not None else None,  # pasted ids carry blanks
        anomaly=anomaly,
        updated_from=updated_from,
        updated_to=updated_to,
    )


Filters = Annotated[ReturnFilters, Depends(return_filters)]


def _cursor_or_400(token: str | None) -> queries.Cursor | None:
    try:
        return queries.decode_cursor(token) if token is not None else None
    except queries.BadCursor as exc:
        raise HTTPException(status_code=400, detail=f"invalid cursor: {exc}") from exc


def _csv_filename(shop_id: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # A header value is latin-1: the shop id only contributes its ASCII letters, digits, - and _.
    shop = "".join(
        c for c in (shop_id or "all-shops") if c.isascii() and (c.isalnum() or c in "-_")
    )[:64]
    return f"returns-{shop or 'shop'}-{stamp}.csv"


class CSVResponse(StreamingResponse):
    media_type = "text/csv"


def _as_json(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """Error responses of a route whose own media type is not JSON: FastAPI would document
    their models under the route's media type, so they name their JSON schema explicitly (the
    models are components through the other routes)."""
    return {
        status: {
            "description": spec["description"],
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{spec['model'].__name__}"}
                }
            },
        }
        for status, spec in responses.items()
    }


def _validation_message(errors: list[dict[str, Any]]) -> str:
    """One readable line, e.g. `status[0]: 'NOPE' is invalid. Input should be 'A', 'B' or 'C'`."""
    parts = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if len(loc) > 1 and loc[0] in ("query", "path", "body", "header"):
            loc = loc[1:]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        got = f"{error['input']!r} is invalid. " if isinstance(error.get("input"), str) else ""
        parts.append(f"{where}: {got}{error.get('msg', 'invalid value')}")
    return "; ".join(parts)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    return JSONResponse(
        status_code=422,
        content={"message": _validation_message(errors), "detail": errors},
    )


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("mongodb_unavailable", path=request.url.path, error=str(exc))
    return JSONResponse(status_code=503, content={"detail": "the database is not reachable"})


def _document_unreadable_bodies(app: FastAPI) -> None:
    """FastAPI answers 400 `{"detail": ...}` to a body it cannot parse as JSON, on every route
    that takes one, without saying so in the document: say so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = generate()
        for path_item in spec.get("paths", {}).values():
            for operation in path_item.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    operation["responses"].setdefault("400", {
                        "description": "the body is not valid JSON",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorMessage"}
                        }},
                    })
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            settings.mongodb_url,
            serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
            connectTimeoutMS=settings.mongodb_timeout_ms,
            tz_aware=True,
        )
        repository = ReturnsRepository(
            client,
            settings.mongodb_database,
            cache_seconds=settings.active_collection_cache_seconds,
        )
        app.state.repository = repository
        app.state.mongo = client  # one connection pool for every router of this app
        stop = asyncio.Event()
        retry: asyncio.Task[None] | None = None
        try:
            await repository.ensure_indexes()
        except PyMongoError as exc:
            log.warning("ensure_indexes_failed_at_startup", error=str(exc))
            retry = asyncio.create_task(_ensure_indexes_until_done(repository, stop))
        try:
            yield
        finally:
            stop.set()
            if retry is not None:
                # an attempt under way ends within the server selection timeout
                grace = settings.mongodb_timeout_ms / 1000 + 1
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(retry, grace)
            await client.close()

    app = FastAPI(
        title="TikTok Shop returns — query API",
        version="1.0.0",
        description="Read side of the returns & refunds backbone: lists, counts, details and "
        "CSV export of the returns written by the state machine, and the events it rejected. "
        "Every `/api/v1` call except `/api/v1/meta/tabs` needs `Authorization: Bearer <token>`; "
        "a token reads the shops it is granted (QUERY_API_TOKENS). The dashboard is at `/`.",
        lifespan=lifespan,
    )
    registry = new_registry()
    app.state.tokens = settings.query_api_tokens
    app.add_middleware(MetricsMiddleware, histogram=request_histogram(registry))
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(ConnectionFailure, _on_database_unavailable)

    @app.get(
        "/api/v1/returns",
        response_model=ReturnsPage,
        responses=AUTH_ERRORS,
        summary="List returns, newest update first",
        description="Filters combine (AND). `q` matches an order id or a return id exactly "
        "(no pattern matching). Pages with `next_cursor` (keyset pagination: no return is "
        "skipped or repeated while paging).",
    )
    async def list_returns(
        repository: Repo,
        caller: Caller,
        filters: Filters,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
        cursor: Annotated[
            str | None,
            Query(max_length=queries.MAX_CURSOR_LENGTH,
                  description="`next_cursor` of the previous page"),
        ] = None,
    ) -> ReturnsPage:
        after = _cursor_or_400(cursor)
        params = filters.params(caller.require(filters.shop_id), limit=limit, after=after)
        docs, next_cursor = await repository.list_returns(params)
        return ReturnsPage(
            items=[ReturnView.from_document(d) for d in docs], next_cursor=next_cursor
        )

    # Registered before the detail route (whose path parameters would otherwise be tried first).
    @app.get(
        "/api/v1/returns/counts",
        response_model=StatusCounts,
        responses=AUTH_ERRORS,
        summary='Number of returns per status tab, plus "ALL"',
    )
    async def count_returns(repository: Repo, caller: Caller, shop_id: Id = None) -> StatusCounts:
        shop_id = caller.require(shop_id)
        return StatusCounts(shop_id=shop_id, counts=await repository.count_by_status(shop_id))

    @app.get(
        "/api/v1/returns/export.csv",
        response_class=CSVResponse,
        responses={
            200: {
                "description": "CSV (RFC 4180, UTF-8, header row) of every return matching "
                "the filters, newest update first; columns: "
                + ", ".join(export.CSV_COLUMNS)
                + ". Amounts are decimal strings, times ISO-8601 UTC.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            **_as_json(AUTH_ERRORS),
        },
        summary="Export the returns of the current filter as CSV (streamed, no page limit)",
    )
    async def export_returns(repository: Repo, caller: Caller, filters: Filters) -> CSVResponse:
        params = filters.params(caller.require(filters.shop_id))
        documents = await repository.export_returns(params)

        async def lines() -> AsyncIterator[str]:
            yield export.csv_lines([list(export.CSV_COLUMNS)])
            batch: list[list[str]] = []
            async for doc in documents:
                batch.append(export.csv_row(doc))
                if len(batch) >= 200:
                    yield export.csv_lines(batch)
                    batch = []
            if batch:
                yield export.csv_lines(batch)

        filename = _csv_filename(params.shop_id)
        return CSVResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.get(
        "/api/v1/rejections",
        response_model=RejectionsPage,
        responses=AUTH_ERRORS,
        summary="Events that could not be applied, newest first",
        description="What the state machine recorded from the rejected topic: unknown "
        "statuses, unsupported types, invalid transitions... Pages with `next_cursor`.",
    )
    async def list_rejections(
        repository: Repo,
        caller: Caller,
        shop_id: Id = None,
        reason: RejectionReason | None = None,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
        cursor: Annotated[
            str | None,
            Query(max_length=queries.MAX_CURSOR_LENGTH,
                  description="`next_cursor` of the previous page"),
        ] = None,
    ) -> RejectionsPage:
        try:
            after = queries.decode_rejection_cursor(cursor) if cursor is not None else None
        except queries.BadCursor as exc:
            raise HTTPException(status_code=400, detail=f"invalid cursor: {exc}") from exc
        params = queries.RejectionParams(
            shop_id=caller.require(shop_id), reason=reason, limit=limit, after=after
        )
        docs, next_cursor = await repository.list_rejections(params)
        return RejectionsPage(
            items=[RejectionView.from_document(d) for d in docs], next_cursor=next_cursor
        )

    @app.get(
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

    @app.get(
        "/api/v1/returns/{shop_id}/{return_id}",
        response_model=ReturnDetailView,
        responses={404: {"model": ErrorMessage, "description": "no such return"}, **AUTH_ERRORS},
        summary="One return with its history",
    )
    async def get_return(
        repository: Repo,
        caller: Caller,
        shop_id: Annotated[str, Path(min_length=1, max_length=128, pattern=TEXT_PATTERN)],
        return_id: Annotated[str, Path(min_length=1, max_length=128, pattern=TEXT_PATTERN)],
    ) -> ReturnDetailView:
        caller.require(shop_id)
        found = await repository.get_return(shop_id, return_id)
        if found is None:
            raise HTTPException(
                status_code=404, detail=f"return {return_id} of shop {shop_id} not found"
            )
        return ReturnDetailView.from_documents(*found)

    @app.get("/healthz", response_model=Health, summary="Liveness: the process answers")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
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

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        """The seller's Returns & Refunds dashboard (static page; it reads the API with the
        bearer token given as `?token=` or typed in)."""
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _document_unreadable_bodies(app)
    app.include_router(sync_router(settings))  # Sync Return: /api/v1/sync...
    app.include_router(shops_router(settings))  # Shops: /api/v1/shops..., the /shops page

    return app
