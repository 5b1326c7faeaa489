"""The returns: list, counts per tab, one return with its history, and the CSV export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import StreamingResponse

from contracts.messages import return_key
from contracts.statuses import ReturnStatus, ReverseType
from query_api import export, queries
from query_api.auth import Caller
from query_api.deps import (
    TEXT_PATTERN,
    CursorToken,
    Id,
    Limit,
    Repo,
    cursor_or_400,
    text_query,
)
from query_api.models import ErrorMessage, ReturnDetailView, ReturnsPage, ReturnView, StatusCounts
from query_api.openapi import AUTH_ERRORS, as_json
from runtime.decision_store import DecisionStore

CSV_LINES_PER_CHUNK = 200  # rows per chunk of the streamed CSV

router = APIRouter(prefix="/api/v1/returns")


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
    *,
    shop_id: Annotated[
        str | None, text_query("the shop (required unless the token is granted every shop)")
    ] = None,
    status: Annotated[
        list[ReturnStatus] | None,
        Query(description="repeatable: any of these statuses (all when absent)"),
    ] = None,
    reverse_type: ReverseType | None = None,
    order_id: Id = None,
    return_id: Id = None,
    q: Annotated[
        str | None, text_query("search: returns whose order id OR return id is exactly this")
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


def _csv_filename(shop_id: str | None) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # A header value is latin-1: the shop id only contributes its ASCII letters, digits, - and _.
    shop = "".join(
        c for c in (shop_id or "all-shops") if c.isascii() and (c.isalnum() or c in "-_")
    )[:64]
    return f"returns-{shop or 'shop'}-{stamp}.csv"


class CSVResponse(StreamingResponse):
    media_type = "text/csv"


@router.get(
    "",
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
    limit: Limit = queries.DEFAULT_LIMIT,
    cursor: CursorToken = None,
) -> ReturnsPage:
    after = cursor_or_400(queries.decode_cursor, cursor)
    params = filters.params(caller.require(filters.shop_id), limit=limit, after=after)
    docs, next_cursor = await repository.list_returns(params)
    return ReturnsPage(items=[ReturnView.from_document(d) for d in docs], next_cursor=next_cursor)


# Registered before the detail route (whose path parameters would otherwise be tried first).
@router.get(
    "/counts",
    response_model=StatusCounts,
    responses=AUTH_ERRORS,
    summary='Number of returns per status tab, plus "ALL"',
)
async def count_returns(repository: Repo, caller: Caller, shop_id: Id = None) -> StatusCounts:
    shop_id = caller.require(shop_id)
    return StatusCounts(shop_id=shop_id, counts=await repository.count_by_status(shop_id))


@router.get(
    "/export.csv",
    response_class=CSVResponse,
    responses={
        200: {
            "description": "CSV (RFC 4180, UTF-8, header row) of every return matching "
            "the filters, newest update first; columns: "
            + ", ".join(export.CSV_COLUMNS)
            + ". Amounts are decimal strings, times ISO-8601 UTC.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **as_json(AUTH_ERRORS),
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
            if len(batch) >= CSV_LINES_PER_CHUNK:
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


@router.get(
    "/{shop_id}/{return_id}",
    response_model=ReturnDetailView,
    responses={404: {"model": ErrorMessage, "description": "no such return"}, **AUTH_ERRORS},
    summary="One return with its history and the seller's decisions on it",
)
async def get_return(
    request: Request,
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
    # Joined at read time: the state machine stays the only writer of returns.
    store: DecisionStore | None = getattr(request.app.state, "decisions", None)
    decisions = await store.for_return(return_key(shop_id, return_id)) if store else []
    return ReturnDetailView.from_documents(*found, decisions)
