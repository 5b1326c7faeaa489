"""HTTP edge of the query API: FastAPI app factory, routes and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.errors import ConnectionFailure, PyMongoError

from contracts.statuses import ReturnStatus, ReverseType
from query_api import queries
from query_api.auth import Caller
from query_api.metrics import MetricsMiddleware, new_registry, request_histogram
from query_api.models import (
    ErrorMessage,
    Health,
    Readiness,
    ReturnsPage,
    ReturnView,
    StatusCounts,
)
from query_api.repository import Document, ReturnsRepository
from query_api.settings import Settings

log = structlog.get_logger("query_api")

READY_PING_TIMEOUT_S = 2.0
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "invalid parameters"},
    401: {"model": ErrorMessage, "description": "no or unknown bearer token"},
    403: {"model": ErrorMessage, "description": "the token is not granted this shop"},
}
INDEX_RETRY_MAX_DELAY_S = 30.0


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
        description="Read side of the returns & refunds backbone: lists, counts and details "
        "of the returns written by the state machine.",
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
        responses={400: {"model": ErrorMessage, "description": "invalid cursor"}, **AUTH_ERRORS},
        summary="List returns, newest update first",
    )
    async def list_returns(
        repository: Repo,
        caller: Caller,
        shop_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        status: Annotated[
            list[ReturnStatus] | None,
            Query(description="repeatable: any of these statuses (all when absent)"),
        ] = None,
        reverse_type: ReverseType | None = None,
        order_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
        updated_from: Annotated[
            int | None, Query(ge=0, description="update_time >= this (unix seconds)")
        ] = None,
        updated_to: Annotated[
            int | None, Query(ge=0, description="update_time < this (unix seconds)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = queries.DEFAULT_LIMIT,
        cursor: Annotated[
            str | None, Query(description="`next_cursor` of the previous page")
        ] = None,
    ) -> ReturnsPage:
        try:
            after = queries.decode_cursor(cursor) if cursor is not None else None
        except queries.BadCursor as exc:
            raise HTTPException(status_code=400, detail=f"invalid cursor: {exc}") from exc
        params = queries.ListParams(
            shop_id=caller.require(shop_id),
            statuses=tuple(status or ()),
            reverse_type=reverse_type,
            order_id=order_id,
            updated_from=updated_from,
            updated_to=updated_to,
            limit=limit,
            after=after,
        )
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
    async def count_returns(
        repository: Repo,
        caller: Caller,
        shop_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    ) -> StatusCounts:
        shop_id = caller.require(shop_id)
        return StatusCounts(shop_id=shop_id, counts=await repository.count_by_status(shop_id))

    @app.get(
        "/api/v1/returns/{shop_id}/{return_id}",
        response_model=ReturnView,
        responses={404: {"model": ErrorMessage, "description": "no such return"}, **AUTH_ERRORS},
        summary="One return with its history",
    )
    async def get_return(
        repository: Repo, caller: Caller, shop_id: str, return_id: str
    ) -> ReturnView:
        caller.require(shop_id)
        doc = await repository.get_return(shop_id, return_id)
        if doc is None:
            raise HTTPException(
                status_code=404, detail=f"return {return_id} of shop {shop_id} not found"
            )
        return ReturnView.from_document(doc)

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

    return app
