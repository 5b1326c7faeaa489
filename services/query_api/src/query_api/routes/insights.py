"""`GET /api/v1/insights`: the charts of a shop's returns requested in a time range.

Register with `app.include_router(insights_router(settings))`. It reads through the app's one
MongoDB client (`app.state.mongo`) the collections of the active read model
(`app.state.repository`), and is scoped by token like every other route (`query_api.auth`).
"""

from __future__ import annotations

import asyncio
import functools
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError

from query_api.auth import Caller
from query_api.deps import TEXT_PATTERN
from query_api.insights import aggregate
from query_api.insights.cache import AnswerCache
from query_api.insights.reader import InsightsReader
from query_api.insights.views import InsightsView
from query_api.models import ErrorMessage, ValidationFailure
from query_api.repository import ReturnsRepository
from query_api.settings import Settings

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=400)
# Times the day and week arithmetic of any time zone can hold, with room to spare.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_TOP = 50
CACHE_SECONDS, CACHE_SIZE = 300.0, 64
# Each computation reads every return of a shop; two at a time leave FerretDB to the others.
COMPUTING_AT_ONCE = 2
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "no or unknown bearer token"},
    403: {"model": ErrorMessage, "description": "the token is not granted this shop"},
    422: {
        "model": ValidationFailure,
        "description": "a parameter is invalid (an unknown time zone, `from` not before `to`, "
        "a window over 400 days...); the message says which and why",
    },
    503: {"model": ErrorMessage, "description": "the database is not reachable"},
}


@functools.cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _invalid(field: str, message: str, given: Any) -> RequestValidationError:
    """A 422 in the same shape as FastAPI's own (the app's handler words it)."""
    value = given.isoformat() if isinstance(given, datetime) else given
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}]
    )


def zone_or_422(tz: str) -> zoneinfo.ZoneInfo:
    if tz not in known_zones():
        raise _invalid("tz", "not a known IANA time zone name, e.g. 'UTC', 'Europe/London' "
                       "or 'Asia/Kuala_Lumpur'", tz)
    return zoneinfo.ZoneInfo(tz)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window_or_422(
    start: datetime | None, end: datetime | None, zone: zoneinfo.ZoneInfo,
    now: datetime | None = None,
) -> aggregate.Window:
    """The request-time window: `to` defaults to now, `from` to 30 days before `to`; a time
    without an offset is UTC."""
    end_utc = _utc(end) if end is not None else (now or datetime.now(UTC))
    start_utc = _utc(start) if start is not None else end_utc - DEFAULT_WINDOW
    for field, value in (("from", start_utc), ("to", end_utc)):
        if not EARLIEST <= value <= LATEST:
            raise _invalid(field, f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}",
                           value)
    if start_utc >= end_utc:
        raise _invalid("from", "must be before `to`", start_utc)
    if end_utc - start_utc > MAX_WINDOW:
        raise _invalid("to", f"must be at most {MAX_WINDOW.days} days after `from`", end_utc)
    return aggregate.Window(int(start_utc.timestamp()), int(end_utc.timestamp()), zone)


def insights_router(settings: Settings) -> APIRouter:
    router = APIRouter()
    answers: AnswerCache[tuple[str, str, int, int, str, int], InsightsView] = AnswerCache(
        CACHE_SECONDS, CACHE_SIZE)
    computing = asyncio.Semaphore(COMPUTING_AT_ONCE)

    @router.get(
        "/api/v1/insights",
        response_model=InsightsView,
        responses=ERRORS,
        summary="Charts of a shop's returns requested in a time range",
        description="Returns opened per day (by current status), refunds per currency and "
        "week, top reasons and SKUs (by returns and by refunded amount), time to the "
        "seller's decision and to the refund (median, 90th percentile), and the share of "
        "returns with an anomaly or a rejected event. The window is on the request time "
        "(`from` inclusive, `to` exclusive; ISO 8601, UTC when no offset is given); days and "
        "weeks (from Monday) are counted in `tz`. An answer is kept for 5 minutes.",
    )
    async def get_insights(
        request: Request,
        caller: Caller,
        *,
        shop_id: Annotated[str, Query(min_length=1, max_length=128,
                                      pattern=TEXT_PATTERN)],
        start: Annotated[datetime | None, Query(
            alias="from", description="request time from (inclusive); default `to` - 30 days",
        )] = None,
        end: Annotated[datetime | None, Query(
            alias="to", description="request time to (exclusive); default now",
        )] = None,
        tz: Annotated[str, Query(min_length=1, max_length=64,
                                 description="IANA time zone of days and weeks")] = "UTC",
        top: Annotated[int, Query(ge=1, le=MAX_TOP,
                                  description="how many reasons and SKUs to rank")] = 10,
    ) -> InsightsView:
        caller.require(shop_id)
        window = window_or_422(start, end, zone_or_422(tz))
        repository: ReturnsRepository = request.app.state.repository
        collection = await repository.active_collection_name()

        async def compute() -> InsightsView:
            reader = InsightsReader(request.app.state.mongo[settings.mongodb_database],
                                    collection)
            async with computing:
                rows, rejected = await reader.read(shop_id, window)
                # CPU work over every row: off the event loop, so others are answered.
                return await asyncio.to_thread(
                    functools.partial(aggregate.insights, top=top),
                    shop_id, window, rows, (), rejected,
                )

        key = (collection, shop_id, window.start, window.end, window.zone.key, top)
        return await answers.get(key, compute)

    return router
